package v1alpha1

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/expsync/expsync/contract"
	"github.com/expsync/expsync/tree"
)

var (
	dnsLabel    = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	envName     = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	paramName   = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	inputName   = regexp.MustCompile(`^[a-z0-9]([-a-z0-9_.]*[a-z0-9])?$`)
	sha256Hex   = regexp.MustCompile(`^[0-9a-f]{64}$`)
	imageDigest = regexp.MustCompile(`^[a-z0-9][a-z0-9._/:-]*@sha256:[0-9a-f]{64}$`)
)

// IsDigestImage reports whether ref is pinned by a sha256 digest.
func IsDigestImage(ref string) bool { return imageDigest.MatchString(ref) }

// checker validates one loaded experiment, reporting at the fields' positions.
type checker struct {
	e    *Loaded
	errs *ErrorList
	lim  Limits
	mode Mode
	// results is the repository's results folder.
	results string
}

func (c checker) errorf(field, format string, args ...any) {
	if c.e.bad[field] {
		return // already reported as undecodable
	}
	c.errs.add(c.e.Pos(field), "%s: %s", field, fmt.Sprintf(format, args...))
}

func (l *loader) validateExperiment(e *Loaded) {
	c := checker{e: e, errs: &l.errs, lim: l.limits, mode: l.opts.Mode, results: l.config.Results}
	c.metadata()
	c.image()
	c.command()
	c.env()
	c.params()
	c.sweep()
	c.inputs()
	c.outputs()
	c.plots()
	c.reproduce()
	c.scheduling()
	if !l.fileOnly {
		c.context(l.r, l.config)
	}
	applyExperimentDefaults(e, l.config, l.limits)
}

func (c checker) metadata() {
	m := c.e.Metadata
	switch {
	case m.Name == "" && c.e.bad["metadata.name"]:
	case m.Name == "":
		c.errs.add(c.e.Pos(""), "metadata.name: missing; every experiment needs a name unique in the repository")
	case len(m.Name) > MaxNameLength:
		c.errorf("metadata.name", "%q is %d characters; the limit is %d (Job names are built from it)", m.Name, len(m.Name), MaxNameLength)
	case !dnsLabel.MatchString(m.Name):
		c.errorf("metadata.name", "%q must be lowercase letters, digits and '-', starting and ending with a letter or digit", m.Name)
	}
	for _, k := range sortedKeys(m.Labels) {
		for _, msg := range validation.IsQualifiedName(k) {
			c.errorf("metadata.labels."+k, "key %q: %s", k, msg)
		}
		for _, msg := range validation.IsValidLabelValue(m.Labels[k]) {
			c.errorf("metadata.labels."+k, "%s", msg)
		}
	}
	for _, k := range sortedKeys(m.Annotations) {
		for _, msg := range validation.IsQualifiedName(k) {
			c.errorf("metadata.annotations."+k, "key %q: %s", k, msg)
		}
	}
}

func (c checker) image() {
	img := c.e.Spec.Image
	switch {
	case img == "" && !c.e.bad["spec.image"]:
		c.errs.add(c.e.Pos("spec"), "spec.image: missing; set a digest-pinned image (name@sha256:<64 hex>) or %q for local runs only", HostImage)
	case img == HostImage:
		if c.mode == ModeKubernetes {
			c.errorf("spec.image", "%q runs only in local mode; set a digest-pinned image to run in Kubernetes", HostImage)
		}
	case !IsDigestImage(img):
		if c.mode == ModeKubernetes {
			c.errorf("spec.image", "%q is not pinned by digest; use name@sha256:<64 hex> (a tag can move, so kubernetes mode refuses it)", img)
		} else if strings.Contains(img, "@") {
			c.errorf("spec.image", "%q has a malformed digest; use name@sha256:<64 lowercase hex>", img)
		}
	}
}

func (c checker) command() {
	s := c.e.Spec
	if len(s.Command) == 0 {
		if c.e.bad["spec.command"] {
			return
		}
		c.errs.add(c.e.Pos("spec"), "spec.command: missing; give the program and its arguments as a list")
		return
	}
	if s.Command[0] == "" {
		c.errorf("spec.command[0]", "the program must not be empty")
	}
}

