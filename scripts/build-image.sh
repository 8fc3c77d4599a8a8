#!/usr/bin/env bash
# Builds ecrm's container image from a release binary, with no registry, no container engine and no
# network (the Go module proxy only, once, to build the tool):
#
#   scripts/build-image.sh build/ecrm build/ecrm-image.tar      # `make image`
#   podman load -i build/ecrm-image.tar    # or: docker load -i ...; skopeo copy oci-archive:... ...
#
# The archive is an OCI image layout in a tar (oci-layout, index.json, blobs/sha256/) that is also
# a `docker save` archive (manifest.json naming the same blobs), so podman, skopeo, containerd and
# docker load all take it. One gzip layer holds a minimal root file system staged here: the binary
# at /usr/local/bin/ecrm, every shared library `ldd` lists (at the path it lists, the dynamic
# loader included), the host's /etc/ssl/certs/ca-certificates.crt (Kafka TLS), /etc/passwd and
# /etc/group with the user ecrm (65532:65532), /etc/nsswitch.conf, /etc/hosts, /tmp and
# /var/lib/ecrm (the data dir, owned by 65532). The Dockerfile builds the same shape from Debian's
# packages, for shops that build with Docker.
#
# Reproducible: every time (config, history, label, file mtimes) is SOURCE_DATE_EPOCH, or else the
# commit time of HEAD; owners and modes are fixed and entries sorted, so the same binary on the
# same commit gives the same bytes and digest (tests/image/run.sh checks it).
#
# The tool is scripts/oci/ (Go, go-containerregistry), built once into
# $ECRM_CACHE_DIR/oci-<hash of its sources and the Go version>/ (default ~/.cache/ecrm/).
# Environment: SOURCE_DATE_EPOCH, ECRM_IMAGE_NAME (ecrm), ECRM_IMAGE_TAG (the version),
# ECRM_IMAGE_SOURCE (the origin remote, else https://github.com/ecrm/ecrm), CA_CERTS, GO.
set -euo pipefail

