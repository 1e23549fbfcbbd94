// Command herald-image assembles Herald's container image without a container engine or a registry: one layer
// holding the static herald binary and an /etc/passwd naming its users, on no base image (scratch). It writes a
// multi-platform OCI image layout (push it with `crane push --index DIR REF` or `skopeo copy oci:DIR docker://REF`)
// and, per platform, a tarball that holds the same image both as an OCI layout (index.json, read by `ctr images
// import` and recent Docker) and as `docker save`'s manifest.json (read by every `docker load`).
//
// Usage:
//
//	herald-image -repository ghcr.io/heraldlb/herald -tag v0.1.0 -version v0.1.0 -revision SHA -created RFC3339 \
//	  -binary linux/amd64=bin/image/linux-amd64/herald -binary linux/arm64=bin/image/linux-arm64/herald \
//	  -layout bin/image/oci -tarballs bin
//
// Every timestamp is -created (the commit's time), so the same inputs give the same digests.
package main

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// User is the image's default user: nonroot, numeric, the uid distroless and ko use. The controller runs as it;
// the speaker's DaemonSet overrides it with uid 0 and every capability but NET_RAW and NET_ADMIN dropped
// (docs/install.md, "The image's user", says why).
const (
	User    = "65532:65532"
	passwd  = "root:x:0:0:root:/:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/:/sbin/nologin\n"
	group   = "root:x:0:\nnonroot:x:65532:\n"
	binPath = "herald" // in the image: /herald
)

type binaries map[string]string // "linux/amd64" → path

func (b binaries) String() string { return fmt.Sprint(map[string]string(b)) }
func (b binaries) Set(s string) error {
	platform, path, ok := strings.Cut(s, "=")
	if !ok || !strings.Contains(platform, "/") {
		return fmt.Errorf("want OS/ARCH=PATH, got %q", s)
	}
	b[platform] = path
	return nil
}

type config struct {
	repository, tag, version, revision, source, license string
	created                                             time.Time
	binaries                                            binaries
	platforms                                           []string // the order of -binary flags
	layout, tarballs                                    string
}

func main() {
	c := config{binaries: binaries{}}
	var created string
	flag.StringVar(&c.repository, "repository", "ghcr.io/heraldlb/herald", "image repository")
	flag.StringVar(&c.tag, "tag", "", "image tag (the chart's appVersion)")
	flag.StringVar(&c.version, "version", "", "org.opencontainers.image.version")
	flag.StringVar(&c.revision, "revision", "", "org.opencontainers.image.revision (the commit)")
	flag.StringVar(&c.source, "source", "https://github.com/heraldlb/herald", "org.opencontainers.image.source")
	flag.StringVar(&c.license, "licenses", "Apache-2.0", "org.opencontainers.image.licenses (SPDX)")
	flag.StringVar(&created, "created", "", "creation time, RFC 3339 (the commit's time, for reproducible digests)")
	flag.Func("binary", "OS/ARCH=PATH of a static herald binary (repeat per platform)", func(s string) error {
		if err := c.binaries.Set(s); err != nil {
			return err
		}
		c.platforms = append(c.platforms, s[:strings.Index(s, "=")])
		return nil
	})
	flag.StringVar(&c.layout, "layout", "", "directory for the multi-platform OCI image layout (replaced)")
	flag.StringVar(&c.tarballs, "tarballs", "", "directory for herald-image-OS-ARCH.tar, one per platform")
	flag.Parse()
	var err error
	if c.created, err = time.Parse(time.RFC3339, created); err != nil {
		fatal(fmt.Errorf("-created: %w", err))
	}
	if c.tag == "" || c.version == "" || c.revision == "" || len(c.binaries) == 0 || c.layout == "" || c.tarballs == "" {
		fatal(errors.New("-tag, -version, -revision, -binary, -layout and -tarballs are required"))
	}
	if err := run(c); err != nil {
		fatal(err)
	}
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "herald-image:", err)
	os.Exit(1)
}

func (c config) ref() string { return c.repository + ":" + c.tag }

func (c config) labels() map[string]string {
	return map[string]string{
		"org.opencontainers.image.title":       "herald",
		"org.opencontainers.image.description": "LoadBalancer addresses for bare-metal Kubernetes on a Layer-2 network",
		"org.opencontainers.image.source":      c.source,
		"org.opencontainers.image.url":         c.source,
		"org.opencontainers.image.version":     c.version,
		"org.opencontainers.image.revision":    c.revision,
		"org.opencontainers.image.licenses":    c.license,
		"org.opencontainers.image.created":     c.created.UTC().Format(time.RFC3339),
	}
}

// refAnnotations name the image in an index.json: the OCI tag, and containerd's full name for `ctr images import`.
func (c config) refAnnotations() map[string]string {
	return map[string]string{
		"org.opencontainers.image.ref.name": c.tag,
		"io.containerd.image.name":          c.ref(),
	}
}

