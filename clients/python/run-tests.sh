#!/usr/bin/env bash
# Tests of the Python client (clients/python) in a private venv, against a real ecrm binary.
#   clients/python/run-tests.sh <path/to/ecrm> [<build-dir>]   (build dir default: <repo>/build)
# The third-party packages (scikit-learn, numpy, pytest) live in a venv cached per machine,
# ${XDG_CACHE_HOME:-~/.cache}/ecrm/pyvenv-<hash of pyproject.toml and this script>, created once
# (this needs PyPI) and reused by every checkout, also offline. The client itself is tested from
# this checkout's sources (PYTHONPATH), never from an installed copy. <build-dir> is accepted for
# compatibility and unused.
# Extra pytest arguments can come from $PYTEST_ARGS. Exit code: pytest's.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"

if [[ $# -lt 1 || $# -gt 2 ]]; then
  echo "usage: $0 <path/to/ecrm> [<build-dir>]" >&2
  exit 2
fi
abspath() { case "$1" in /*) echo "$1" ;; *) echo "$(pwd)/$1" ;; esac; }
bin="$(abspath "$1")"
build="$(abspath "${2:-$repo/build}")"
: "$build"

# Keyed on pyproject.toml and this script (which say what gets installed).
want="$(cat "$here/pyproject.toml" "${BASH_SOURCE[0]}" | sha256sum | cut -c1-16)"
venv="${XDG_CACHE_HOME:-$HOME/.cache}/ecrm/pyvenv-$want"
stamp="$venv/.ecrm-deps-installed"
if [[ ! -x "$venv/bin/python" || ! -f "$stamp" ]]; then
  mkdir -p "$(dirname "$venv")"
  tmp="$venv.tmp.$$"
  rm -rf "$tmp"
  python3 -m venv "$tmp" || { rm -rf "$tmp"; echo "$0: python3 -m venv failed (Debian: apt-get install python3-venv)" >&2; exit 2; }
  # The extras of pyproject.toml, without the client itself.
  "$tmp/bin/python" -m pip install --quiet --disable-pip-version-check \
    "scikit-learn>=1.0" "numpy>=1.21" "pytest>=7"
  touch "$tmp/.ecrm-deps-installed"
  rm -rf "$venv"
  mv "$tmp" "$venv"  # a venv is relocatable enough for `python -m`: its scripts are not used
fi

cd "$here"
set +e
# shellcheck disable=SC2086  # PYTEST_ARGS is a list of words
PYTHONPATH="$here/src${PYTHONPATH:+:$PYTHONPATH}" ECRM_BINARY="$bin" \
  "$venv/bin/python" -m pytest -q -p no:cacheprovider ${PYTEST_ARGS:-} tests
exit $?
