// Command oci turns a staged root file system into a one-layer OCI image archive, reproducibly and
// without a registry, a daemon or the network. scripts/build-image.sh stages the file system and
// calls it; it is built once into ~/.cache/ecrm/oci-<hash of these sources>/.
//
//	oci --rootfs DIR --out IMAGE.tar --epoch SECONDS --name ecrm:TAG [--meta /PATH=UID:GID:MODE]...
//	    [--user U:G] [--entrypoint JSON] [--cmd JSON] [--workdir DIR] [--expose 8080/tcp]...
//	    [--env K=V]... [--label K=V]... [--arch amd64]
//
// The image is built with go-containerregistry (empty image, mutate) and written by writeArchive
// (archive.go). The same inputs give the same bytes, hence the same digest.
package main

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// list is a repeatable string flag.
type list []string

func (l *list) String() string     { return strings.Join(*l, ",") }
func (l *list) Set(s string) error { *l = append(*l, s); return nil }

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "oci:", err)
		os.Exit(1)
	}
}

func run() error {
	var metas, exposes, envs, labels list
	rootfs := flag.String("rootfs", "", "staged root file system (required)")
	out := flag.String("out", "", "image archive to write (required)")
	epoch := flag.Int64("epoch", -1, "creation time and every file's mtime, Unix seconds (required)")
	name := flag.String("name", "", "image name REPO:TAG (required)")
	user := flag.String("user", "", "config User")
	entrypoint := flag.String("entrypoint", "", "config Entrypoint, a JSON array")
	cmd := flag.String("cmd", "", "config Cmd, a JSON array")
	workdir := flag.String("workdir", "", "config WorkingDir")
	arch := flag.String("arch", runtime.GOARCH, "image architecture")
	flag.Var(&metas, "meta", "/PATH=UID:GID:MODE owner and octal mode of one path (repeatable)")
	flag.Var(&exposes, "expose", "exposed port, e.g. 8080/tcp (repeatable)")
	flag.Var(&envs, "env", "K=V environment variable (repeatable)")
	flag.Var(&labels, "label", "K=V label (repeatable)")
	flag.Parse()
	repo, tag, ok := strings.Cut(*name, ":")
	if *rootfs == "" || *out == "" || *epoch < 0 || !ok || repo == "" || tag == "" || flag.NArg() != 0 {
		flag.Usage()
		return fmt.Errorf("--rootfs, --out, --epoch and --name REPO:TAG are required")
	}
	created := time.Unix(*epoch, 0).UTC()

	meta := map[string]entryMeta{}
	for _, m := range metas {
		p, em, err := parseMeta(m)
		if err != nil {
			return err
		}
		meta[p] = em
	}
	layerBytes, err := layerTar(*rootfs, created, meta)
	if err != nil {
		return err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerBytes)), nil
	}, tarball.WithCompressionLevel(gzip.DefaultCompression), tarball.WithMediaType(types.OCILayer),
		tarball.WithCompressedCaching)
	if err != nil {
		return err
	}

	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err = mutate.Append(img, mutate.Addendum{
		Layer:     layer,
		MediaType: types.OCILayer,
		History: v1.History{Created: v1.Time{Time: created}, CreatedBy: "scripts/build-image.sh",
			Comment: "root file system staged from the host's binary, libraries and CA certificates"},
	})
	if err != nil {
		return err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return err
	}
	cf = cf.DeepCopy()
	cf.Created = v1.Time{Time: created}
	cf.OS, cf.Architecture = "linux", *arch
	c := &cf.Config
	c.User, c.WorkingDir = *user, *workdir
	if err := jsonArray(*entrypoint, &c.Entrypoint); err != nil {
		return fmt.Errorf("--entrypoint: %w", err)
	}
	if err := jsonArray(*cmd, &c.Cmd); err != nil {
		return fmt.Errorf("--cmd: %w", err)
	}
	c.Env = envs
	if len(exposes) > 0 {
		c.ExposedPorts = map[string]struct{}{}
		for _, p := range exposes {
			c.ExposedPorts[p] = struct{}{}
		}
	}
	c.Labels, err = keyValues(labels)
	if err != nil {
		return err
	}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return err
	}
	// The labels again as manifest annotations, where registries and `skopeo inspect --raw` show them.
	img = mutate.Annotations(img, c.Labels).(v1.Image)

	if err := writeArchive(*out, img, repo, tag, created); err != nil {
		return err
	}
	digest, err := img.Digest()
	if err != nil {
		return err
	}
	size, err := layer.Size()
	if err != nil {
		return err
	}
	fmt.Printf("%s %s (layer %d bytes compressed, %d uncompressed)\n", *out, digest, size, len(layerBytes))
	return nil
}

// jsonArray decodes s, a JSON array of strings, into dst; an empty s leaves dst alone.
func jsonArray(s string, dst *[]string) error {
	if s == "" {
		return nil
	}
	return json.Unmarshal([]byte(s), dst)
}

// keyValues turns K=V strings into a map, refusing an entry without "=" or a repeated key.
func keyValues(kvs []string) (map[string]string, error) {
	if len(kvs) == 0 {
		return nil, nil
	}
	m := map[string]string{}
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("--label %q: want K=V", kv)
		}
		if _, dup := m[k]; dup {
			return nil, fmt.Errorf("--label %s given twice", k)
		}
		m[k] = v
	}
	return m, nil
}
