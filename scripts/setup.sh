#!/usr/bin/env bash
# Set up .venv for labwork on a fresh Debian machine: system packages, Java check, pip install.
# Usage: scripts/setup.sh [run|test]   (test also installs chromium for the browser tests)
set -euo pipefail
cd "$(dirname "$0")/.."
purpose="${1:-run}"
VENV="${VENV:-.venv}"
PY="${PYTHON:-python3}"

say() { printf 'labwork setup: %s\n' "$*" >&2; }

# Python 3.11+
if ! "$PY" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
  say "Python 3.11 or newer is needed as '$PY' (set PYTHON=/path/to/python3.11)"; exit 1
fi

# Java 17+ for PySpark
java_major() { java -version 2>&1 | awk -F'"' '/version/ {split($2, v, "."); print (v[1] == "1" ? v[2] : v[1]); exit}'; }
if ! command -v java >/dev/null 2>&1; then
  say "Java 17 or newer is needed for Spark and was not found."
  say "  install it with: apt-get install -y openjdk-17-jre-headless   (or set JAVA_HOME and PATH)"; exit 1
fi
jm="$(java_major)"
if [ -z "$jm" ] || [ "$jm" -lt 17 ]; then
  say "Java 17 or newer is needed for Spark; found Java ${jm:-unknown} ($(command -v java))."
  say "  install it with: apt-get install -y openjdk-17-jre-headless"; exit 1
fi

# Debian packages: libkrb5-dev (sparkmagic -> requests-kerberos -> gssapi builds against it),
# chromium for the browser tests, docker.io/debootstrap/openssh-server for the remote-kernel tests.
need=()
dpkg -s libkrb5-dev >/dev/null 2>&1 || need+=(libkrb5-dev)
if [ "$purpose" = test ]; then
  [ -x /usr/bin/chromium ] || need+=(chromium)
  # Docker and SSH kernels' tests (tests/support/docker_host.py, ssh_host.py): a test dockerd,
  # a base image made with debootstrap (no registry needed), an sshd on 127.0.0.2. Root only: a
  # non-root run skips those tests, so their packages are named but not demanded.
  remote_need=()
  command -v dockerd >/dev/null 2>&1 || remote_need+=(docker.io)
  command -v debootstrap >/dev/null 2>&1 || [ -x /usr/sbin/debootstrap ] || remote_need+=(debootstrap)
  [ -x /usr/sbin/sshd ] || remote_need+=(openssh-server)
  if [ ${#remote_need[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ]; then
      need+=("${remote_need[@]}")
    else
      say "the Docker and SSH kernel tests need these Debian packages and root; they are skipped without:"
      say "  sudo apt-get install -y ${remote_need[*]}   (then run the tests as root)"
    fi
  fi
fi
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    say "installing Debian packages: ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq "${need[@]}" >/dev/null
  else
    say "these Debian packages are needed: ${need[*]}"
    say "  install them with: sudo apt-get install -y ${need[*]}"; exit 1
  fi
fi

# The virtual environment, reinstalled when pyproject.toml or constraints.txt changes. Versions
# come from constraints.txt (what the tests ran with); `make lock` refreshes it on purpose.
[ -x "$VENV/bin/python" ] || { say "creating $VENV"; "$PY" -m venv "$VENV"; }
stamp="$VENV/.labwork-installed-$(cat pyproject.toml constraints.txt | sha1sum | cut -c1-12)"
if [ ! -f "$stamp" ]; then
  say "installing labwork and its dependencies into $VENV (first time takes a few minutes)"
  "$VENV/bin/python" -m pip install -q --upgrade pip
  "$VENV/bin/python" -m pip install -q -c constraints.txt -e ".[all]"
  rm -f "$VENV"/.labwork-installed-*
  touch "$stamp"
fi
