#!/usr/bin/env bash
# Installs helm, once, into a cache outside the tree and prints the binary's path. The chart tests
# (tests/helm/run.sh) use it; nothing in ecrm itself needs helm.
#
#   scripts/install-helm.sh              # prints e.g. /root/.cache/ecrm/helm-v3.21.4/helm
#   ECRM_CACHE_DIR=/some/dir scripts/install-helm.sh
#
# Helm is built from source with `go install` from the Go module proxy (no release tarball is
# downloaded), at a pinned version. The first run takes a few minutes on 2 cores; later runs are
# instant and print only the path. Needs Go (/usr/local/go/bin/go or `go` on PATH).
set -euo pipefail

VERSION=v3.21.4
# The Kubernetes version helm assumes without a cluster (helm template, helm lint): that of the
# client-go it is built with (v0.36.2 for helm v3.21.4), as helm's own Makefile stamps it.
# Unstamped, a source build assumes 1.20 and refuses charts that need a newer one.
K8S_MAJOR=1
K8S_MINOR=36
CACHE="${ECRM_CACHE_DIR:-${HOME:-/root}/.cache/ecrm}"
DIR="$CACHE/helm-$VERSION"
BIN="$DIR/helm"

if [ ! -x "$BIN" ]; then
  GO="${GO:-}"
  if [ -z "$GO" ]; then
    if [ -x /usr/local/go/bin/go ]; then GO=/usr/local/go/bin/go; else GO="$(command -v go || true)"; fi
  fi
  if [ -z "$GO" ]; then
    echo "install-helm: Go is needed to build helm (none at /usr/local/go/bin/go or on PATH)" >&2
    exit 1
  fi
  echo "install-helm: building helm $VERSION into $DIR (once; a few minutes)" >&2
  mkdir -p "$DIR"
  tmp="$(mktemp -d "$DIR/.build.XXXXXX")"
  trap 'rm -rf "$tmp"' EXIT
  # go install pkg@version ignores any go.mod around it. The flags are those of helm's Makefile:
  # the version (else `helm version` reports a development build) and the Kubernetes version.
  ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$VERSION"
  for pkg in helm.sh/helm/v3/pkg/chartutil helm.sh/helm/v3/pkg/lint/rules; do
    ldflags+=" -X $pkg.k8sVersionMajor=$K8S_MAJOR -X $pkg.k8sVersionMinor=$K8S_MINOR"
  done
  GOBIN="$tmp" GOFLAGS=-mod=mod GOTOOLCHAIN=local CGO_ENABLED=0 "$GO" install -trimpath \
    -ldflags "$ldflags" "helm.sh/helm/v3/cmd/helm@$VERSION" >&2
  mv "$tmp/helm" "$BIN"
  echo "install-helm: done" >&2
fi
echo "$BIN"