if [ $# -ne 2 ]; then
  echo "usage: $0 BINARY OUT.tar" >&2
  exit 2
fi
binary="$1"
out="$2"
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/.." && pwd)"
cache="${ECRM_CACHE_DIR:-${HOME:-/root}/.cache/ecrm}"
ca_certs="${CA_CERTS:-/etc/ssl/certs/ca-certificates.crt}"
[ -x "$binary" ] || { echo "build-image: $binary is not an executable" >&2; exit 1; }
[ -f "$ca_certs" ] || { echo "build-image: no CA bundle at $ca_certs (apt-get install ca-certificates)" >&2; exit 1; }

# The tool, once per version of its sources and of Go.
go="${GO:-/usr/local/go/bin/go}"
[ -x "$go" ] || go="$(command -v go)" || { echo "build-image: Go is needed once to build scripts/oci" >&2; exit 1; }
hash="$( (cd "$here/oci" && cat go.mod go.sum ./*.go && "$go" version) | sha256sum | cut -c1-16)"
tool_dir="$cache/oci-$hash"
if [ ! -x "$tool_dir/oci" ]; then
  echo "build-image: building the image tool into $tool_dir (once)" >&2
  mkdir -p "$cache"
  tmp_tool="$(mktemp -d "$cache/.oci-build.XXXXXX")"
  (cd "$here/oci" && CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS="-mod=readonly -buildvcs=false" \
    "$go" build -trimpath -o "$tmp_tool/oci" .) || { rm -rf "$tmp_tool"; exit 1; }
  # Another build may have won the race; its tool is the same.
  mv -T "$tmp_tool" "$tool_dir" 2>/dev/null || rm -rf "$tmp_tool"
fi

stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
root="$stage/rootfs"

# copy SRC DEST: SRC's content (symbolic links followed) at DEST inside the root, parents created.
copy() {
  mkdir -p "$root$(dirname "$2")"
  cp -L --preserve=mode "$1" "$root$2"
}
copy "$binary" /usr/local/bin/ecrm
# Every library ldd resolves, at the path it resolves to (the loader's from PT_INTERP); the vDSO has
# no file. Either way the loader finds them: /lib/<multiarch> is one of its default directories.
libs="$(ldd "$binary")" || { echo "build-image: ldd $binary failed" >&2; exit 1; }
if grep -q 'not found' <<<"$libs"; then
  echo "build-image: $binary has missing libraries:" >&2
  grep 'not found' <<<"$libs" >&2
  exit 1
fi
n_libs=0
while read -r path; do
  copy "$path" "$path"
  n_libs=$((n_libs + 1))
done < <(awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' <<<"$libs" | sort -u)
grep -q ld-linux <<<"$(cd "$root" && find . -name 'ld-*.so*')" ||
  { echo "build-image: ldd listed no dynamic loader" >&2; exit 1; }

copy "$ca_certs" /etc/ssl/certs/ca-certificates.crt
# OpenSSL's default paths (OPENSSLDIR /usr/lib/ssl), as Debian's openssl package links them; the
# config also sets SSL_CERT_FILE.
mkdir -p "$root/usr/lib/ssl"
ln -s /etc/ssl/certs/ca-certificates.crt "$root/usr/lib/ssl/cert.pem"
ln -s /etc/ssl/certs "$root/usr/lib/ssl/certs"
cat > "$root/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/sbin/nologin
ecrm:x:65532:65532:ecrm:/var/lib/ecrm:/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin
EOF
cat > "$root/etc/group" <<'EOF'
root:x:0:
ecrm:x:65532:
nogroup:x:65534:
EOF
cat > "$root/etc/nsswitch.conf" <<'EOF'
passwd: files
group: files
shadow: files
hosts: files dns
networks: files
protocols: files
services: files
EOF
# Container engines mount their own /etc/hosts; this one serves a plain chroot.
cat > "$root/etc/hosts" <<'EOF'
127.0.0.1 localhost
::1 localhost ip6-localhost ip6-loopback
EOF
mkdir -p "$root/tmp" "$root/var/lib/ecrm"

# Labels.
epoch="${SOURCE_DATE_EPOCH:-$(git -C "$repo" log -1 --format=%ct HEAD 2>/dev/null || echo 0)}"
created="$(date -u -d "@$epoch" +%Y-%m-%dT%H:%M:%SZ)"
version="$("$binary" version 2>/dev/null | awk 'NR == 1 { print $NF }')" || true
if ! [[ "$version" =~ ^[0-9][0-9A-Za-z.+~-]*$ ]]; then
  version="$(git -C "$repo" describe --tags --always 2>/dev/null || echo unknown)"
fi
revision="$(git -C "$repo" rev-parse HEAD 2>/dev/null || echo unknown)"
src_url="${ECRM_IMAGE_SOURCE:-$(git -C "$repo" remote get-url origin 2>/dev/null || true)}"
if [[ "$src_url" == git@*:* ]]; then  # git@host:owner/name -> https://host/owner/name
  src_url="${src_url#git@}"
  src_url="https://${src_url/://}"
fi
src_url="${src_url%.git}"
src_url="${src_url:-https://github.com/ecrm/ecrm}"
tag="${ECRM_IMAGE_TAG:-${version//[^A-Za-z0-9_.-]/-}}"

arch="$(dpkg --print-architecture 2>/dev/null || "$go" env GOARCH)"
mkdir -p "$(dirname "$out")"
"$tool_dir/oci" --rootfs "$root" --out "$out" --epoch "$epoch" --name "${ECRM_IMAGE_NAME:-ecrm}:$tag" \
  --arch "$arch" \
  --meta /tmp=0:0:1777 --meta /var/lib/ecrm=65532:65532:0750 \
  --user 65532:65532 --workdir /var/lib/ecrm \
  --entrypoint '["/usr/local/bin/ecrm"]' \
  --cmd '["serve","--http-addr","0.0.0.0:8080","--data-dir","/var/lib/ecrm"]' \
  --expose 8080/tcp \
  --env PATH=/usr/local/bin:/usr/bin:/bin \
  --env SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
  --label org.opencontainers.image.title=ecrm \
  --label "org.opencontainers.image.description=Real-time clickstream profiling service" \
  --label "org.opencontainers.image.version=$version" \
  --label "org.opencontainers.image.source=$src_url" \
  --label "org.opencontainers.image.revision=$revision" \
  --label "org.opencontainers.image.created=$created"
echo "build-image: $out: ${ECRM_IMAGE_NAME:-ecrm}:$tag, $n_libs libraries, $(du -h "$out" | cut -f1)" >&2
