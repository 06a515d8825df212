"""Kernel start to the first `1+1` of a remote (SSH) kernel whose project is copied with rsync at
every start, against the same host sharing the folder and a local "<project> local" kernel, in one
run (alternating). The project holds 200 small files and a .gitignore'd 20 MB file (never sent).

    .venv/bin/python bench/remote_copy.py [ROUNDS]

Needs root and Debian's openssh-server and rsync: an sshd on 127.0.0.2 (tests/support/ssh_host.py).
"""
from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.kernel_first_result import alternate  # noqa: E402


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    from tests.support import ssh_host as sh
    tmp = Path(tempfile.mkdtemp(prefix="lw-bench-copy-"))
    os.environ["LABWORK_HOME"] = str(tmp / "home")
    sshd = sh.start_sshd(tmp / "sshd")
    try:
        from labwork.kernels.prepare import prepare_runconfig
        from labwork.project import attach_target, init_project, load_project
        from labwork.settings import load_settings
        root = init_project(tmp / "proj", "benchProj").root
        for i in range(200):
            (root / "src" / f"m{i // 20}").mkdir(parents=True, exist_ok=True)
            (root / "src" / f"m{i // 20}" / f"f{i}.py").write_text(f"x = {i}\n" * 50)
        (root / ".gitignore").write_text("*.bin\n")
        (root / "big.bin").write_bytes(os.urandom(20 << 20))
        conn = {"host": sshd.host, "port": sshd.port, "user": sshd.user, "key_file": str(sshd.key_file),
                "known_hosts": str(sshd.known_hosts)}
        attach_target(root, "remote", "vm", conn | {"project_files": "shared"})
        attach_target(root, "remote", "vmcopy", conn | {"project_files": "copy"})
        for rc in ("vm", "vmcopy"):
            print(f"preparing {rc} ...", flush=True)
            prepare_runconfig(load_project(root), rc, load_settings())
        os.environ["LABWORK_PROJECT_DIR"] = str(root)
        from labwork.kernels.specmanager import LabworkKernelSpecManager
        ksm = LabworkKernelSpecManager()
        names = {"local": "labwork-local", "shared": "labwork-vm", "copy": "labwork-vmcopy"}
        med = alternate(ksm, names, rounds, now=False)  # warmed first: the first copy sends everything
        for key in names:
            print(f"{key:>6} kernel: median {med[key] * 1000:7.1f} ms  (n={rounds})")
        print(f"ratio copy/shared: {med['copy'] / med['shared']:.2f}")
        print(f"ratio copy/local:  {med['copy'] / med['local']:.2f}")
    finally:
        from labwork.kernels.remote_copy import copy_path
        sshd.ssh(f"rm -rf \"$HOME\"/{copy_path(str(tmp / 'proj')).rsplit('/', 1)[0]}")
        sh.stop_sshd(sshd)


if __name__ == "__main__":
    main()
