package main

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// sampleDebs makes a folder as build.sh extracts packages into, with the
// mtimes the extraction happened to give.
func sampleDebs(t *testing.T, mtime time.Time) inputs {
	t.Helper()
	dir := t.TempDir()
	write := func(p, content string, mode os.FileMode) {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(full, mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
	write("usr/share/ca-certificates/mozilla/B.crt", "-----B-----\n", 0o644)
	write("usr/share/ca-certificates/mozilla/A.crt", "-----A-----", 0o644)
	write("expsync", "\x7fELF static expsync", 0o755)
	write("pause", "\x7fELF static pause", 0o755)
	return inputs{Debs: dir, Packages: map[string]string{"ca-certificates": "20230311+deb12u1"},
		Expsync: filepath.Join(dir, "expsync"), Pause: filepath.Join(dir, "pause")}
}

func digestOf(t *testing.T, r recipe, in inputs) string {
	t.Helper()
	spec, root, err := r.make(in)
	if err != nil {
		t.Fatal(err)
	}
	img, err := build(spec, root)
	if err != nil {
		t.Fatal(err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d.String()
}

// Same inputs, same digest: the files' mtimes (when they were extracted),
// the order they are read in, the clock and the host do not enter an image.
func TestSameInputsSameDigest(t *testing.T) {
	for _, r := range []recipe{{"expsync", expsyncImage}, {"pause", pauseImage}} {
		a := digestOf(t, r, sampleDebs(t, time.Unix(1000, 0)))
		b := digestOf(t, r, sampleDebs(t, time.Unix(2000000000, 0)))
		if a != b {
			t.Errorf("%s: the same files extracted at two times give %s and %s", r.name, a, b)
		}
		in := sampleDebs(t, time.Unix(1000, 0))
		if err := os.WriteFile(in.Expsync, []byte("\x7fELF another expsync"), 0o755); err != nil {
			t.Fatal(err)
		}
		if r.name == "expsync" && digestOf(t, r, in) == a {
			t.Errorf("a different expsync binary gives the same digest %s", a)
		}
	}
}

// The expsync image runs as nonroot with the binary where render expects it,
// the CA bundle in name order, and nothing owned by the build machine's
// users.
func TestExpsyncImageLayout(t *testing.T) {
	spec, root, err := expsyncImage(sampleDebs(t, time.Now()))
	if err != nil {
		t.Fatal(err)
	}
	if spec.User != "65532:65532" || spec.Entrypoint[0] != "/usr/local/bin/expsync" {
		t.Errorf("user %q entrypoint %v", spec.User, spec.Entrypoint)
	}
	data, err := root.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(bytesReader(data))
	var names []string
	files := map[string]string{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
		if !h.ModTime.Equal(epoch) {
			t.Errorf("%s: mtime %s", h.Name, h.ModTime)
		}
		if h.Name != "home/nonroot/" && (h.Uid != 0 || h.Gid != 0) {
			t.Errorf("%s owned by %d:%d", h.Name, h.Uid, h.Gid)
		}
		if h.Typeflag == tar.TypeReg {
			b, _ := io.ReadAll(tr)
			files[h.Name] = string(b)
		}
	}
	for i := 1; i < len(names); i++ {
		if names[i-1] >= names[i] {
			t.Errorf("entries not sorted: %s before %s", names[i-1], names[i])
		}
	}
	if files["usr/local/bin/expsync"] != "\x7fELF static expsync" {
		t.Errorf("the binary is not at usr/local/bin/expsync: %v", names)
	}
	if got := files["etc/ssl/certs/ca-certificates.crt"]; got != "-----A-----\n-----B-----\n" {
		t.Errorf("CA bundle %q", got)
	}
}

// The archive is an OCI layout containerd imports under the given name.
func TestArchiveNamesTheImage(t *testing.T) {
	in := sampleDebs(t, time.Now())
	spec, root, err := pauseImage(in)
	if err != nil {
		t.Fatal(err)
	}
	img, err := build(spec, root)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "pause.tar")
	digest, err := writeArchive(file, spec, img)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	seen := map[string][]byte{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		seen[h.Name] = b
	}
	var index struct {
		Manifests []struct {
			Digest      string            `json:"digest"`
			Annotations map[string]string `json:"annotations"`
		} `json:"manifests"`
	}
	if err := json.Unmarshal(seen["index.json"], &index); err != nil || len(index.Manifests) != 1 {
		t.Fatalf("index.json %s: %v", seen["index.json"], err)
	}
	m := index.Manifests[0]
	if m.Digest != digest.String() || m.Annotations["io.containerd.image.name"] != "expsync.local/pause:1" {
		t.Errorf("index names %s %v, want %s as expsync.local/pause:1", m.Digest, m.Annotations, digest)
	}
	if _, ok := seen["blobs/sha256/"+digest.Hex]; !ok {
		t.Errorf("the manifest blob is missing")
	}
	if string(seen["oci-layout"]) != `{"imageLayoutVersion":"1.0.0"}` {
		t.Errorf("oci-layout %q", seen["oci-layout"])
	}
}

func TestTagSafe(t *testing.T) {
	for in, want := range map[string]string{
		"1:1.35.0-4+deb12u1+b1": "1.35.0-4-deb12u1-b1",
		"3.11.2-6+deb12u7":      "3.11.2-6-deb12u7",
		"20230311+deb12u1":      "20230311-deb12u1",
	} {
		if got := tagSafe(in); got != want {
			t.Errorf("tagSafe(%q) = %q, want %q", in, got, want)
		}
	}
}

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }

// Kueue's image holds its controller where Kueue's chart starts it
// (/manager), runs as nonroot (the chart asks for runAsNonRoot) and is
// tagged with the version the chart is given.
func TestKueueImageLayout(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "kueue")
	if err := os.WriteFile(bin, []byte("\x7fELF static kueue"), 0o755); err != nil {
		t.Fatal(err)
	}
	spec, root, err := kueueImage(inputs{Kueue: bin, KueueVersion: "v0.17.0"})
	if err != nil {
		t.Fatal(err)
	}
	if spec.User != "65532:65532" || len(spec.Entrypoint) != 1 || spec.Entrypoint[0] != "/manager" || spec.Repository != repoPrefix+"kueue" || spec.Tag != "v0.17.0" {
		t.Errorf("spec %+v", spec)
	}
	data, err := root.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(bytesReader(data))
	found := false
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Name == "manager" {
			b, _ := io.ReadAll(tr)
			found = string(b) == "\x7fELF static kueue" && h.Mode&0o111 != 0
		}
	}
	if !found {
		t.Error("no executable /manager holding the Kueue binary")
	}
}
