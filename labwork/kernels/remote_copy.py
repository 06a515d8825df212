"""The project on a remote host: shared at the same path, or a copy brought up to date over SSH;
and the run-history spool a remote kernel left on its host, brought back to the control plane.

Both go over the kernel's own OpenSSH master connection (labwork.kernels.ssh):

* `place_project` decides where the kernel starts. The target's `project_files` says `shared`
  (the host sees the project at the same path: NFS, the same machine), `copy`, or `detect` (the
  default): shared when the host has `labwork.toml` at the project's path with the same bytes as
  here, else a copy. The copy is `~/.labwork-remote/projects/<hash of the project path>/<folder
  name>` on the host, updated with `rsync -a --delete` at every kernel start; `outputs/`, `.git/`
  and what the `.gitignore` files exclude are not copied (and what the copy's `outputs/` holds is
  never deleted by the update). The kernel gets `LABWORK_PROJECT_COPY` so `%labwork upload
  outputs/...` resolves in the copy and the file reaches the run through the control plane.
* `bring_back_spools` runs at kernel shutdown and at the next start: the spool files on the host
  whose kernel is gone (their lock is free) come back as JSON over SSH, are written into the
  control plane's own spool folder (blobs first, then the `.jsonl` atomically), and only then are
  removed on the host. The control plane replays its orphan spools (labwork.history.delivery);
  every record carries an id the store keeps once, so a copy brought back twice (say the removal
  on the host failed) is still stored exactly once.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

from labwork.errors import MissingExtra, Unavailable
from labwork.kernels.ssh import Ssh, q
from labwork.private import private_dir, write_private

PROJECT_FILES = ("detect", "shared", "copy")
COPIES = ".labwork-remote/projects"
_NAME = re.compile(r"[A-Za-z0-9_-]{1,80}")

_LIST_SPOOLS = """
import base64, json, sys
from pathlib import Path
from labwork.history.delivery import orphan_spools, read_spool
d, out = Path(sys.argv[1]), []
if d.is_dir():
    for p in orphan_spools(d):
        blobs = {}
        for r in read_spool(p):
            b = d / "blobs" / str(r.get("blob"))
            if r.get("type") == "artifact" and b.is_file():
                blobs[b.name] = base64.b64encode(b.read_bytes()).decode()
        out.append({"name": p.name, "text": p.read_text(encoding="utf-8"), "blobs": blobs})
sys.stdout.write(json.dumps(out))
"""


def copy_path(project_root: str) -> str:
    """Where the copy of the project lives, relative to the remote user's home."""
    slug = hashlib.sha1(project_root.encode()).hexdigest()[:12]
    return f"{COPIES}/{slug}/{Path(project_root).name}"


def place_project(ssh: Ssh, project_root: str, mode: str) -> str | None:
    """Bring the project to the host as `mode` asks; the copy's absolute path, or None if shared."""
    if mode not in PROJECT_FILES:
        raise Unavailable(f"project_files = {mode!r} in the compute target: expected one of "
                          f"{', '.join(PROJECT_FILES)}", where=ssh.where)
    if mode == "shared":
        return None
    rel = copy_path(project_root)
    toml = Path(project_root) / "labwork.toml"
    digest = hashlib.sha256(toml.read_bytes()).hexdigest() if toml.is_file() else "none"
    remote_toml = q(f"{project_root}/labwork.toml")
    probe = (f"if [ {q(mode)} = detect ] && [ -f {remote_toml} ] && "
             f"[ \"$(sha256sum < {remote_toml} | cut -d' ' -f1)\" = {digest} ]; then echo shared; "
             f"else mkdir -p \"$HOME\"/{q(rel)} && echo \"copy $HOME\"; fi")
    answer = ssh.run(probe, timeout=60).stdout.decode().strip()
    if answer == "shared":
        return None
    dest = f"{answer.removeprefix('copy ').strip()}/{rel}"
    sync_project(ssh, project_root, dest)
    return dest


def sync_project(ssh: Ssh, project_root: str, dest: str) -> None:
    """rsync the project folder to `dest` on the host, over the kernel's SSH connection."""
    exe = shutil.which("rsync")
    if not exe:
        raise MissingExtra("remote", "copying the project to a remote host (rsync: apt-get install rsync)")
    args = ssh.args(master=True)
    login = args[-1]
    cmd = [exe, "-a", "--delete", "--exclude=/outputs/", "--exclude=/.git/", "--filter=:- .gitignore",
           "-e", shlex.join(args[:-1]), project_root.rstrip("/") + "/", f"{login}:{dest}/"]
    proc = subprocess.run(cmd, capture_output=True, timeout=1800)
    if proc.returncode == 0:
        return
    err = proc.stderr.decode(errors="replace").strip()
    if proc.returncode == 255:
        raise ssh.failure(err)
    hint = ("install rsync on the host (Debian: apt-get install rsync)" if "not found" in err
            else "or set project_files = \"shared\" in the compute target if the host shares the folder")
    raise Unavailable(f"copying the project to {ssh.where}:{dest} failed (rsync exit {proc.returncode}): "
                      f"{err[-400:]}", where=ssh.where, hint=hint)


def bring_back_spools(ssh: Ssh, python: str, lib: str, remote_home: str, local_spool: Path) -> int:
    """Move the host's orphaned spool files into the control plane's spool; how many came back."""
    script = (f"cd / && PYTHONPATH={q(lib)} {q(python)} -c {q(_LIST_SPOOLS)} {q(remote_home + '/spool')}")
    out = ssh.run(script, timeout=600).stdout.decode()
    try:
        files = json.loads(out or "[]")
    except ValueError as exc:
        raise Unavailable(f"the spool list from {ssh.where} is not JSON: {out[:200]!r}", where=ssh.where) from exc
    done: list[str] = []
    for item in files if isinstance(files, list) else []:
        if not isinstance(item, dict):
            continue
        name, text, blobs = str(item.get("name", "")), item.get("text"), item.get("blobs") or {}
        if not name.endswith(".jsonl") or not _NAME.fullmatch(name[:-6]) or not isinstance(text, str) \
                or not isinstance(blobs, dict) or not all(_NAME.fullmatch(str(b)) for b in blobs):
            continue  # not a spool labwork wrote: left on the host
        try:
            decoded = {blob: base64.b64decode(str(data), validate=True) for blob, data in blobs.items()}
        except (binascii.Error, ValueError):
            continue
        private_dir(local_spool / "blobs")
        for blob, data in decoded.items():
            write_private(local_spool / "blobs" / blob, data)
        tmp = local_spool / f".{name}.incoming"
        write_private(tmp, text)
        os.replace(tmp, local_spool / name)
        done += [name, name[:-6] + ".lock", *(f"blobs/{b}" for b in blobs)]
    if done:
        spool = remote_home + "/spool"
        ssh.run("rm -f " + " ".join(q(f"{spool}/{n}") for n in done), timeout=120)
    return sum(1 for n in done if n.endswith(".jsonl"))
