// push-chart packages charts/expsync and pushes it to an OCI registry
// (`make chart-push REGISTRY=oci://HOST/PATH`), then prints the reference
// and the digest to pin in examples/flux/source.yaml or install with
// `helm install expsync oci://HOST/PATH/expsync --version VERSION`.
// Credentials come from Helm's registry configuration (`helm registry
// login`), never from a flag.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/expsync/expsync/hack/tools/chart/release"
)

func main() {
	chart := flag.String("chart", "../../../charts/expsync", "the chart's folder")
	to := flag.String("to", "", "registry repository, oci://HOST/PATH (the chart goes to PATH/expsync:VERSION)")
	plainHTTP := flag.Bool("plain-http", false, "talk HTTP to the registry (a registry on loopback)")
	flag.Parse()
	if *to == "" {
		fmt.Fprintln(os.Stderr, "push-chart: --to oci://HOST/PATH is required (make chart-push REGISTRY=oci://HOST/PATH)")
		os.Exit(2)
	}
	p, err := release.Push(*chart, *to, *plainHTTP)
	if err != nil {
		fmt.Fprintln(os.Stderr, "push-chart:", err)
		os.Exit(1)
	}
	fmt.Printf("pushed %s\ndigest %s\n\nPin it in examples/flux/source.yaml (spec.ref), or install it:\n  ref: {digest: %q}\n  helm install expsync oci://%s --version %s\n",
		p.Ref, p.Digest, p.Digest, trimTag(p.Ref), p.Version)
}

func trimTag(ref string) string {
	for i := len(ref) - 1; i >= 0 && ref[i] != '/'; i-- {
		if ref[i] == ':' {
			return ref[:i]
		}
	}
	return ref
}
