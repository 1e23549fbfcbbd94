package main

import (
	"archive/tar"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// build runs the assembler on two fake binaries (the bytes are what matters) and returns the config and them.
func build(t *testing.T) (config, map[string][]byte) {
	t.Helper()
	dir := t.TempDir()
	c := config{
		repository: "ghcr.io/heraldlb/herald", tag: "v0.1.0", version: "v0.1.0", revision: "0123abcd",
		source: "https://github.com/heraldlb/herald", license: "Apache-2.0",
		created:  time.Date(2026, 12, 7, 6, 0, 0, 0, time.UTC),
		binaries: binaries{}, platforms: []string{"linux/amd64", "linux/arm64"},
		layout: filepath.Join(dir, "oci"), tarballs: dir,
	}
	bins := map[string][]byte{}
	for _, p := range c.platforms {
		bins[p] = []byte("\x7fELF binary for " + p)
		f := filepath.Join(dir, strings.ReplaceAll(p, "/", "-"))
		if err := os.WriteFile(f, bins[p], 0o755); err != nil {
			t.Fatal(err)
		}
		c.binaries[p] = f
	}
	if err := run(c); err != nil {
		t.Fatal(err)
	}
	return c, bins
}

// files reads a layer's regular files and directories: path → header.
func files(t *testing.T, img v1.Image) (map[string]*tar.Header, map[string][]byte) {
	t.Helper()
	layers, err := img.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("layers %d, %v; want 1", len(layers), err)
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	hs, bodies := map[string]*tar.Header{}, map[string][]byte{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return hs, bodies
		}
		if err != nil {
			t.Fatal(err)
		}
		hs[h.Name] = h
		bodies[h.Name], _ = io.ReadAll(tr)
	}
}

// checkImage checks one platform's image: what runs, as whom, with which labels, and the layer's files.
func checkImage(t *testing.T, c config, platform string, bin []byte, img v1.Image) {
	checkImageAs(t, c, platform, bin, img, true)
}

// checkImageAs is checkImage; oci false skips the media types, which a `docker load` reader makes up itself.
func checkImageAs(t *testing.T, c config, platform string, bin []byte, img v1.Image, oci bool) {
	t.Helper()
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if got := cf.OS + "/" + cf.Architecture; got != platform {
		t.Errorf("config platform %s, want %s", got, platform)
	}
	if cf.Config.User != "65532:65532" {
		t.Errorf("user %q, want 65532:65532 (numeric, non-root)", cf.Config.User)
	}
	if !slices.Equal(cf.Config.Entrypoint, []string{"/herald"}) {
		t.Errorf("entrypoint %v, want [/herald]", cf.Config.Entrypoint)
	}
	for k, want := range map[string]string{
		"org.opencontainers.image.source":   c.source,
		"org.opencontainers.image.version":  c.version,
		"org.opencontainers.image.revision": c.revision,
		"org.opencontainers.image.licenses": c.license,
	} {
		if got := cf.Config.Labels[k]; got != want {
			t.Errorf("label %s = %q, want %q", k, got, want)
		}
	}
	if !cf.Created.Time.Equal(c.created) {
		t.Errorf("created %v, want %v", cf.Created, c.created)
	}
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	if oci && (m.MediaType != "application/vnd.oci.image.manifest.v1+json" || m.Config.MediaType != "application/vnd.oci.image.config.v1+json") {
		t.Errorf("media types %s / %s, want OCI's", m.MediaType, m.Config.MediaType)
	}
	hs, bodies := files(t, img)
	var names []string
	for n := range hs {
		names = append(names, n)
	}
	slices.Sort(names)
	if want := []string{"etc/", "etc/group", "etc/passwd", "herald", "tmp/"}; !slices.Equal(names, want) {
		t.Errorf("layer holds %v, want %v", names, want)
	}
	if h := hs["herald"]; h == nil || h.Mode != 0o755 || h.Uid != 0 || string(bodies["herald"]) != string(bin) {
		t.Errorf("/herald: %+v, want the binary, mode 0755, owned by root", h)
	}
	if !strings.Contains(string(bodies["etc/passwd"]), "nonroot:x:65532:65532:") {
		t.Errorf("/etc/passwd has no user 65532:\n%s", bodies["etc/passwd"])
	}
}

