package runner

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/expsync/expsync/contract"
)

// withholdSecrets scans the run's outputs and metrics file for the exact
// bytes of each secret value (only when the run has secrets). An output
// that holds one is listed in res.Withheld, so it is never committed; a
// metrics file that holds one is not recorded. It returns a message naming
// the files and variables (never the values), "" when nothing leaked.
func (r *attemptRunner) withholdSecrets(ctx context.Context, res *contract.Result) string {
	if len(r.secretVars) == 0 {
		return ""
	}
	var problems []string
	for _, o := range res.Outputs {
		vars, err := r.secretsIn(ctx, o.SHA256)
		if err != nil {
			// Unreadable: it cannot be vouched for either.
			res.Withheld = append(res.Withheld, o.Path)
			problems = append(problems, fmt.Sprintf("output %s could not be checked for secrets: %v", o.Path, err))
			continue
		}
		if len(vars) > 0 {
			res.Withheld = append(res.Withheld, o.Path)
			problems = append(problems, fmt.Sprintf("output %s holds the value of %s", o.Path, strings.Join(vars, ", ")))
		}
	}
	if res.MetricsSHA256 != "" {
		vars, err := r.secretsIn(ctx, res.MetricsSHA256)
		if err != nil || len(vars) > 0 {
			what := "holds the value of " + strings.Join(vars, ", ")
			if err != nil {
				what = fmt.Sprintf("could not be checked for secrets: %v", err)
			}
			res.Metrics, res.MetricsSHA256 = nil, ""
			res.MetricsError = fmt.Sprintf("metrics file %s %s; not recorded", r.c.Metrics, what)
			problems = append(problems, res.MetricsError)
		}
	}
	if len(problems) == 0 {
		return ""
	}
	return strings.Join(problems, "; ") + " (files holding a secret stay in the store and are never committed; write secrets nowhere but to their consumers)"
}

// secretsIn names the secrets whose values occur in a blob.
func (r *attemptRunner) secretsIn(ctx context.Context, sha string) ([]string, error) {
	rc, err := r.st.Open(ctx, sha)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return scanSecrets(rc, r.secretVars)
}

// scanSecrets reads rc in chunks, keeping the last len(longest)-1 bytes of
// the previous chunk so a value cut by a chunk boundary is found too.
func scanSecrets(rd io.Reader, secrets []secretVar) ([]string, error) {
	keep := 0
	for _, s := range secrets {
		keep = max(keep, len(s.value)-1)
	}
	found := make([]bool, len(secrets))
	buf := make([]byte, 0, keep+64<<10)
	chunk := make([]byte, 64<<10)
	for {
		n, err := rd.Read(chunk)
		if n > 0 {
			buf = append(buf, chunk[:n]...)
			for i, s := range secrets {
				if !found[i] && bytes.Contains(buf, []byte(s.value)) {
					found[i] = true
				}
			}
			if len(buf) > keep {
				buf = append(buf[:0], buf[len(buf)-keep:]...)
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
	}
	var vars []string
	seen := map[string]bool{}
	for i, s := range secrets {
		if found[i] && !seen[s.name] {
			seen[s.name] = true
			vars = append(vars, s.name)
		}
	}
	return vars, nil
}
