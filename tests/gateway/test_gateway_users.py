"""Spark as the user, against a real control plane and its mounted gateway (`local[2]`): sessions
carry their owner and proxyUser; each user sees and controls only their own, a project's owner
those of the project, admins all; another's proxyUser is refused (403) unless an admin asks; an
untagged session is its owner's only; a restart keeps the owner; the `livy` client and sparkmagic
work with a personal token. Also: a dashboard job and a kernel launch are their project's (404)."""
from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import requests

from tests.support import ControlPlane
from tests.support.gateway import run, text, wait_session
from tests.support.sparkmagic import SparkmagicKernel

pytestmark = pytest.mark.slow

USERS = ("alice", "bob", "carol", "dave")  # alice, bob: members; carol: the project's owner; dave: none
XRB = {"X-Requested-By": "tests"}


@pytest.fixture(scope="module")
def cp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    home = tmp_path_factory.mktemp("spark-users-home")
    plane = ControlPlane(home, config='[gateway]\ndriver_memory = "512m"\nmaster = "local[2]"\n').start()
    for name in USERS:
        plane.cli("user", "add", name, "--password-stdin", input_text=f"{name}-password-1\n")
    yield plane
    plane.stop()


@pytest.fixture(scope="module")
def tokens(cp: ControlPlane) -> dict[str, str]:
    return {u: cp.cli("token", "create", "--user", u, "--name", "tests").stdout.strip() for u in USERS}


def as_user(cp: ControlPlane, token: str) -> httpx.Client:
    return httpx.Client(base_url=cp.url, headers={"Authorization": f"Bearer {token}", **XRB}, timeout=120)


def livy_as(cp: ControlPlane, token: str) -> httpx.Client:
    """A client of /livy (for tests.support.gateway's `run` and `wait_session`)."""
    return httpx.Client(base_url=cp.url + "/livy", headers={"Authorization": f"Bearer {token}", **XRB},
                        timeout=120)


