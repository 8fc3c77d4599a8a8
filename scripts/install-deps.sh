#!/usr/bin/env bash
# Installs the Debian packages ecrm needs to build, test and run, if any is missing.
# Idempotent and quiet when everything is there. Needs root (or sudo) only when something is missing.
set -euo pipefail

PACKAGES=(
  build-essential cmake ninja-build ccache pkg-config
  librocksdb-dev libsimdjson-dev libboost-dev prometheus-cpp-dev libabsl-dev
  libjemalloc-dev libxxhash-dev libcli11-dev libyaml-cpp-dev libspdlog-dev libfmt-dev zlib1g-dev libzstd-dev libre2-dev libssl-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  nodejs npm prometheus curl python3 python3-venv python3-yaml
  kcat openjdk-17-jdk-headless maven clang-format
)

# `install-deps.sh --fuzz`: also clang with libFuzzer and the sanitizer runtimes (bench/fuzz/run.sh).
# `make test` does not need them: it replays the fuzz targets built by GCC.
if [ "${1:-}" = "--fuzz" ]; then
  PACKAGES+=(clang-16 libclang-rt-16-dev llvm-16)  # llvm-16: the symbolizer
fi

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    # nodejs from NodeSource bundles npm; accept a working npm binary instead of the Debian package.
    if [ "$p" = npm ] && command -v npm >/dev/null 2>&1; then continue; fi
    if [ "$p" = nodejs ] && command -v node >/dev/null 2>&1; then continue; fi
    # Java and Maven may come from elsewhere (e.g. a Temurin JDK); a working binary is enough.
    if [ "$p" = openjdk-17-jdk-headless ] && command -v java >/dev/null 2>&1; then continue; fi
    if [ "$p" = maven ] && command -v mvn >/dev/null 2>&1; then continue; fi
    missing+=("$p")
  fi
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}"
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
# librdkafka 2.8.0 from Debian trixie's source, built once into a cache outside the tree.
bash "$(dirname "$0")/build-librdkafka.sh"
