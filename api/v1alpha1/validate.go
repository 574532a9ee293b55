package v1alpha1

import (
	"fmt"
	"math"
	"net/url"
	"regexp"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation"

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
	c.scheduling()
	c.context(l.r, l.config)
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

// SweepSize is the number of points a sweep expands to before exclusions:
// the product of the matrix lists plus the includes (at least 1: an
// experiment without a sweep has one point). It saturates at math.MaxInt.
func SweepSize(s *Sweep) int {
	if s == nil {
		return 1
	}
	product := 1
	if len(s.Matrix) == 0 {
		product = 0
		if len(s.Include) == 0 {
			product = 1
		}
	}
	for _, values := range s.Matrix {
		if len(values) == 0 {
			return len(s.Include)
		}
		if product > math.MaxInt/len(values) {
			return math.MaxInt
		}
		product *= len(values)
	}
	if product > math.MaxInt-len(s.Include) {
		return math.MaxInt
	}
	return product + len(s.Include)
}

func (c checker) sweep() {
	s := c.e.Spec.Sweep
	if c.e.Spec.Repeat < 0 {
		c.errorf("spec.repeat", "must be at least 1, got %d", c.e.Spec.Repeat)
	} else if c.lim.MaxRepeat > 0 && c.e.Spec.Repeat > c.lim.MaxRepeat {
		c.errorf("spec.repeat", "%d is above the limit %d (limits.maxRepeat)", c.e.Spec.Repeat, c.lim.MaxRepeat)
	}
	if s == nil {
		return
	}
	for _, k := range sortedKeys(s.Matrix) {
		f := "spec.sweep.matrix." + k
		if !paramName.MatchString(k) {
			c.errorf(f, "parameter name %q must be letters, digits and '_', not starting with a digit", k)
		}
		values := s.Matrix[k]
		if len(values) == 0 {
			c.errorf(f, "needs at least one value")
		}
		seen := map[string]int{}
		for i, v := range values {
			key := fmt.Sprintf("%T:%v", v, v)
			if j, dup := seen[key]; dup {
				c.errorf(fmt.Sprintf("%s[%d]", f, i), "value %v repeats %s[%d]; every point must be distinct", v, f, j)
			}
			seen[key] = i
		}
	}
	for i, inc := range s.Include {
		f := fmt.Sprintf("spec.sweep.include[%d]", i)
		if len(inc) == 0 {
			c.errorf(f, "an include entry needs at least one parameter")
		}
		for _, k := range sortedKeys(inc) {
			if !paramName.MatchString(k) {
				c.errorf(f+"."+k, "parameter name %q must be letters, digits and '_', not starting with a digit", k)
			}
		}
	}
	for i, ex := range s.Exclude {
		f := fmt.Sprintf("spec.sweep.exclude[%d]", i)
		if len(ex) == 0 {
			c.errorf(f, "an exclude entry needs at least one parameter")
		}
		for _, k := range sortedKeys(ex) {
			if _, ok := s.Matrix[k]; !ok {
				c.errorf(f+"."+k, "%q is not a matrix parameter%s", k, hint(k, sortedKeys(s.Matrix)))
			}
		}
	}
	size := SweepSize(s)
	repeat := max(c.e.Spec.Repeat, 1)
	if size <= math.MaxInt/repeat {
		size *= repeat
	} else {
		size = math.MaxInt
	}
	if c.lim.MaxRunsPerExperiment > 0 && size > c.lim.MaxRunsPerExperiment {
		c.errorf("spec.sweep", "expands to %s runs; the limit is %d (limits.maxRunsPerExperiment)", countString(size), c.lim.MaxRunsPerExperiment)
	}
}

func countString(n int) string {
	if n == math.MaxInt {
		return "more than 2^63"
	}
	return fmt.Sprint(n)
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
		}
	}
	if m := c.e.Spec.Metrics; m != "" {
		if strings.HasSuffix(m, "/") {
			c.errorf("spec.metrics", "%q must be a file, not a folder", m)
		}
		c.relPath("spec.metrics", m)
	}
}

