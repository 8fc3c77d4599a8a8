#!/usr/bin/env python3
"""Checks an image archive from scripts/build-image.sh without trusting the tool that wrote it.

    check_archive.py IMAGE.tar BINARY [REVISION]

Reads the archive as an OCI image layout and as a `docker save` archive, verifies every blob's
digest and size, the config (user, entrypoint, cmd, port, working dir, labels) and the layer (the
binary byte for byte, the dynamic loader its ELF header names, the files the image needs, owners,
modes and mtimes). Prints one line per failed check and exits 1 if any failed; on success prints
the manifest digest and the layer's blob path on stdout.
"""
import gzip
import hashlib
import io
import json
import struct
import sys
import tarfile

failures = []


def check(ok, what):
    if not ok:
        failures.append(what)
    return ok


def elf_interpreter(data):
    """The PT_INTERP path of a 64-bit little-endian ELF file, or None."""
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        return None
    phoff = struct.unpack_from("<Q", data, 0x20)[0]
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    for i in range(phnum):
        off = phoff + i * phentsize
        if struct.unpack_from("<I", data, off)[0] == 3:  # PT_INTERP
            p_offset = struct.unpack_from("<Q", data, off + 8)[0]
            p_filesz = struct.unpack_from("<Q", data, off + 32)[0]
            return data[p_offset:p_offset + p_filesz].rstrip(b"\0").decode()
    return None


