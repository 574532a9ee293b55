package render

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/gowebpki/jcs"
)

// Templating replaces {{params.NAME}} (spaces inside the braces allowed) in
// commands, args and env values by the point's value of NAME. Nothing else is
// expanded: any other {{...}} is an error, so a typo never passes silently,
// and a literal "{{" is written as {{"{{"}}.
//
// Values are formatted as in the run's canonical identity: strings as they
// are, booleans as true/false, numbers in ECMAScript form (1e+21, 0.001, 2).

// templateRefs returns the parameter names s uses, checking its syntax.
func templateRefs(s string) ([]string, error) {
	var names []string
	_, err := expand(s, func(name string) (string, error) {
		names = append(names, name)
		return "", nil
	})
	return names, err
}

// Template expands s with params; a name missing from params is an error.
func Template(s string, params map[string]any) (string, error) {
	return expand(s, func(name string) (string, error) {
		v, ok := params[name]
		if !ok {
			return "", fmt.Errorf("{{params.%s}}: no parameter %q (params and sweep define %s)", name, name, knownNames(params))
		}
		return FormatParam(v)
	})
}

func knownNames(params map[string]any) string {
	if len(params) == 0 {
		return "none"
	}
	names := make([]string, 0, len(params))
	for k := range params {
		names = append(names, k)
	}
	sortStrings(names)
	return strings.Join(names, ", ")
}

const literalOpen = `{{"{{"}}`

func expand(s string, lookup func(string) (string, error)) (string, error) {
	if !strings.Contains(s, "{{") {
		return s, nil // the common case costs no allocation
	}
	var b strings.Builder
	rest := s
	for {
		i := strings.Index(rest, "{{")
		if i < 0 {
			b.WriteString(rest)
			return b.String(), nil
		}
		b.WriteString(rest[:i])
		rest = rest[i:]
		if strings.HasPrefix(rest, literalOpen) {
			b.WriteString("{{")
			rest = rest[len(literalOpen):]
			continue
		}
		j := strings.Index(rest, "}}")
		if j < 0 {
			return "", fmt.Errorf("%q: unclosed {{; write a literal {{ as %s", clip(rest), literalOpen)
		}
		expr := strings.TrimSpace(rest[2:j])
		name, ok := strings.CutPrefix(expr, "params.")
		if !ok || !validParamName(name) {
			return "", fmt.Errorf("%q: only {{params.NAME}} is expanded; write a literal {{ as %s", clip(rest[:j+2]), literalOpen)
		}
		v, err := lookup(name)
		if err != nil {
			return "", err
		}
		b.WriteString(v)
		rest = rest[j+2:]
	}
}

func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

func validParamName(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		switch {
		case r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z':
		case i > 0 && r >= '0' && r <= '9':
		default:
			return false
		}
	}
	return true
}

// FormatParam formats a parameter value as templating writes it.
func FormatParam(v any) (string, error) {
	switch v := v.(type) {
	case string:
		return v, nil
	case bool:
		return strconv.FormatBool(v), nil
	case int:
		return strconv.Itoa(v), nil
	case int64:
		return strconv.FormatInt(v, 10), nil
	case float64:
		return jcs.NumberToJSON(v)
	}
	return "", fmt.Errorf("parameter value %v (%T) is not a string, number or boolean", v, v)
}