func (c checker) scheduling() {
	s := c.e.Spec
	for _, q := range []struct{ field, val string }{{"spec.resources.cpu", s.Resources.CPU}, {"spec.resources.memory", s.Resources.Memory}, {"spec.resources.ephemeralStorage", s.Resources.EphemeralStorage}} {
		if q.val == "" {
			continue
		}
		v, err := resource.ParseQuantity(q.val)
		if err != nil || v.Sign() <= 0 {
			c.errorf(q.field, "%q must be a positive quantity such as 500m, 2, 512Mi or 4Gi", q.val)
		}
	}
	if s.Resources.GPU < 0 {
		c.errorf("spec.resources.gpu", "must not be negative")
	} else if c.lim.MaxGPUs > 0 && s.Resources.GPU > c.lim.MaxGPUs {
		c.errorf("spec.resources.gpu", "%d is above the limit %d (limits.maxGPUs)", s.Resources.GPU, c.lim.MaxGPUs)
	}
	if g := s.Resources.GPUResource; g != "" && len(validation.IsQualifiedName(g)) > 0 {
		c.errorf("spec.resources.gpuResource", "%q must be a resource name such as nvidia.com/gpu", g)
	}
	if c.lim.MaxTimeout.Duration > 0 && s.Timeout.Duration > c.lim.MaxTimeout.Duration {
		c.errorf("spec.timeout", "%s is above the limit %s (limits.maxTimeout)", s.Timeout.Duration, c.lim.MaxTimeout.Duration)
	}
	if s.Retries.Limit < 0 {
		c.errorf("spec.retries.limit", "must not be negative")
	} else if c.lim.MaxRetries > 0 && s.Retries.Limit > c.lim.MaxRetries {
		c.errorf("spec.retries.limit", "%d is above the limit %d (limits.maxRetries)", s.Retries.Limit, c.lim.MaxRetries)
	}
	codes := map[int32]bool{}
	for i, code := range s.Retries.OnExitCodes {
		f := fmt.Sprintf("spec.retries.onExitCodes[%d]", i)
		switch {
		case code < 1 || code > 255:
			c.errorf(f, "%d is not an exit code meaning failure (1-255)", code)
		case codes[code]:
			c.errorf(f, "%d is listed twice", code)
		}
		codes[code] = true
	}
	if q := s.Queue; q != "" {
		for _, msg := range validation.IsDNS1123Label(q) {
			c.errorf("spec.queue", "%q: %s", q, msg)
		}
	}
	if p := s.PriorityClassName; p != "" {
		for _, msg := range validation.IsDNS1123Subdomain(p) {
			c.errorf("spec.priorityClassName", "%q: %s", p, msg)
		}
	}
	for _, k := range sortedKeys(s.NodeSelector) {
		for _, msg := range validation.IsQualifiedName(k) {
			c.errorf("spec.nodeSelector."+k, "key %q: %s", k, msg)
		}
		for _, msg := range validation.IsValidLabelValue(s.NodeSelector[k]) {
			c.errorf("spec.nodeSelector."+k, "%s", msg)
		}
	}
	for i, t := range s.Tolerations {
		f := fmt.Sprintf("spec.tolerations[%d]", i)
		switch t.Operator {
		case "", "Equal":
			if t.Key == "" {
				c.errorf(f, "operator Equal needs a key; use operator Exists to tolerate every taint")
			}
		case "Exists":
			if t.Value != "" {
				c.errorf(f+".value", "must be empty when operator is Exists")
			}
		default:
			c.errorf(f+".operator", "%q must be Equal or Exists", t.Operator)
		}
		if t.Key != "" {
			for _, msg := range validation.IsQualifiedName(t.Key) {
				c.errorf(f+".key", "%q: %s", t.Key, msg)
			}
		}
		switch t.Effect {
		case "", "NoSchedule", "PreferNoSchedule", "NoExecute":
		default:
			c.errorf(f+".effect", "%q must be NoSchedule, PreferNoSchedule or NoExecute", t.Effect)
		}
		if t.TolerationSeconds != nil && t.Effect != "NoExecute" {
			c.errorf(f+".tolerationSeconds", "only applies with effect NoExecute")
		}
	}
}

// context checks the context folder: inside the repository, present, and
// not holding the results folder (a results commit must never change an ID).
func (c checker) context(r tree.Reader, cfg RepositoryConfig) {
	field, ctx := "spec.context", c.e.Spec.Context
	if ctx == "" {
		field, ctx = "", dirOf(c.e.Source.Path)
	} else {
		clean, err := tree.Clean(ctx)
		if err != nil {
			c.errorf(field, "%q must be a folder of the repository, from its root (no '..', not absolute)", ctx)
			return
		}
		ctx = clean
	}
	at := func(format string, args ...any) {
		if field == "" {
			c.errs.add(c.e.Pos(""), "spec.context (default: the experiment file's folder %q): %s", ctx, fmt.Sprintf(format, args...))
			return
		}
		c.errorf(field, format, args...)
	}
	if tree.Contains(ctx, cfg.Results) {
		at("%q contains the results folder %q; set a context that does not, so results commits never change run IDs", displayPath(ctx), cfg.Results)
		return
	}
	e, err := r.Stat(ctx)
	switch {
	case err != nil:
		at("folder %q not found in the repository (contexts are paths from the repository root)", displayPath(ctx))
	case !e.IsDir():
		at("%q is not a folder", displayPath(ctx))
	}
}

func dirOf(p string) string {
	d, _ := tree.Split(p)
	return d
}

func displayPath(p string) string {
	if p == "" {
		return "."
	}
	return p
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