// TestLayout checks the multi-platform OCI layout: one index named by tag and by containerd's full name, with
// an image per platform.
func TestLayout(t *testing.T) {
	c, bins := build(t)
	lp, err := layout.FromPath(c.layout)
	if err != nil {
		t.Fatal(err)
	}
	top, err := lp.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	im, err := top.IndexManifest()
	if err != nil || len(im.Manifests) != 1 {
		t.Fatalf("index.json: %v, %+v; want one entry", err, im)
	}
	if a := im.Manifests[0].Annotations; a["org.opencontainers.image.ref.name"] != "v0.1.0" || a["io.containerd.image.name"] != "ghcr.io/heraldlb/herald:v0.1.0" {
		t.Errorf("index.json annotations %v", a)
	}
	idx, err := top.ImageIndex(im.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	pm, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, d := range pm.Manifests {
		p := d.Platform.OS + "/" + d.Platform.Architecture
		got = append(got, p)
		img, err := idx.Image(d.Digest)
		if err != nil {
			t.Fatal(err)
		}
		checkImage(t, c, p, bins[p], img)
	}
	if !slices.Equal(got, c.platforms) {
		t.Errorf("platforms %v, want %v", got, c.platforms)
	}
}

// TestTarballs checks each platform's tarball as `docker load` reads it (manifest.json) and as `ctr images import`
// reads it (index.json naming the image), and that both name the same image.
func TestTarballs(t *testing.T) {
	c, bins := build(t)
	for _, p := range c.platforms {
		t.Run(p, func(t *testing.T) {
			path := filepath.Join(c.tarballs, "herald-image-"+strings.ReplaceAll(p, "/", "-")+".tar")
			tag, err := name.NewTag(c.ref())
			if err != nil {
				t.Fatal(err)
			}
			docker, err := tarball.ImageFromPath(path, &tag) // manifest.json's RepoTags must hold the tag
			if err != nil {
				t.Fatalf("as docker load reads it: %v", err)
			}
			checkImageAs(t, c, p, bins[p], docker, false)

			dir := t.TempDir()
			untar(t, path, dir)
			lp, err := layout.FromPath(dir)
			if err != nil {
				t.Fatal(err)
			}
			idx, err := lp.ImageIndex()
			if err != nil {
				t.Fatal(err)
			}
			im, err := idx.IndexManifest()
			if err != nil || len(im.Manifests) != 1 {
				t.Fatalf("index.json: %v, %+v; want one image", err, im)
			}
			if got := im.Manifests[0].Annotations["io.containerd.image.name"]; got != c.ref() {
				t.Errorf("index.json names %q, want %q", got, c.ref())
			}
			oci, err := lp.Image(im.Manifests[0].Digest)
			if err != nil {
				t.Fatal(err)
			}
			checkImage(t, c, p, bins[p], oci)
			dc, _ := docker.ConfigName()
			oc, _ := oci.ConfigName()
			if dc != oc {
				t.Errorf("manifest.json's config %s, index.json's %s", dc, oc)
			}
		})
	}
}

// TestReproducible checks that the same inputs give the same digests.
func TestReproducible(t *testing.T) {
	digest := func() v1.Hash {
		c, _ := build(t)
		lp, err := layout.FromPath(c.layout)
		if err != nil {
			t.Fatal(err)
		}
		idx, err := lp.ImageIndex()
		if err != nil {
			t.Fatal(err)
		}
		im, err := idx.IndexManifest()
		if err != nil {
			t.Fatal(err)
		}
		return im.Manifests[0].Digest
	}
	if a, b := digest(), digest(); a != b {
		t.Errorf("two builds: %s and %s", a, b)
	}
}

func untar(t *testing.T, path, dir string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	seen := map[string]bool{}
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		seen[h.Name] = true
		dst := filepath.Join(dir, filepath.FromSlash(h.Name))
		if h.Typeflag == tar.TypeDir {
			if err := os.MkdirAll(dst, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		body, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, body, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, want := range []string{"oci-layout", "index.json", "manifest.json"} {
		if !seen[want] {
			t.Errorf("%s has no %s", path, want)
		}
	}
	var m []map[string]any
	data, _ := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err := json.Unmarshal(data, &m); err != nil || len(m) != 1 {
		t.Errorf("manifest.json: %v, %s", err, data)
	}
}
