package chart

import (
	"bytes"
	"io"
	"log"
	"net/http/httptest"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/Masterminds/semver/v3"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"

	"github.com/expsync/expsync/hack/tools/chart/release"
)

// TestChartPublishes: the chart pushed as `make chart-push` pushes it
// (release.Push: helm package + helm push, Helm's Go packages) to an OCI
// registry on loopback, then fetched the way examples/flux/source.yaml
// tells Flux's source-controller to: the newest tag within its semver
// range, the layer of its layerSelector's media type, loaded as a chart —
// every file equal to charts/expsync's, and the pushed digest is what the
// registry serves for that tag.
func TestChartPublishes(t *testing.T) {
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")

	pushed, err := release.Push(chartDir, "oci://"+host+"/charts", true)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("pushed %s %s", pushed.Ref, pushed.Digest)

	// What examples/flux/source.yaml asks for.
	objs := decodeFile(t, filepath.Join(repoRoot, "examples", "flux", "source.yaml"))
	if len(objs) != 1 || objs[0].GetKind() != "OCIRepository" {
		t.Fatalf("examples/flux/source.yaml: want one OCIRepository, got %d objects", len(objs))
	}
	spec := objs[0].Object["spec"].(map[string]any)
	url := spec["url"].(string)
	if !strings.HasPrefix(url, "oci://") || !strings.HasSuffix(url, "/expsync") {
		t.Fatalf("source.yaml url %q: want oci://HOST/PATH/expsync, where make chart-push puts the chart", url)
	}
	constraint, err := semver.NewConstraint(spec["ref"].(map[string]any)["semver"].(string))
	if err != nil {
		t.Fatal(err)
	}
	mediaType := spec["layerSelector"].(map[string]any)["mediaType"].(string)

	// source-controller against our registry: the repository is the url's
	// path, on the loopback host.
	repo, err := name.NewRepository(host+"/charts/expsync", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	tags, err := remote.List(repo)
	if err != nil {
		t.Fatal(err)
	}
	var versions []*semver.Version
	for _, tag := range tags {
		if v, err := semver.NewVersion(tag); err == nil && constraint.Check(v) {
			versions = append(versions, v)
		}
	}
	if len(versions) == 0 {
		t.Fatalf("no tag of %v within source.yaml's range %s: the chart's version is %s", tags, constraint, pushed.Version)
	}
	sort.Sort(semver.Collection(versions))
	tag := versions[len(versions)-1].Original()
	desc, err := remote.Get(repo.Tag(tag))
	if err != nil {
		t.Fatal(err)
	}
	if desc.Digest.String() != pushed.Digest {
		t.Errorf("tag %s serves %s, the push reported %s", tag, desc.Digest, pushed.Digest)
	}
	img, err := desc.Image()
	if err != nil {
		t.Fatal(err)
	}
	manifest, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	var found bool
	for _, l := range manifest.Layers {
		if string(l.MediaType) != mediaType {
			continue
		}
		found = true
		layer, err := img.LayerByDigest(l.Digest)
		if err != nil {
			t.Fatal(err)
		}
		rc, err := layer.Compressed()
		if err != nil {
			t.Fatal(err)
		}
		pulled, err := loader.LoadArchive(rc)
		rc.Close()
		if err != nil {
			t.Fatalf("the layer %s does not load as a chart: %v", mediaType, err)
		}
		local := loadChart(t)
		// helm package writes Chart.yaml anew from the chart's metadata.
		if d := cmp.Diff(local.Metadata, pulled.Metadata); d != "" {
			t.Errorf("the published chart's metadata differs from charts/expsync/Chart.yaml (-local +published):\n%s", d)
		}
		if d := cmp.Diff(chartFiles(local), chartFiles(pulled)); d != "" {
			t.Errorf("the published chart differs from charts/expsync (-local +published):\n%s", d)
		}
	}
	if !found {
		t.Fatalf("no layer of media type %s (source.yaml's layerSelector) in %+v", mediaType, manifest.Layers)
	}

	if !bytes.Contains([]byte(pushed.Ref), []byte(":"+pushed.Version)) {
		t.Errorf("ref %s is not tagged with the version %s", pushed.Ref, pushed.Version)
	}
}

// chartFiles are a chart's files as loaded (every file of the folder or
// archive, .helmignore applied), by path, but Chart.yaml.
func chartFiles(c *chart.Chart) map[string]string {
	out := map[string]string{}
	for _, f := range c.Raw {
		if f.Name == "Chart.yaml" {
			continue // compared as metadata
		}
		out[f.Name] = string(f.Data)
	}
	return out
}