@pytest.fixture(scope="module")
def project(cp: ControlPlane, tokens: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> dict:
    """carol's project (she registered it: its owner), alice and bob its members."""
    from labwork.project import init_project
    folder = tmp_path_factory.mktemp("spark-users-proj")
    init_project(folder, "sparkusers")
    with as_user(cp, tokens["carol"]) as carol:
        row = carol.post("/api/projects", json={"path": str(folder)}).json()
        for member in ("alice", "bob"):
            assert carol.post(f"/api/projects/{row['id']}/members", json={"user": member}).status_code == 201
    return row


@pytest.fixture(scope="module")
def alice_session(cp: ControlPlane, tokens: dict[str, str], project: dict) -> int:
    """alice's session tagged with the project, made by the `livy` client with her personal token
    (as HTTP Basic's password)."""
    from livy import LivySession, SessionKind
    s = LivySession.create(cp.url + "/livy", auth=requests.auth.HTTPBasicAuth("alice", tokens["alice"]),
                           kind=SessionKind.PYSPARK, driver_memory="512m",
                           spark_conf={"spark.labwork.project": project["path"]})
    s.wait()
    assert s.run("1 + 1").text == "2"
    return s.session_id


def test_the_session_is_alices(cp: ControlPlane, tokens: dict[str, str], alice_session: int) -> None:
    with as_user(cp, tokens["alice"]) as alice:
        s = alice.get(f"/livy/sessions/{alice_session}").json()
        assert (s["owner"], s["proxyUser"]) == ("alice", "alice"), s
        assert s["conf"]["spark.labwork.user"] == "alice"
        # the driver knows it too
        with livy_as(cp, tokens["alice"]) as livy:
            assert text(run(livy, alice_session, "spark.conf.get('spark.labwork.user')")) == "'alice'"
        assert [x["id"] for x in alice.get("/livy/sessions").json()["sessions"]] == [alice_session]


def test_a_member_cannot_see_or_control_anothers_session(cp: ControlPlane, tokens: dict[str, str],
                                                         alice_session: int) -> None:
    for who in ("bob", "dave"):  # a member of the project, and someone who is none
        with as_user(cp, tokens[who]) as c:
            assert c.get("/livy/sessions").json() == {"from": 0, "total": 0, "sessions": []}
            for path in ("", "/state", "/log", "/statements", "/statements/0"):
                r = c.get(f"/livy/sessions/{alice_session}{path}")
                assert r.status_code == 404 and r.json() == {"msg": f"Session '{alice_session}' not found."}, path
            assert c.post(f"/livy/sessions/{alice_session}/statements", json={"code": "1"}).status_code == 404
            assert c.post(f"/livy/sessions/{alice_session}/statements/0/cancel").status_code == 404
            assert c.delete(f"/livy/sessions/{alice_session}").status_code == 404
    with as_user(cp, tokens["alice"]) as alice:
        assert alice.get(f"/livy/sessions/{alice_session}").json()["state"] == "idle"


def test_the_project_owner_and_the_admin_can(cp: ControlPlane, tokens: dict[str, str], alice_session: int) -> None:
    with as_user(cp, tokens["carol"]) as carol:
        assert [x["id"] for x in carol.get("/livy/sessions").json()["sessions"]] == [alice_session]
    with livy_as(cp, tokens["carol"]) as carol:
        assert text(run(carol, alice_session, "40 + 2")) == "42"
    with httpx.Client(base_url=cp.url, headers={**cp.headers(), **XRB}, timeout=120) as admin:
        assert alice_session in [x["id"] for x in admin.get("/livy/sessions").json()["sessions"]]
        assert admin.get(f"/livy/sessions/{alice_session}/log").status_code == 200


def test_the_spark_ui_through_the_control_plane(cp: ControlPlane, tokens: dict[str, str],
                                               alice_session: int) -> None:
    """Livy's sparkUiUrl is /spark/<key>/ on the control plane: the driver's UI (started with that
    proxyBase) with its links, assets, REST API and redirects under the prefix; alice (its owner),
    carol (the project's owner) and the admin open it, bob (a member) and dave (none) get 404."""
    with as_user(cp, tokens["alice"]) as alice:
        ui = alice.get(f"/livy/sessions/{alice_session}").json()["appInfo"]["sparkUiUrl"]
        assert re.fullmatch(r"/spark/session-\d+-[0-9a-f]{8}/|/spark/pool-[\w-]+/", ui), ui
        page = alice.get(f"{ui}jobs/")
        assert page.status_code == 200 and f'href="{ui}jobs/' in page.text, page.text[:500]
        asset = re.search(rf'(?:src|href)="({re.escape(ui)}static/[^"?]+)', page.text).group(1)
        assert alice.get(asset).status_code == 200  # the page's own assets load through the proxy
        apps = alice.get(f"{ui}api/v1/applications").json()
        assert apps and apps[0]["id"]
        # Spark redirects its root to /jobs/ on its own origin: the browser is sent under the prefix
        r = alice.get(ui, follow_redirects=False)
        assert r.status_code in (301, 302, 303, 307) and r.headers["location"] in (f"{cp.url}{ui}jobs/", f"{ui}jobs/")
    for who, code in (("carol", 200), ("bob", 404), ("dave", 404)):
        with as_user(cp, tokens[who]) as c:
            assert c.get(f"{ui}jobs/").status_code == code, who
    assert httpx.get(f"{cp.url}{ui}jobs/", headers=cp.headers(), timeout=60).status_code == 200  # the admin
    assert httpx.get(f"{cp.url}{ui}api/v1/applications", headers={"Accept": "application/json"},
                     timeout=60).status_code == 401  # anonymous
    with as_user(cp, tokens["alice"]) as alice:
        r = alice.get("/spark/session-999-deadbeef/jobs/", headers={"Accept": "application/json"})
        assert r.status_code == 404 and "no Spark UI" in r.json()["msg"]


def test_the_spark_ui_in_a_browser(browser, cp: ControlPlane, tokens: dict[str, str], alice_session: int) -> None:
    """In Chromium, logged in with their passwords: alice sees her session's Spark UI through the
    control plane (its page, styles and links under the prefix); bob, a member, gets 404 for it."""
    from playwright.sync_api import expect

    from tests.support.browser import password_logins, shot
    with as_user(cp, tokens["alice"]) as alice:
        ui = alice.get(f"/livy/sessions/{alice_session}").json()["appInfo"]["sparkUiUrl"]
    with password_logins(browser, cp, {name: f"{name}-password-1" for name in ("alice", "bob")}) as pages:
        page = pages["alice"]
        failed: list[str] = []
        page.on("response", lambda r: failed.append(r.url) if r.status >= 400 else None)
        page.goto(f"{cp.url}{ui}")  # Spark's root redirects to its Jobs page, under the prefix
        page.wait_for_url(f"**{ui}jobs/")
        expect(page.locator("h3", has_text="Spark Jobs")).to_be_visible(timeout=60_000)
        page.click("a[href$='/environment/']")
        page.wait_for_url(f"**{ui}environment/")
        page.wait_for_load_state("networkidle")  # its tables load by script, from the REST API
        expect(page.locator("body")).to_contain_text("spark.ui.proxyBase", timeout=60_000)
        assert failed == [], failed  # every asset of the pages came through the proxy
        shot(page, "proxy-spark-ui-alice")
        other = pages["bob"].goto(f"{cp.url}{ui}jobs/")
        assert other is not None and other.status == 404


def test_proxy_user_of_another_is_refused_unless_admin(cp: ControlPlane, tokens: dict[str, str],
                                                       project: dict) -> None:
    with as_user(cp, tokens["alice"]) as alice:
        for body, params in (({"kind": "pyspark", "proxyUser": "bob"}, {}),
                             ({"kind": "pyspark"}, {"doAs": "bob"}),
                             ({"kind": "pyspark", "proxyUser": "alice"}, {"doAs": "bob"})):
            r = alice.post("/livy/sessions", json=body, params=params)
            assert r.status_code == 403, r.text
            assert r.json()["msg"].startswith("proxyUser 'bob' refused: you (alice) may only run Spark as yourself")
        r = alice.post("/livy/batches", json={"file": "s3a://bucket/app.py", "proxyUser": "bob"})
        assert r.status_code == 403 and "proxyUser 'bob' refused" in r.json()["msg"]
        assert alice.get("/livy/sessions").json()["total"] <= 1  # nothing was created
    with as_user(cp, tokens["dave"]) as dave:  # not a member: the project does not exist for him
        r = dave.post("/livy/sessions", json={"kind": "pyspark", "conf": {"spark.labwork.project": project["path"]}})
        assert r.status_code == 404 and "Project not found" in r.json()["msg"]


def test_admin_may_run_as_another_and_an_untagged_session_is_only_its_users(
        cp: ControlPlane, tokens: dict[str, str]) -> None:
    with httpx.Client(base_url=cp.url, headers={**cp.headers(), **XRB}, timeout=120) as admin:
        r = admin.post("/livy/sessions", json={"kind": "pyspark", "proxyUser": "bob", "driverMemory": "512m",
                                                "conf": {"spark.labwork.user": "mallory"}})
        assert r.status_code == 201, r.text
        s = r.json()
        assert (s["owner"], s["proxyUser"], s["conf"]["spark.labwork.user"]) == ("admin", "bob", "bob")
        sid = s["id"]
        try:
            with livy_as(cp, tokens["bob"]) as bob:
                assert [x["id"] for x in bob.get("/sessions").json()["sessions"]] == [sid]
                assert wait_session(bob, sid)["state"] == "idle"
            for who in ("alice", "carol"):  # no project tag: not even a project owner sees it
                with as_user(cp, tokens[who]) as c:
                    assert c.get(f"/livy/sessions/{sid}").status_code == 404
                    assert sid not in [x["id"] for x in c.get("/livy/sessions").json()["sessions"]]
        finally:
            assert admin.delete(f"/livy/sessions/{sid}").status_code == 200


def test_the_spark_page_shows_the_user(cp: ControlPlane, tokens: dict[str, str], alice_session: int) -> None:
    with as_user(cp, tokens["alice"]) as alice:
        page = alice.get("/spark").text
    row = re.search(rf'<tr data-id="{alice_session}">.*?</tr>', page, re.S)
    assert row and '<td class="spark-user">alice</td>' in row.group(0), page[-3000:]
    with as_user(cp, tokens["bob"]) as bob:
        assert f'<tr data-id="{alice_session}">' not in bob.get("/spark").text
        assert bob.get(f"/spark/sessions/{alice_session}/log").status_code == 404


def test_sparkmagic_with_a_personal_token(cp: ControlPlane, tokens: dict[str, str], project: dict,
                                          tmp_path: Path) -> None:
    """The real sparkmagic kernel sends bob's LABWORK_TOKEN: the session is bob's; its config file
    holds no token; `%%configure -f` naming alice is refused with the gateway's 403."""
    kernel = SparkmagicKernel(tmp_path / "sm", cp.url + "/livy", project=project["path"], token=tokens["bob"])
    try:
        first = kernel("spark.conf.get('spark.labwork.user')")
        assert first.ok and "'bob'" in first.text, first.text
        config = (tmp_path / "sm" / "conf" / "config.json").read_text()
        assert tokens["bob"] not in config and cp.token not in config
        assert json.loads(config)["kernel_python_credentials"]["auth"] == "Labwork_Token"
        with as_user(cp, tokens["bob"]) as bob:
            mine = bob.get("/livy/sessions").json()["sessions"]
            assert [(s["owner"], s["proxyUser"]) for s in mine] == [("bob", "bob")], mine
        refused = kernel('%%configure -f\n{"proxyUser": "alice", "driverMemory": "512m"}')
        assert "403" in refused.text and "proxyUser 'alice' refused" in refused.text, refused.text
    finally:
        kernel.stop()


def test_sparkmagic_without_a_token_says_so(cp: ControlPlane, tmp_path: Path) -> None:
    from labwork.gateway.sparkmagic_kernels import TOKEN_AUTH, sparkmagic_kernel_spec
    from labwork.gateway.sparkmagic_auth import MISSING, PersonalToken
    from sparkmagic.livyclientlib.exceptions import BadUserConfigurationException
    sparkmagic_kernel_spec(display_name="x", language="python", conf_dir=tmp_path, livy_url=cp.url + "/livy",
                           auth=TOKEN_AUTH)
    with pytest.raises(ValueError, match="give no username or password"):
        sparkmagic_kernel_spec(display_name="x", language="python", conf_dir=tmp_path,
                               livy_url=cp.url + "/livy", auth=TOKEN_AUTH, password=cp.token)
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("LABWORK_TOKEN", raising=False)
        with pytest.raises(BadUserConfigurationException, match="LABWORK_TOKEN is not set"):
            requests.get(cp.url + "/livy/sessions", auth=PersonalToken(), timeout=30)
    assert "labwork token create" in MISSING


def test_dashboard_jobs_and_launches_are_their_projects(cp: ControlPlane, tokens: dict[str, str],
                                                        project: dict) -> None:
    with as_user(cp, tokens["alice"]) as alice, as_user(cp, tokens["dave"]) as dave, \
            as_user(cp, tokens["carol"]) as carol:
        r = carol.post(f"/projects/{project['id']}/compute/prepare", data={"runconfig": "local"},
                       follow_redirects=False)
        assert r.status_code == 303, r.text
        job = re.search(r'data-job="([^"]+)"', carol.get(f"/projects/{project['id']}/compute").text).group(1)
        assert alice.get(f"/jobs/{job}.json").json()["project_id"] == project["id"]  # a member
        unknown = dave.get("/jobs/nosuchjob.json")
        theirs = dave.get(f"/jobs/{job}.json")
        assert theirs.status_code == unknown.status_code == 404
        assert theirs.json()["msg"] == unknown.json()["msg"].replace("nosuchjob", job)
        # a kernel launch is recorded only for a project the caller is a member of
        body = {"project_path": project["path"], "runconfig": "local", "notebook": "a.ipynb"}
        r = dave.post("/api/kernels/launched", json=body)
        assert r.status_code == 404 and r.json()["msg"] == f"no registered project at '{project['path']}'"
        assert alice.post("/api/kernels/launched", json=body).status_code == 201
        recent = alice.get(f"/api/projects/{project['id']}/notebooks/recent").json()
        assert len(recent) == 1, recent


def test_a_restart_keeps_the_owner(cp: ControlPlane, tokens: dict[str, str], alice_session: int) -> None:
    """The control plane dies (SIGKILL) with the driver running; the next one takes the session back,
    still alice's: bob still gets 404, alice's variables are there."""
    import signal
    with livy_as(cp, tokens["alice"]) as alice:
        assert text(run(alice, alice_session, "kept = 'mine'")) == ""
    cp.stop(signal.SIGKILL)
    cp.start()
    with livy_as(cp, tokens["alice"]) as alice:
        s = wait_session(alice, alice_session, {"idle", "dead", "error"}, timeout=120)
        assert s["state"] == "idle" and (s["owner"], s["proxyUser"]) == ("alice", "alice"), s
        assert text(run(alice, alice_session, "kept")) == "'mine'"
    with as_user(cp, tokens["bob"]) as bob:
        assert bob.get(f"/livy/sessions/{alice_session}").status_code == 404
    with as_user(cp, tokens["alice"]) as alice:
        assert alice.delete(f"/livy/sessions/{alice_session}").status_code == 200
