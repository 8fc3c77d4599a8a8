package main

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// entryMeta overrides the owner and mode of one path in the layer (--meta PATH=UID:GID:MODE).
type entryMeta struct {
	uid, gid int
	mode     int64
}

// parseMeta reads "PATH=UID:GID:MODE" with an octal MODE, e.g. "/tmp=0:0:1777".
func parseMeta(s string) (string, entryMeta, error) {
	path, spec, ok := strings.Cut(s, "=")
	parts := strings.Split(spec, ":")
	if !ok || len(parts) != 3 {
		return "", entryMeta{}, fmt.Errorf("--meta %q: want PATH=UID:GID:MODE", s)
	}
	uid, err1 := strconv.Atoi(parts[0])
	gid, err2 := strconv.Atoi(parts[1])
	mode, err3 := strconv.ParseInt(parts[2], 8, 64)
	if err1 != nil || err2 != nil || err3 != nil || mode < 0 || mode > 0o7777 {
		return "", entryMeta{}, fmt.Errorf("--meta %q: UID and GID are decimal, MODE octal", s)
	}
	return strings.Trim(filepath.Clean("/"+path), "/"), entryMeta{uid, gid, mode}, nil
}

// layerTar writes the staged root file system under root as one uncompressed tar, reproducibly:
// entries in lexical walk order, every mtime set to mtime, owner 0:0 and modes 0755/0644 (0777 for
// symbolic links) unless meta names the path, no user or group names, no access or change times.
// So the bytes depend only on the paths, the file contents and the symbolic link targets.
func layerTar(root string, mtime time.Time, meta map[string]entryMeta) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	used := map[string]bool{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, path)
		if err != nil || rel == "." {
			return err
		}
		rel = filepath.ToSlash(rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		hdr := &tar.Header{Name: rel, ModTime: mtime, Format: tar.FormatPAX}
		switch {
		case info.Mode().IsDir():
			hdr.Typeflag, hdr.Name, hdr.Mode = tar.TypeDir, rel+"/", 0o755
		case info.Mode().IsRegular():
			hdr.Typeflag, hdr.Size, hdr.Mode = tar.TypeReg, info.Size(), 0o644
			if info.Mode().Perm()&0o111 != 0 {
				hdr.Mode = 0o755
			}
		case info.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(path)
			if err != nil {
				return err
			}
			hdr.Typeflag, hdr.Linkname, hdr.Mode = tar.TypeSymlink, target, 0o777
		default:
			return fmt.Errorf("%s: only directories, regular files and symbolic links go in the layer", path)
		}
		if m, ok := meta[rel]; ok {
			hdr.Uid, hdr.Gid, hdr.Mode = m.uid, m.gid, m.mode
			used[rel] = true
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if hdr.Typeflag != tar.TypeReg {
			return nil
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = io.Copy(tw, f)
		return err
	})
	if err != nil {
		return nil, err
	}
	for p := range meta {
		if !used[p] {
			return nil, fmt.Errorf("--meta names /%s, which is not in %s", p, root)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