func run(c config) error {
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	images := map[string]v1.Image{}
	for _, platform := range c.platforms {
		img, err := c.image(platform, c.binaries[platform])
		if err != nil {
			return fmt.Errorf("%s: %w", platform, err)
		}
		images[platform] = img
		p, err := v1.ParsePlatform(platform)
		if err != nil {
			return err
		}
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: p}})
	}
	idx = mutate.Annotations(idx, c.labels()).(v1.ImageIndex)

	if err := os.RemoveAll(c.layout); err != nil {
		return err
	}
	lp, err := layout.Write(c.layout, empty.Index)
	if err != nil {
		return fmt.Errorf("writing the layout: %w", err)
	}
	if err := lp.AppendIndex(idx, layout.WithAnnotations(c.refAnnotations())); err != nil {
		return fmt.Errorf("writing the layout: %w", err)
	}
	d, _ := idx.Digest()
	fmt.Printf("%s %s (index %s) -> %s\n", c.ref(), strings.Join(c.platforms, ","), d, c.layout)

	for _, platform := range c.platforms {
		out := filepath.Join(c.tarballs, "herald-image-"+strings.ReplaceAll(platform, "/", "-")+".tar")
		if err := c.writeTarball(out, images[platform]); err != nil {
			return fmt.Errorf("%s: %w", out, err)
		}
		size, _ := imageSize(images[platform])
		d, _ := images[platform].Digest()
		fmt.Printf("%s %s (manifest %s, %.1f MiB compressed) -> %s\n", c.ref(), platform, d, float64(size)/(1<<20), out)
	}
	return nil
}

// image is one platform's image: the binary at /herald, /etc/passwd and /etc/group, user 65532, OCI labels.
func (c config) image(platform, binary string) (v1.Image, error) {
	p, err := v1.ParsePlatform(platform)
	if err != nil {
		return nil, err
	}
	bin, err := os.ReadFile(binary)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	add := func(h *tar.Header, body []byte) error {
		h.ModTime, h.Uid, h.Gid, h.Format = c.created, 0, 0, tar.FormatPAX
		h.Size = int64(len(body))
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		_, err := tw.Write(body)
		return err
	}
	for _, f := range []struct {
		h    tar.Header
		body []byte
	}{
		{tar.Header{Name: "etc/", Typeflag: tar.TypeDir, Mode: 0o755}, nil},
		{tar.Header{Name: "etc/passwd", Typeflag: tar.TypeReg, Mode: 0o644}, []byte(passwd)},
		{tar.Header{Name: "etc/group", Typeflag: tar.TypeReg, Mode: 0o644}, []byte(group)},
		{tar.Header{Name: "tmp/", Typeflag: tar.TypeDir, Mode: 0o1777}, nil},
		{tar.Header{Name: binPath, Typeflag: tar.TypeReg, Mode: 0o755}, bin},
	} {
		if err := add(&f.h, f.body); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	data := buf.Bytes()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil },
		tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, err
	}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err = mutate.Append(img, mutate.Addendum{Layer: layer, History: v1.History{
		Created: v1.Time{Time: c.created}, CreatedBy: "herald-image: /herald, /etc/passwd, /etc/group", Comment: c.revision,
	}})
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Variant = p.OS, p.Architecture, p.Variant
	cf.Created = v1.Time{Time: c.created}
	cf.Author = c.source
	cf.Config.User = User
	cf.Config.Entrypoint = []string{"/" + binPath}
	cf.Config.WorkingDir = "/"
	cf.Config.Labels = c.labels()
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return nil, err
	}
	return mutate.Annotations(img, map[string]string{
		"org.opencontainers.image.source":   c.source,
		"org.opencontainers.image.revision": c.revision,
		"org.opencontainers.image.version":  c.version,
	}).(v1.Image), nil
}

// writeTarball writes one platform's image as an OCI layout in a tar, plus docker save's manifest.json pointing at
// the same blobs.
func (c config) writeTarball(out string, img v1.Image) error {
	dir, err := os.MkdirTemp(filepath.Dir(out), ".herald-image-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	lp, err := layout.Write(dir, empty.Index)
	if err != nil {
		return err
	}
	if err := lp.AppendImage(img, layout.WithAnnotations(c.refAnnotations())); err != nil {
		return err
	}
	cfg, err := img.ConfigName()
	if err != nil {
		return err
	}
	layers, err := img.Layers()
	if err != nil {
		return err
	}
	entry := struct {
		Config   string
		RepoTags []string
		Layers   []string
	}{Config: "blobs/sha256/" + cfg.Hex, RepoTags: []string{c.ref()}}
	for _, l := range layers {
		d, err := l.Digest()
		if err != nil {
			return err
		}
		entry.Layers = append(entry.Layers, "blobs/sha256/"+d.Hex)
	}
	manifest, err := json.Marshal([]any{entry})
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "manifest.json"), manifest, 0o644); err != nil {
		return err
	}

	tmp := out + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	tw := tar.NewWriter(f)
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || path == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		h := &tar.Header{Name: filepath.ToSlash(rel), ModTime: c.created, Mode: 0o644, Typeflag: tar.TypeReg, Format: tar.FormatPAX}
		if d.IsDir() {
			h.Name += "/"
			h.Mode, h.Typeflag = 0o755, tar.TypeDir
			return tw.WriteHeader(h)
		}
		body, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		h.Size = int64(len(body))
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		_, err = tw.Write(body)
		return err
	})
	if err != nil {
		f.Close()
		return err
	}
	if err := tw.Close(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, out)
}

// imageSize is the sum of the compressed layers, what a node pulls.
func imageSize(img v1.Image) (int64, error) {
	layers, err := img.Layers()
	if err != nil {
		return 0, err
	}
	var n int64
	for _, l := range layers {
		s, err := l.Size()
		if err != nil {
			return 0, err
		}
		n += s
	}
	return n, nil
}
