// Package release publishes charts/expsync as an OCI artifact, the way
// `helm package` and `helm push` do (Helm's own Go packages), so that
// Flux's OCIRepository (examples/flux/source.yaml) and `helm install
// oci://...` install it. `make chart-push REGISTRY=oci://HOST/PATH` runs it;
// hack/tools/chart's TestChartPublishes pushes to a registry on loopback
// and pulls the chart back as source-controller does.
package release

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/registry"
)

// Pushed is what a push published.
type Pushed struct {
	// Ref is the tagged reference without the scheme: HOST/PATH/expsync:VERSION.
	Ref string
	// Digest is the manifest's digest: pin it as an OCIRepository's
	// spec.ref.digest, or `helm install oci://HOST/PATH/expsync@DIGEST`.
	Digest string
	// Version is the chart's version (its tag).
	Version string
}

// Push packages the chart in chartDir (as `helm package`: the chart's
// files, .helmignore applied) and pushes it to repository, an
// oci://HOST/PATH under which the chart is stored as PATH/<chart name>
// tagged with its version. plainHTTP is for a registry on loopback.
func Push(chartDir, repository string, plainHTTP bool) (*Pushed, error) {
	if !registry.IsOCI(repository) {
		return nil, fmt.Errorf("%s: the registry must be given as oci://HOST/PATH", repository)
	}
	ch, err := loader.LoadDir(chartDir)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", chartDir, err)
	}
	if err := ch.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", chartDir, err)
	}
	tmp, err := os.MkdirTemp("", "expsync-chart-package-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	archive, err := chartutil.Save(ch, tmp)
	if err != nil {
		return nil, fmt.Errorf("package %s: %w", chartDir, err)
	}
	data, err := os.ReadFile(archive)
	if err != nil {
		return nil, err
	}
	opts := []registry.ClientOption{registry.ClientOptWriter(&bytes.Buffer{})}
	if plainHTTP {
		opts = append(opts, registry.ClientOptPlainHTTP())
	}
	client, err := registry.NewClient(opts...)
	if err != nil {
		return nil, err
	}
	ref := strings.TrimSuffix(strings.TrimPrefix(repository, "oci://"), "/") + "/" + ch.Name() + ":" + ch.Metadata.Version
	res, err := client.Push(data, ref, registry.PushOptStrictMode(true))
	if err != nil {
		return nil, fmt.Errorf("push %s to %s: %w", filepath.Base(archive), ref, err)
	}
	return &Pushed{Ref: res.Ref, Digest: res.Manifest.Digest, Version: ch.Metadata.Version}, nil
}