func (c checker) env() {
	seen := map[string]bool{}
	for i, v := range c.e.Spec.Env {
		f := fmt.Sprintf("spec.env[%d]", i)
		switch {
		case v.Name == "":
			c.errorf(f, "name: missing")
		case !envName.MatchString(v.Name):
			c.errorf(f+".name", "%q must be letters, digits and '_', not starting with a digit", v.Name)
		case strings.HasPrefix(v.Name, "EXPSYNC_"):
			c.errorf(f+".name", "%q: names starting with EXPSYNC_ are reserved for the runner", v.Name)
		case seen[v.Name]:
			c.errorf(f+".name", "%q is set twice", v.Name)
		}
		seen[v.Name] = true
		if v.SecretRef != nil && v.Value != "" {
			c.errorf(f, "set value or secretRef, not both")
		}
		if r := v.SecretRef; r != nil {
			if r.Name == "" || len(validation.IsDNS1123Subdomain(r.Name)) > 0 {
				c.errorf(f+".secretRef.name", "%q must be a Secret name (lowercase DNS subdomain)", r.Name)
			}
			if r.Key == "" || len(validation.IsConfigMapKey(r.Key)) > 0 {
				c.errorf(f+".secretRef.key", "%q must be a key of letters, digits, '-', '_' or '.'", r.Key)
			}
		}
	}
}

func (c checker) params() {
	for _, k := range sortedKeys(c.e.Spec.Params) {
		if !paramName.MatchString(k) {
			c.errorf("spec.params."+k, "parameter name %q must be letters, digits and '_', not starting with a digit", k)
		}
	}
}

// relPath checks a path relative to the work folder or the repository.
func (c checker) relPath(field, p string) (string, bool) {
	clean, err := tree.Clean(strings.TrimSuffix(p, "/"))
	if err != nil || clean == "" {
		c.errorf(field, "%q must be a relative path that stays inside its folder (no '..', not absolute)", p)
		return "", false
	}
	return clean, true
}

func (c checker) inputs() {
	names, paths := map[string]bool{}, map[string]bool{}
	for i, in := range c.e.Spec.Inputs {
		f := fmt.Sprintf("spec.inputs[%d]", i)
		switch {
		case in.Name == "":
			c.errorf(f, "name: missing")
		case !inputName.MatchString(in.Name) || len(in.Name) > 63:
			c.errorf(f+".name", "%q must be lowercase letters, digits, '-', '_' or '.'", in.Name)
		case names[in.Name]:
			c.errorf(f+".name", "%q is used twice", in.Name)
		}
		names[in.Name] = true
		switch {
		case in.URI == "" && in.File == "":
			c.errorf(f, "set uri (with sha256) to fetch the input, or file to take it from the repository")
		case in.URI != "" && in.File != "":
			c.errorf(f, "set uri or file, not both")
		case in.URI != "":
			c.uri(f+".uri", in.URI)
			if in.SHA256 == "" {
				c.errorf(f, "sha256: missing; an input fetched from a URI must declare its sha256")
			}
		case in.File != "":
			if p, ok := c.relPath(f+".file", in.File); ok && tree.Contains(c.results, p) {
				c.errorf(f+".file", "%q lies in the results folder %q, which every results commit changes; inputs must not", in.File, c.results)
			}
		}
		if in.SHA256 != "" && !sha256Hex.MatchString(in.SHA256) {
			c.errorf(f+".sha256", "%q must be 64 lowercase hex digits", in.SHA256)
		}
		if in.Path != "" {
			if p, ok := c.relPath(f+".path", in.Path); ok {
				if paths[p] {
					c.errorf(f+".path", "%q is the path of another input", in.Path)
				}
				paths[p] = true
			}
		}
	}
}

func (c checker) uri(field, raw string) {
	u, err := url.Parse(raw)
	if err != nil {
		c.errorf(field, "not a URI: %v", err)
		return
	}
	switch u.Scheme {
	case "https", "http", "s3", "gs":
	default:
		c.errorf(field, "scheme %q is not supported; use https, http, s3 or gs", u.Scheme)
	}
	if u.User != nil {
		// A credential in the URI would end up in contracts and attestations.
		c.errorf(field, "must not contain credentials; the runner takes them from its environment")
	}
	if u.Host == "" {
		c.errorf(field, "needs a host")
	}
}

func (c checker) outputs() {
	seen := map[string]bool{}
	for i, o := range c.e.Spec.Outputs {
		f := fmt.Sprintf("spec.outputs[%d]", i)
		if p, ok := c.relPath(f, o); ok {
			if seen[p] {
				c.errorf(f, "%q is declared twice", o)
			}
			seen[p] = true
			// Outputs are committed below results/<experiment>/<run>/outputs/.
			var pe *tree.PathError
			if err := tree.CheckResultPath(p); errors.As(err, &pe) {
				c.errorf(f, "%q: %q %s; outputs are committed to Git, choose another name", o, pe.Component, pe.Reason)
			} else if len(p) > contract.MaxOutputPathBytes {
				c.errorf(f, "%q has %d bytes; an output's path is limited to %d", o, len(p), contract.MaxOutputPathBytes)
			}
		}
	}
	if m := c.e.Spec.Metrics; m != "" {
		if strings.HasSuffix(m, "/") {
			c.errorf("spec.metrics", "%q must be a file, not a folder", m)
		}
		c.relPath("spec.metrics", m)
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