def main():
    archive, binary = sys.argv[1], sys.argv[2]
    revision = sys.argv[3] if len(sys.argv) > 3 else None
    with tarfile.open(archive) as t:
        files = {m.name: t.extractfile(m).read() for m in t.getmembers() if m.isfile()}
        names = t.getnames()
    check(names == sorted(names), "archive entries are not sorted")

    def blob(digest, what):
        path = "blobs/" + digest.replace(":", "/")
        if not check(path in files, f"{what}: no blob {path}"):
            raise SystemExit(report())
        data = files[path]
        check("sha256:" + hashlib.sha256(data).hexdigest() == digest, f"{what}: {path} has another digest")
        return data

    check(json.loads(files.get("oci-layout", b"{}")).get("imageLayoutVersion") == "1.0.0",
          "oci-layout missing or not 1.0.0")
    index = json.loads(files["index.json"])
    check(index.get("schemaVersion") == 2, "index.json: schemaVersion is not 2")
    check(len(index.get("manifests", [])) == 1, "index.json: not exactly one manifest")
    desc = index["manifests"][0]
    check(desc.get("mediaType") == "application/vnd.oci.image.manifest.v1+json", "index.json: manifest media type")
    check(desc.get("annotations", {}).get("org.opencontainers.image.ref.name"), "index.json: no ref.name")
    manifest_bytes = blob(desc["digest"], "manifest")
    check(len(manifest_bytes) == desc.get("size"), "index.json: manifest size")
    manifest = json.loads(manifest_bytes)
    config_bytes = blob(manifest["config"]["digest"], "config")
    check(len(config_bytes) == manifest["config"]["size"], "manifest: config size")
    check(manifest["config"]["mediaType"] == "application/vnd.oci.image.config.v1+json", "manifest: config media type")
    config = json.loads(config_bytes)
    check(len(manifest["layers"]) == 1, "manifest: not exactly one layer")
    ldesc = manifest["layers"][0]
    layer_gz = blob(ldesc["digest"], "layer")
    check(len(layer_gz) == ldesc["size"], "manifest: layer size")
    check(ldesc["mediaType"] == "application/vnd.oci.image.layer.v1.tar+gzip", "manifest: layer media type")
    layer = gzip.decompress(layer_gz)
    check(config["rootfs"]["diff_ids"] == ["sha256:" + hashlib.sha256(layer).hexdigest()],
          "config: diff_id is not the uncompressed layer's digest")

    # The docker-save view names the same blobs.
    docker = json.loads(files["manifest.json"])
    check(len(docker) == 1 and docker[0]["Config"] == "blobs/" + manifest["config"]["digest"].replace(":", "/")
          and docker[0]["Layers"] == ["blobs/" + ldesc["digest"].replace(":", "/")]
          and len(docker[0].get("RepoTags", [])) == 1, "manifest.json does not match the OCI manifest")

    c = config["config"]
    check(config.get("os") == "linux" and config.get("architecture"), "config: os/architecture")
    check(c.get("User") == "65532:65532", f"config: User is {c.get('User')!r}, not 65532:65532")
    check(c.get("Entrypoint") == ["/usr/local/bin/ecrm"], f"config: Entrypoint is {c.get('Entrypoint')}")
    check(c.get("Cmd") == ["serve", "--http-addr", "0.0.0.0:8080", "--data-dir", "/var/lib/ecrm"],
          f"config: Cmd is {c.get('Cmd')}")
    check(list(c.get("ExposedPorts", {})) == ["8080/tcp"], "config: ExposedPorts is not 8080/tcp")
    check(c.get("WorkingDir") == "/var/lib/ecrm", "config: WorkingDir")
    labels = c.get("Labels") or {}
    for key in ("version", "source", "revision", "created"):
        check(labels.get("org.opencontainers.image." + key), f"config: label org.opencontainers.image.{key} missing")
    if revision:
        check(labels.get("org.opencontainers.image.revision") == revision, "config: revision label is not HEAD")
    check(labels.get("org.opencontainers.image.created") == config.get("created").replace("+00:00", "Z"),
          "config: created label and created differ")

    # The layer.
    with tarfile.open(fileobj=io.BytesIO(layer)) as t:
        members = {m.name.rstrip("/"): m for m in t.getmembers()}
        order = [m.name.rstrip("/") for m in t.getmembers()]
        contents = {m.name: t.extractfile(m).read() for m in t.getmembers() if m.isfile()}
    check(len(order) == len(members), "layer: duplicate entries")
    mtimes = {m.mtime for m in members.values()}
    check(len(mtimes) == 1, f"layer: mtimes differ ({len(mtimes)} distinct)")
    for i, name in enumerate(order):
        parent = name.rpartition("/")[0]
        check(not parent or order.index(parent) < i, f"layer: {name} comes before its directory")
    with open(binary, "rb") as f:
        ecrm = f.read()
    check(contents.get("usr/local/bin/ecrm") == ecrm, "layer: usr/local/bin/ecrm is not the binary")
    check(members.get("usr/local/bin/ecrm") is not None and members["usr/local/bin/ecrm"].mode == 0o755,
          "layer: usr/local/bin/ecrm is not mode 0755")
    interp = elf_interpreter(ecrm)
    check(interp is not None, "the binary names no dynamic loader")
    if interp:
        m = members.get(interp.lstrip("/"))
        check(m is not None and m.isfile() and m.mode & 0o111, f"layer: no executable loader {interp}")
    for path in ("etc/ssl/certs/ca-certificates.crt", "etc/passwd", "etc/group", "etc/nsswitch.conf"):
        check(path in contents and contents[path], f"layer: {path} missing or empty")
    check(b"\necrm:x:65532:65532:" in b"\n" + contents.get("etc/passwd", b""), "etc/passwd: no ecrm 65532:65532")
    check(b"\necrm:x:65532:" in b"\n" + contents.get("etc/group", b""), "etc/group: no ecrm 65532")
    tmp, data = members.get("tmp"), members.get("var/lib/ecrm")
    check(tmp is not None and tmp.isdir() and tmp.mode == 0o1777, "layer: /tmp is not a 1777 directory")
    check(data is not None and data.isdir() and (data.uid, data.gid) == (65532, 65532),
          "layer: /var/lib/ecrm is not a directory owned by 65532:65532")
    others = [n for n, m in members.items() if n != "var/lib/ecrm" and (m.uid, m.gid) != (0, 0)]
    check(not others, f"layer: owned by someone other than root: {others[:5]}")

    if failures:
        raise SystemExit(report())
    print(desc["digest"], "blobs/" + ldesc["digest"].replace(":", "/"))


def report():
    for f in failures:
        print("FAIL:", f, file=sys.stderr)
    return 1


if __name__ == "__main__":
    main()
