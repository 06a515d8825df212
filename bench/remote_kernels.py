"""Kernel start to the first `1+1`: a prepared docker kernel, a remote (SSH) kernel and a remote
Docker kernel (docker_host = ssh://..., its ports and the control plane through the kernel's SSH
tunnel) against a local "<project> local" kernel, alternating in one run, all through
jupyter_client with labwork's KernelSpecManager (so each goes through its real provisioner).

    .venv/bin/python bench/remote_kernels.py [ROUNDS]

Needs root, Debian's docker.io, debootstrap and openssh-server (scripts/setup.sh test installs
them): it uses the tests' daemon and base image (tests/support/docker_host.py, built once per
machine), an sshd on 127.0.0.2, and a second one whose sessions find that daemon (the remote
Docker host). Goals: docker <= 2.5x local, remote <= 3x local (medians); remote Docker is shown
against local and against docker on the same daemon without SSH (the tunnels' cost).
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
    dsshd = sh.start_sshd(tmp / "sshd-docker", set_env={"DOCKER_HOST": daemon.url})
    try:
        dh.ensure_base_image(daemon, tmp / "base")
        from labwork.kernels.prepare import prepare_runconfig
        from labwork.project import attach_target, init_project, load_project
        from labwork.settings import load_settings
        root = init_project(tmp / "proj", "benchProj").root
        attach_target(root, "docker", "docker", {"image": dh.BASE_IMAGE, "docker_host": daemon.url})
        attach_target(root, "remote", "vm", {"host": sshd.host, "port": sshd.port, "user": sshd.user,
                                             "key_file": str(sshd.key_file), "known_hosts": str(sshd.known_hosts)})
        attach_target(root, "docker", "far", {"image": dh.BASE_IMAGE, "key_file": str(dsshd.key_file),
                                              "docker_host": f"ssh://{dsshd.user}@{dsshd.host}:{dsshd.port}",
                                              "known_hosts": str(dsshd.known_hosts)})
        for rc in ("docker", "vm", "far"):
            print(f"preparing {rc} ...", flush=True)
            prepare_runconfig(load_project(root), rc, load_settings())
        os.environ["LABWORK_PROJECT_DIR"] = str(root)
        from labwork.kernels.specmanager import LabworkKernelSpecManager
        ksm = LabworkKernelSpecManager()
        names = {"local": "labwork-local", "docker": "labwork-docker", "remote": "labwork-vm",
                 "remote docker": "labwork-far"}
        med = alternate(ksm, names, rounds, now=False)  # warmed first: image layers, ssh, imports
        for key in names:
            rc = {"remote": "vm", "remote docker": "far"}.get(key, key)
            print(f"'benchProj {rc}' kernel ({key}): median {med[key] * 1000:7.1f} ms  (n={rounds})")
        print(f"ratio docker/local: {med['docker'] / med['local']:.2f}  (goal <= 2.5)")
        print(f"ratio remote/local: {med['remote'] / med['local']:.2f}  (goal <= 3)")
        print(f"ratio remote docker/local: {med['remote docker'] / med['local']:.2f}  "
              f"(remote docker/docker: {med['remote docker'] / med['docker']:.2f})")
    finally:
        sh.stop_sshd(dsshd)
        sh.stop_sshd(sshd)
        dh.stop_daemon(daemon)


if __name__ == "__main__":
    main()
