/* labwork dashboard: small vanilla script (no framework, no build step).
   Countdowns, start progress, log following, job progress, environment alert refresh. */
(function () {
  "use strict";

  function $(sel, root) { return (root || document).querySelector(sel); }
  function $all(sel, root) { return Array.prototype.slice.call((root || document).querySelectorAll(sel)); }

  function getJSON(url) {
    return fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (r) {
        return r.json().then(function (body) { return { status: r.status, body: body }; },
                             function () { return { status: r.status, body: null }; });
      });
  }

  // Set once a form of this page is submitted: its answer replaces the page, so the page's own
  // polling must not reload it meanwhile (that would cancel the form's navigation and its answer).
  var leaving = false;
  window.addEventListener("submit", function (ev) {
    var f = ev.target;
    if (!ev.defaultPrevented && !(f.target && f.target !== "_self")) leaving = true;
  });

  function fmtLeft(s) {
    s = Math.max(0, Math.floor(s));
    var h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
    return h + " h " + (m < 10 ? "0" : "") + m + " min " + (sec < 10 ? "0" : "") + sec + " s";
  }

  function fmtElapsed(s) { return s < 60 ? Math.floor(s) + " s" : Math.floor(s / 60) + " min " + Math.floor(s % 60) + " s"; }

  // --- countdowns -----------------------------------------------------------------------------------
  function startCountdowns() {
    var t0 = performance.now();
    var items = $all(".countdown[data-seconds-left]").map(function (el) {
      return { el: el, left: parseFloat(el.getAttribute("data-seconds-left")) };
    }).filter(function (x) { return !isNaN(x.left); });
    if (!items.length) return;
    function tick() {
      var gone = (performance.now() - t0) / 1000;
      items.forEach(function (x) { x.el.textContent = fmtLeft(x.left - gone); });
    }
    tick();
    setInterval(tick, 1000);
  }

  // --- the Jupyter page's server card -----------------------------------------------------------------
  function watchServer() {
    var card = $("#server[data-state-url]");
    if (!card) return;
    var url = card.getAttribute("data-state-url");
    var shown = card.getAttribute("data-state");
    var starting = shown === "starting";
    var lines = $("#progress-lines"), elapsed = $("#progress-elapsed");
    function reload() { if (!leaving) window.location.href = window.location.pathname; }
    function poll() {
      getJSON(url).then(function (res) {
        var s = res.body || {};
        if (res.status === 401) { reload(); return; }
        var job = s.job;
        if (starting) {
          var text = job && job.lines ? job.lines.join("\n") : "";
          if (s.log_tail) text += (text ? "\n" : "") + "--- server log ---\n" + s.log_tail;
          if (lines) { lines.textContent = text; lines.scrollTop = lines.scrollHeight; }
          if (elapsed && job) elapsed.textContent = fmtElapsed(job.elapsed);
          var jobDone = !job || job.state !== "running";
          if (jobDone && s.state !== "starting") { reload(); return; }
          setTimeout(poll, 700);
        } else {
          if (s.state && s.state !== shown && !(shown === "none" && s.state === "none")) { reload(); return; }
          if (job && job.state === "running") { reload(); return; }
          setTimeout(poll, 5000);
        }
      }, function () { setTimeout(poll, 3000); });
    }
    setTimeout(poll, starting ? 300 : 5000);
  }

  // --- log viewers --------------------------------------------------------------------------------------
  function watchLogs() {
    $all("pre.log[data-url]").forEach(function (pre) {
      var base = pre.getAttribute("data-url");
      var follow = $(".log-follow");
      var offset = -1;
      function load() {
        var sep = base.indexOf("?") >= 0 ? "&" : "?";
        getJSON(base + sep + "offset=" + offset).then(function (res) {
          var d = res.body || {};
          if (res.status !== 200) {
            pre.textContent = (d && d.msg) ? d.msg : "could not read the log (" + res.status + ")";
            pre.classList.add("log-error");
            return;
          }
          var atEnd = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 20;
          if (offset < 0) pre.textContent = d.text; else if (d.text) pre.appendChild(document.createTextNode(d.text));
          offset = d.offset;
          if (follow && follow.checked && (atEnd || !d.text || offset === d.offset)) pre.scrollTop = pre.scrollHeight;
          pre.setAttribute("data-loaded", "1");
          if (!d.eof) { setTimeout(load, 50); return; }
          if (d.active && (!follow || follow.checked)) setTimeout(load, 1500);
          else if (d.active) setTimeout(load, 3000);
        }, function () { setTimeout(load, 3000); });
      }
      load();
    });
  }

  // --- the environment alert ----------------------------------------------------------------------------
  function watchEnvAlert() {
    var box = $("#env-alert[data-url]");
    if (!box || box.getAttribute("data-state") !== "checking") return;
    var url = box.getAttribute("data-url");
    function poll() {
      fetch(url, { credentials: "same-origin" }).then(function (r) { return r.text(); }).then(function (html) {
        box.innerHTML = html;  // our own escaped fragment
        if ($("#env-checking", box)) setTimeout(poll, 2000); else box.setAttribute("data-state", "done");
      }, function () { setTimeout(poll, 4000); });
    }
    setTimeout(poll, 1500);
  }

  // --- Compute page: docker/remote targets' states, probed in the background -------------------------
  function watchTargets() {
    var table = $("#targets[data-states-url]");
    if (!table || !$("td.target-state[data-checking='true']", table)) return;
    var url = table.getAttribute("data-states-url");
    function poll() {
      getJSON(url).then(function (res) {
        var states = res.body || {}, checking = false;
        Object.keys(states).forEach(function (name) {
          var st = states[name], cell = $("tr[data-target='" + CSS.escape(name) + "'] td.target-state", table);
          if (!cell) return;
          checking = checking || st.checking;
          cell.setAttribute("data-checking", st.checking ? "true" : "false");
          var text = $(".state-text", cell);
          if (text) { text.textContent = st.text; text.className = "state-text " + (st.ok === null ? "muted" : (st.ok ? "ok" : "error")); }
          var ks = $(".state-kernels", cell);
          if (ks) {
            ks.textContent = "";
            (st.kernels || []).forEach(function (k) {
              var d = document.createElement("div"), c = document.createElement("code");
              d.className = "muted"; d.textContent = k.runconfig + ": container "; c.textContent = k.container;
              d.appendChild(c); ks.appendChild(d);
            });
          }
        });
        if (checking) setTimeout(poll, 1000);
      }, function () { setTimeout(poll, 3000); });
    }
    setTimeout(poll, 500);
  }

  // --- jobs (opening a notebook, preparing an environment) --------------------------------------------
  function watchJob(el, onDone) {
    var id = el.getAttribute("data-job");
    var lines = $(".progress-lines", el) || $("#progress-lines", el) || $("#progress-lines");
    var elapsed = $(".progress-elapsed", el) || $("#progress-elapsed", el) || $("#progress-elapsed");
    var stateEl = $("[data-job-state]", el) || $("#opening-state");
    function poll() {
      getJSON("/jobs/" + encodeURIComponent(id) + ".json").then(function (res) {
        var j = res.body || {};
        if (res.status !== 200) { if (stateEl) stateEl.textContent = (j && j.msg) || "unknown job"; return; }
        if (lines) { lines.textContent = (j.lines || []).join("\n"); lines.scrollTop = lines.scrollHeight; }
        if (elapsed) elapsed.textContent = fmtElapsed(j.elapsed);
        if (stateEl) stateEl.textContent = j.state;
        if (j.state === "running") { setTimeout(poll, 700); return; }
        $all(".spinner", el).forEach(function (s) { s.hidden = true; });
        onDone(j);
      }, function () { setTimeout(poll, 2000); });
    }
    poll();
  }

  function watchOpening() {
    var el = $("#opening[data-job]");
    if (!el) return;
    watchJob(el, function (j) {
      var out = $("#opening-result");
      if (j.state === "done" && j.result && j.result.url) {
        if (!j.result.note) { window.location.replace(j.result.url); return; }
        var p = document.createElement("p"); p.className = "alert warn"; p.textContent = j.result.note;
        var a = document.createElement("a"); a.href = j.result.url; a.className = "button primary";
        a.id = "continue"; a.textContent = "Continue to " + j.result.notebook;
        out.appendChild(p); out.appendChild(a);
      } else {
        var e = document.createElement("div"); e.className = "alert error"; e.id = "opening-error";
        e.textContent = "Not opened: " + (j.error || "failed"); out.appendChild(e);
      }
    });
  }

  function watchPrepare() {
    $all(".job-progress[data-job]").forEach(function (el) {
      if (el.getAttribute("data-job-state") !== "running") return;
      watchJob(el, function (j) {
        var st = $(".job-state", el);
        if (st) { st.textContent = j.state === "done" ? "finished" : "failed: " + (j.error || ""); st.className = "job-state state-" + j.state; }
        refreshRows(el);
      });
    });
  }

  // The run configuration's rows as the server renders them now (its environment prepared or not).
  function refreshRows(el) {
    var url = el.getAttribute("data-rows-url");
    var jobRow = el.closest("tr");
    var row = jobRow && jobRow.previousElementSibling;
    if (!url || !row) return;
    fetch(url, { credentials: "same-origin" }).then(function (r) {
      return r.ok ? r.text() : null;
    }).then(function (html) {
      if (html === null) return;
      var t = document.createElement("template");
      t.innerHTML = "<table><tbody>" + html + "</tbody></table>";  // our own escaped fragment
      var fresh = $all("tbody > tr", t.content);
      if (!fresh.length) return;
      fresh.forEach(function (tr) { row.parentNode.insertBefore(tr, row); });
      row.parentNode.removeChild(row);
      jobRow.parentNode.removeChild(jobRow);
      fresh.forEach(function (tr) {
        $all(".progress-lines", tr).forEach(function (pre) { pre.scrollTop = pre.scrollHeight; });
      });
    });
  }

  // --- forms ----------------------------------------------------------------------------------------
  function wireForms() {
    $all("form[data-busy]").forEach(function (f) {
      f.addEventListener("submit", function () {
        var label = f.getAttribute("data-busy");
        setTimeout(function () {
          $all("button[type=submit]", f).concat(f.id ? $all("button[form='" + f.id + "']") : [])
            .forEach(function (b) { b.disabled = true; b.textContent = label; });
        }, 0);
      });
    });
    $all("form[data-confirm]").forEach(function (f) {
      f.addEventListener("submit", function (ev) { if (!window.confirm(f.getAttribute("data-confirm"))) ev.preventDefault(); });
    });
    $all("select[data-autosubmit]").forEach(function (s) {
      s.addEventListener("change", function () { s.form.submit(); });
    });
    $all("a[data-back]").forEach(function (a) {
      a.addEventListener("click", function (ev) { if (history.length > 1) { ev.preventDefault(); history.back(); } });
    });
    var spark = $("#spark-settings");
    if (spark) {
      var sync = function () {
        var k = $("input[name=kind]:checked");
        spark.hidden = !(k && k.value === "spark");
      };
      $all("input[name=kind]").forEach(function (r) { r.addEventListener("change", sync); });
      sync();
    }
    var noLimit = $("#no-limit"), hours = $("#hours");
    if (noLimit && hours) {
      var syncHours = function () { hours.disabled = noLimit.checked; };
      noLimit.addEventListener("change", syncHours);
      syncHours();
    }
    var kindSel = $("#attach-kind");
    if (kindSel) {
      var syncKind = function () {
        $all("[data-kind]").forEach(function (el) {
          el.hidden = el.getAttribute("data-kind").split(" ").indexOf(kindSel.value) < 0;
        });
      };
      kindSel.addEventListener("change", syncKind);
      syncKind();
    }
    $all("input.compare-pick").forEach(function (box) {
      box.addEventListener("change", function () {
        var picked = $all("input.compare-pick:checked");
        var btn = $("#compare-button");
        if (btn) btn.disabled = picked.length < 2 || picked.length > 3;
      });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    wireForms();
    startCountdowns();
    watchServer();
    watchLogs();
    watchEnvAlert();
    watchOpening();
    watchPrepare();
    watchTargets();
  });
})();
