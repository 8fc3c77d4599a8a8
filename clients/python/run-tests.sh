#!/usr/bin/env bash
# Tests of the Python client (clients/python) in a private venv, against a real ecrm binary.
#   clients/python/run-tests.sh <path/to/ecrm> [<build-dir>]   (build dir default: <repo>/build)
# The venv lives in <build-dir>/pyvenv; it is created once and reused. pip runs only when
# pyproject.toml changed since the last install (a stamp file holds its hash).
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
venv="$build/pyvenv"

# Keyed on pyproject.toml and this script (which says what gets installed).
want="$(cat "$here/pyproject.toml" "${BASH_SOURCE[0]}" | sha256sum | cut -d' ' -f1)"
stamp="$venv/.ecrm-client-stamp"
if [[ ! -x "$venv/bin/python" || ! -f "$stamp" || "$(cat "$stamp")" != "$want" ]]; then
  mkdir -p "$build"
  if [[ ! -x "$venv/bin/python" ]]; then
    python3 -m venv "$venv" || { rm -rf "$venv"; echo "$0: python3 -m venv failed (Debian: apt-get install python3-venv)" >&2; exit 2; }
  fi
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    -e "$here[sklearn,test]"
  echo "$want" > "$stamp"
fi

cd "$here"
set +e
# shellcheck disable=SC2086  # PYTEST_ARGS is a list of words
ECRM_BINARY="$bin" "$venv/bin/python" -m pytest -q -p no:cacheprovider ${PYTEST_ARGS:-} tests
exit $?
