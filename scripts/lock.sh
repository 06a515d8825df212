#!/usr/bin/env bash
# Refresh constraints.txt on purpose: resolve `.[all]` afresh (newest versions pyproject.toml's
# bounds allow) in a throw-away venv and pin every package it installed. Run the tests after it.
# Usage: scripts/lock.sh    (or `make lock`)
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
"$PY" -m venv "$tmp/venv"
"$tmp/venv/bin/python" -m pip install -q --upgrade pip
"$tmp/venv/bin/python" -m pip install -q ".[all]"
{
  echo "# Versions labwork's tests ran with, for every package of .[all]; scripts/setup.sh installs"
  echo "# with 'pip install -c constraints.txt'. Refresh on purpose with 'make lock', then run 'make test'."
  "$tmp/venv/bin/python" -m pip freeze --exclude-editable | grep -v -i '^labwork[= @]'
} > constraints.txt.new
mv constraints.txt.new constraints.txt
echo "labwork lock: wrote constraints.txt ($(grep -c '==' constraints.txt) packages)" >&2
