package main

import (
	"archive/tar"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"sort"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// blob is one file of the archive: a path and its bytes.
type blob struct {
	name string
	data []byte
}

// writeArchive writes img as one tar that is both an OCI image layout (oci-layout, index.json,
// blobs/sha256/...: podman load, skopeo oci-archive:, Docker 25+) and a `docker save` archive
// (manifest.json naming the same blobs: docker load of any version, skopeo docker-archive:).
// Entries are sorted and carry mtime, owner 0:0 and fixed modes, so equal images give equal bytes.
// repo is the image name without a tag ("ecrm"), tag its tag. The file appears at out only
// once complete.
func writeArchive(out string, img v1.Image, repo, tag string, mtime time.Time) error {
	manifest, err := img.RawManifest()
	if err != nil {
		return err
	}
	digest, err := img.Digest()
	if err != nil {
		return err
	}
	config, err := img.RawConfigFile()
	if err != nil {
		return err
	}
	configName, err := img.ConfigName()
	if err != nil {
		return err
	}
	layers, err := img.Layers()
	if err != nil {
		return err
	}

	blobs := []blob{
		{"oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)},
		{blobPath(digest), manifest},
		{blobPath(configName), config},
	}
	var layerPaths []string
	for _, l := range layers {
		d, err := l.Digest()
		if err != nil {
			return err
		}
		rc, err := l.Compressed()
		if err != nil {
			return err
		}
		data, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			return err
		}
		blobs = append(blobs, blob{blobPath(d), data})
		layerPaths = append(layerPaths, blobPath(d))
	}

	index := map[string]any{
		"schemaVersion": 2,
		"mediaType":     types.OCIImageIndex,
		"manifests": []map[string]any{{
			"mediaType": types.OCIManifestSchema1,
			"digest":    digest.String(),
			"size":      len(manifest),
			"annotations": map[string]string{
				// containerd and Docker 25+ name the image from this one, podman and skopeo from ref.name.
				"io.containerd.image.name":          "docker.io/library/" + repo + ":" + tag,
				"org.opencontainers.image.ref.name": tag,
			},
		}},
	}
	docker := []map[string]any{{
		"Config":   blobPath(configName),
		"RepoTags": []string{repo + ":" + tag},
		"Layers":   layerPaths,
	}}
	for name, v := range map[string]any{"index.json": index, "manifest.json": docker} {
		data, err := json.Marshal(v)
		if err != nil {
			return err
		}
		blobs = append(blobs, blob{name, append(data, '\n')})
	}
	sort.Slice(blobs, func(i, j int) bool { return blobs[i].name < blobs[j].name })

	tmp, err := os.CreateTemp(filepath.Dir(out), ".oci-*.tar")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	tw := tar.NewWriter(tmp)
	for _, dir := range []string{"blobs/", "blobs/sha256/"} {
		hdr := &tar.Header{Typeflag: tar.TypeDir, Name: dir, Mode: 0o755, ModTime: mtime, Format: tar.FormatPAX}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
	}
	for _, b := range blobs {
		hdr := &tar.Header{Typeflag: tar.TypeReg, Name: b.name, Mode: 0o644, Size: int64(len(b.data)),
			ModTime: mtime, Format: tar.FormatPAX}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if _, err := tw.Write(b.data); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), out)
}

func blobPath(h v1.Hash) string { return "blobs/" + h.Algorithm + "/" + h.Hex }
