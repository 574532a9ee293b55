// Command images makes the OCI images the real-node tier runs, without a
// registry or a Docker engine: the pod sandbox (pause), expsync (runner init
// container and controller), and the images examples/experiments runs
// (busybox for the shell examples, python for pi). Each is one uncompressed
// layer assembled from chosen files with fixed owners, modes and times, so
// the same inputs (the same Debian package versions and the same expsync
// and pause binaries) give the same digests. build.sh gathers the inputs;
// `ctr -n k8s.io images import` loads the archives written here.
//
//	images -debs DIR -packages FILE -expsync BIN -pause BIN -out DIR
//
// writes DIR/<name>.tar for each image, DIR/images.env (NAME_IMAGE=
// repository@sha256:..., for shells and the e2e test) and DIR/images.json.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

type recipe struct {
	name string // file name and images.env key (upper-cased)
	make func(inputs) (imageSpec, *rootFS, error)
}

var recipes = []recipe{
	{"pause", pauseImage},
	{"expsync", expsyncImage},
	{"busybox", busyboxImage},
	{"python", pythonImage},
}

// built is one line of images.json.
type built struct {
	Name string `json:"name"`
	// Tagged is repository:tag, the name containerd gives the image.
	Tagged string `json:"tagged"`
	// Ref is repository@sha256:..., what pods and experiments refer to.
	Ref     string `json:"ref"`
	Digest  string `json:"digest"`
	Archive string `json:"archive"`
	// LayerBytes is the uncompressed size of the image's single layer.
	LayerBytes int64 `json:"layerBytes"`
}

func main() {
	var in inputs
	var packages, out string
	flag.StringVar(&in.Debs, "debs", "", "folder the Debian packages were extracted into")
	flag.StringVar(&packages, "packages", "", `file of "package version" lines (what was extracted)`)
	flag.StringVar(&in.Expsync, "expsync", "", "static expsync binary")
	flag.StringVar(&in.Pause, "pause", "", "static pause binary")
	flag.StringVar(&in.Kueue, "kueue", "", "static Kueue controller binary (optional: the kueue image)")
	flag.StringVar(&in.KueueVersion, "kueue-version", "", "the Kueue binary's version (the image's tag)")
	flag.StringVar(&out, "out", "", "output folder")
	flag.Parse()
	if in.Debs == "" || packages == "" || in.Expsync == "" || in.Pause == "" || out == "" || (in.Kueue != "") != (in.KueueVersion != "") {
		flag.Usage()
		os.Exit(2)
	}
	todo := recipes
	if in.Kueue != "" {
		todo = append(todo, recipe{"kueue", kueueImage})
	}
	var err error
	if in.Packages, err = readPackages(packages); err != nil {
		fail(err)
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		fail(err)
	}
	var all []built
	var env strings.Builder
	for _, r := range todo {
		b, err := makeImage(r, in, out)
		if err != nil {
			fail(fmt.Errorf("image %s: %w", r.name, err))
		}
		all = append(all, b)
		fmt.Fprintf(&env, "%s_IMAGE=%s\n", strings.ToUpper(r.name), b.Ref)
		fmt.Printf("%-8s %-45s %s (%d KiB)\n", b.Name, b.Tagged, b.Digest, b.LayerBytes>>10)
	}
	// The sandbox image is named by tag in containerd's config.
	fmt.Fprintf(&env, "PAUSE_IMAGE_TAGGED=%s\n", all[0].Tagged)
	data, _ := json.MarshalIndent(all, "", "  ")
	if err := os.WriteFile(filepath.Join(out, "images.json"), append(data, '\n'), 0o644); err != nil {
		fail(err)
	}
	if err := os.WriteFile(filepath.Join(out, "images.env"), []byte(env.String()), 0o644); err != nil {
		fail(err)
	}
}

func makeImage(r recipe, in inputs, out string) (built, error) {
	spec, root, err := r.make(in)
	if err != nil {
		return built{}, err
	}
	img, err := build(spec, root)
	if err != nil {
		return built{}, err
	}
	archive := filepath.Join(out, r.name+".tar")
	digest, err := writeArchive(archive, spec, img)
	if err != nil {
		return built{}, err
	}
	layers, err := img.Layers()
	if err != nil {
		return built{}, err
	}
	size, err := layers[0].Size()
	if err != nil {
		return built{}, err
	}
	return built{Name: r.name, Tagged: spec.Repository + ":" + spec.Tag, Ref: spec.Repository + "@" + digest.String(),
		Digest: digest.String(), Archive: archive, LayerBytes: size}, nil
}

func readPackages(file string) (map[string]string, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	m := map[string]string{}
	s := bufio.NewScanner(f)
	for n := 1; s.Scan(); n++ {
		fields := strings.Fields(s.Text())
		if len(fields) == 0 {
			continue
		}
		if len(fields) != 2 {
			return nil, fmt.Errorf("%s:%d: want \"package version\", got %q", file, n, s.Text())
		}
		m[fields[0]] = fields[1]
	}
	return m, s.Err()
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "images:", err)
	os.Exit(1)
}
