"""Kernel start to the first `1+1`: a prepared docker kernel and a remote (SSH) kernel against a
local "<project> local" kernel, alternating in one run, all through jupyter_client with labwork's
KernelSpecManager (so each goes through its real provisioner).

    .venv/bin/python bench/remote_kernels.py [ROUNDS]

Needs root, Debian's docker.io, debootstrap and openssh-server (scripts/setup.sh test installs
them): it uses the tests' daemon and base image (tests/support/docker_host.py, built once per
machine) and an sshd on 127.0.0.2. Goals: docker <= 2.5x local, remote <= 3x local (medians).
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
    from tests.support import docker_host as dh
    from tests.support import ssh_host as sh
    tmp = Path(tempfile.mkdtemp(prefix="lw-bench-remote-"))
    os.environ["LABWORK_HOME"] = str(tmp / "home")
    daemon = dh.start_daemon()
    sshd = sh.start_sshd(tmp / "sshd")
    try:
        dh.ensure_base_image(daemon, tmp / "base")
        from labwork.kernels.prepare import prepare_runconfig
        from labwork.project import attach_target, init_project, load_project
        from labwork.settings import load_settings
        root = init_project(tmp / "proj", "benchProj").root
        attach_target(root, "docker", "docker", {"image": dh.BASE_IMAGE, "docker_host": daemon.url})
        attach_target(root, "remote", "vm", {"host": sshd.host, "port": sshd.port, "user": sshd.user,
                                             "key_file": str(sshd.key_file), "known_hosts": str(sshd.known_hosts)})
        for rc in ("docker", "vm"):
            print(f"preparing {rc} ...", flush=True)
            prepare_runconfig(load_project(root), rc, load_settings())
        os.environ["LABWORK_PROJECT_DIR"] = str(root)
        from labwork.kernels.specmanager import LabworkKernelSpecManager
        ksm = LabworkKernelSpecManager()
        names = {"local": "labwork-local", "docker": "labwork-docker", "remote": "labwork-vm"}
        med = alternate(ksm, names, rounds, now=False)  # warmed first: image layers, ssh, imports
        for key in names:
            print(f"'benchProj {key if key != 'remote' else 'vm'}' kernel: median {med[key] * 1000:7.1f} ms  (n={rounds})")
        print(f"ratio docker/local: {med['docker'] / med['local']:.2f}  (goal <= 2.5)")
        print(f"ratio remote/local: {med['remote'] / med['local']:.2f}  (goal <= 3)")
    finally:
        sh.stop_sshd(sshd)
        dh.stop_daemon(daemon)


if __name__ == "__main__":
    main()
