#!/usr/bin/env bash
# Tests the OCI image archive of scripts/build-image.sh. Usage: tests/image/run.sh [path/to/ecrm]
#
# Builds the archive twice and compares the bytes (reproducible), checks its index, manifest,
# config and layer (check_archive.py), unpacks the layer into a root file system, checks that the
# binary there finds every library, starts it from that root as uid 65532 (chroot as root, else an
# unprivileged user namespace), gets 200 from /healthz, and stops it with SIGTERM, which must end
# it with status 0 within 10 s. No container engine needed. Prints what failed; exit 1 then.
set -euo pipefail
start_s="$(date +%s)"
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
bin="$(realpath "${1:-$root/build/ecrm}")"
dir="$(mktemp -d "${TMPDIR:-/tmp}/ecrm-image-test.XXXXXX")"
pid=""
cleanup() {
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
  rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 1' INT TERM
fail() {
  echo "FAIL: $*" >&2
  [ -f "$dir/ecrm.log" ] && { echo "--- ecrm's output:" >&2; cat "$dir/ecrm.log" >&2; }
  exit 1
}
now_ms() { date +%s%3N; }

# 1. Two builds of the same binary give the same bytes.
t0="$(now_ms)"
bash "$root/scripts/build-image.sh" "$bin" "$dir/a.tar" >"$dir/build-a.log" 2>&1 ||
  { cat "$dir/build-a.log" >&2; fail "scripts/build-image.sh failed"; }
t1="$(now_ms)"
bash "$root/scripts/build-image.sh" "$bin" "$dir/b.tar" >"$dir/build-b.log" 2>&1 ||
  { cat "$dir/build-b.log" >&2; fail "scripts/build-image.sh failed the second time"; }
t2="$(now_ms)"
sum_a="$(sha256sum <"$dir/a.tar" | cut -d' ' -f1)"
sum_b="$(sha256sum <"$dir/b.tar" | cut -d' ' -f1)"
[ "$sum_a" = "$sum_b" ] || fail "two builds differ: archives sha256 $sum_a and $sum_b (not reproducible)"

# 2. The archive's structure, config and layer.
revision="$(git -C "$root" rev-parse HEAD 2>/dev/null || true)"
read -r digest layer < <(python3 "$here/check_archive.py" "$dir/a.tar" "$bin" ${revision:+"$revision"}) ||
  fail "the archive is not what it should be (above)"
[ -n "${layer:-}" ] || fail "check_archive.py printed no layer"
echo "image $digest, $(stat -c %s "$dir/a.tar") bytes; builds took $((t1 - t0)) and $((t2 - t1)) ms"
if command -v skopeo >/dev/null 2>&1; then  # not needed, but a second reader where it is installed
  skopeo inspect "oci-archive:$dir/a.tar" >/dev/null || fail "skopeo cannot read it as oci-archive"
  skopeo inspect "docker-archive:$dir/a.tar" >/dev/null || fail "skopeo cannot read it as docker-archive"
fi

# 3. The layer as a root file system: every library found, as the loader inside sees it.
rootfs="$dir/rootfs"
mkdir "$rootfs"
tar -xf "$dir/a.tar" -C "$dir" "$layer"
if [ "$(id -u)" -eq 0 ]; then
  tar -xzf "$dir/$layer" -C "$rootfs" --numeric-owner --same-owner --same-permissions
  in_root=(chroot "$rootfs")
  as_ecrm=(chroot --userspec=65532:65532 "$rootfs")
else
  # Without root: a user namespace maps this user to 65532 inside and enters the root there.
  tar -xzf "$dir/$layer" -C "$rootfs" --no-same-owner
  in_root=(unshare --user --map-root-user --root="$rootfs")
  as_ecrm=(unshare --user --map-user=65532 --map-group=65532 --root="$rootfs")
fi
interp="$(readelf -l "$bin" 2>/dev/null | sed -n 's/.*Requesting program interpreter: \(.*\)]/\1/p')"
interp="${interp:-/lib64/ld-linux-x86-64.so.2}"
"${in_root[@]}" "$interp" --list /usr/local/bin/ecrm >"$dir/ldd.txt" 2>&1 ||
  { cat "$dir/ldd.txt" >&2; fail "the loader inside the root cannot list the binary's libraries"; }
if grep -q 'not found' "$dir/ldd.txt"; then
  grep 'not found' "$dir/ldd.txt" >&2
  fail "libraries missing from the image (above)"
fi

# 4. ecrm runs from that root as 65532, answers /healthz, and stops cleanly on SIGTERM.
"${as_ecrm[@]}" /usr/local/bin/ecrm serve --http-addr 127.0.0.1:0 --data-dir /var/lib/ecrm \
  >"$dir/ecrm.log" 2>&1 &
pid=$!
addr_file="$rootfs/var/lib/ecrm/ecrm.addr"
for _ in $(seq 150); do
  [ -s "$addr_file" ] && break
  kill -0 "$pid" 2>/dev/null || fail "ecrm exited at start"
  sleep 0.1
done
[ -s "$addr_file" ] || fail "ecrm wrote no $addr_file within 15 s"
addr="$(cat "$addr_file")"
uid="$(awk '/^Uid:/ { print $2 }' "/proc/$pid/status")"
[ "$(id -u)" -ne 0 ] || [ "$uid" = 65532 ] || fail "ecrm runs as uid $uid, not 65532"
code="$(curl -s -o "$dir/healthz.txt" -w '%{http_code}' --max-time 5 "http://$addr/healthz")" || true
[ "$code" = 200 ] || fail "GET http://$addr/healthz answered ${code:-nothing}, not 200"
grep -q '"ok"' "$dir/healthz.txt" || fail "GET /healthz body: $(cat "$dir/healthz.txt")"
kill -TERM "$pid"
for _ in $(seq 100); do
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.1
done
kill -0 "$pid" 2>/dev/null && fail "ecrm still runs 10 s after SIGTERM"
status=0
wait "$pid" || status=$?
pid=""
[ "$status" -eq 0 ] || fail "ecrm exited with status $status after SIGTERM, not 0"
[ "$(stat -c %u:%g "$rootfs/var/lib/ecrm/credentials.yaml")" = "$(stat -c %u:%g "$rootfs/var/lib/ecrm")" ] ||
  fail "credentials.yaml is not owned by the data dir's owner"
echo "image test: passed in $(($(date +%s) - start_s)) s"
