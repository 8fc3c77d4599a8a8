#!/usr/bin/env bash
# Builds librdkafka 2.8.0 (Debian trixie's source package) once into a cache outside the tree, as
# static libraries that ecrm links. Why not bookworm's 2.0.2: docs/kafka.md#which-librdkafka.
#
#   scripts/build-librdkafka.sh          # idempotent: quiet and instant once built
#   ECRM_CACHE_DIR=/some/dir scripts/build-librdkafka.sh
#
# The source comes from Debian's archive through apt (a trixie deb-src line in a private apt state
# directory, so the machine's own sources are not touched); apt verifies the archive's signature and
# the tarball's checksum. About 1 minute and 90 CPU-seconds on 2 cores.
set -euo pipefail

VERSION=2.8.0
CACHE="${ECRM_CACHE_DIR:-${HOME:-/root}/.cache/ecrm}"
PREFIX="$CACHE/librdkafka-$VERSION"
STAMP="$PREFIX/.built"
if [ -f "$STAMP" ]; then exit 0; fi

echo "build-librdkafka: building librdkafka $VERSION into $PREFIX (once; about a minute)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
chmod 755 "$work"  # apt downloads as its own user
mkdir -p "$work/lists/partial"
echo "deb-src http://deb.debian.org/debian trixie main" > "$work/sources.list"
apt_opts=(-o "Dir::Etc::sourcelist=$work/sources.list" -o "Dir::Etc::sourceparts=-"
  -o "Dir::State::Lists=$work/lists" -o "APT::Get::List-Cleanup=0")
apt-get "${apt_opts[@]}" update -qq
(cd "$work" && apt-get "${apt_opts[@]}" source --download-only -qq "librdkafka=$VERSION-1" 2>/dev/null)
tar -xzf "$work/librdkafka_$VERSION.orig.tar.gz" -C "$work"

cd "$work/librdkafka-$VERSION"
# SSL (TLS, SCRAM, OAUTHBEARER) through OpenSSL, zstd and zlib compression; PLAIN needs nothing.
# GSSAPI (Kerberos) would need Cyrus SASL and is left out; curl is only for OIDC token fetching.
./configure --prefix="$PREFIX" --disable-debug-symbols --enable-static --disable-curl \
  --enable-ssl --enable-zstd --enable-zlib --disable-gssapi > "$work/configure.log" 2>&1 ||
  { cat "$work/configure.log"; exit 1; }
make -j"$(nproc)" libs > "$work/make.log" 2>&1 || { tail -50 "$work/make.log"; exit 1; }
rm -rf "$PREFIX"
make install > "$work/install.log" 2>&1 || { tail -50 "$work/install.log"; exit 1; }
# Static only: the binary then runs without this cache (an image copies just the binary).
rm -f "$PREFIX"/lib/*.so*
touch "$STAMP"
echo "build-librdkafka: done"
