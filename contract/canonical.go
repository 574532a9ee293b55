package contract

import (
	"math"
	"sort"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/gowebpki/jcs"
)

// appendCanonical writes the RFC 8785 form of i directly, without the
// encode-parse-reencode round trip of jcs.Transform: planning a 10,000-run
// sweep spends most of its time here. It reports false when a param value
// is of a type it does not handle (the caller then takes the general path).
// TestCanonicalFastPathEqualsJCS and FuzzCanonical hold the two paths equal.
func appendCanonical(b []byte, i Identity) ([]byte, bool) {
	// Keys in UTF-16 order: command, contextTree, env, experiment, idVersion,
	// image, inputs, metrics, outputs, params, repeat. Optional fields follow
	// the json tags' omitempty.
	b = append(b, `{"command":`...)
	b = appendStrings(b, i.Command)
	b = append(b, `,"contextTree":`...)
	b = appendString(b, i.ContextTree)
	if len(i.Env) > 0 {
		b = append(b, `,"env":[`...)
		for k, e := range i.Env {
			if k > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"name":`...)
			b = appendString(b, e.Name)
			if e.SecretRef != nil {
				b = append(b, `,"secretRef":{"key":`...)
				b = appendString(b, e.SecretRef.Key)
				b = append(b, `,"name":`...)
				b = appendString(b, e.SecretRef.Name)
				b = append(b, '}')
			}
			if e.Value != "" {
				b = append(b, `,"value":`...)
				b = appendString(b, e.Value)
			}
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	b = append(b, `,"experiment":`...)
	b = appendString(b, i.Experiment)
	b = append(b, `,"idVersion":`...)
	b = strconv.AppendInt(b, int64(i.IDVersion), 10)
	b = append(b, `,"image":`...)
	b = appendString(b, i.Image)
	if len(i.Inputs) > 0 {
		b = append(b, `,"inputs":[`...)
		for k, in := range i.Inputs {
			if k > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"name":`...)
			b = appendString(b, in.Name)
			b = append(b, `,"path":`...)
			b = appendString(b, in.Path)
			b = append(b, `,"sha256":`...)
			b = appendString(b, in.SHA256)
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	if i.Metrics != "" {
		b = append(b, `,"metrics":`...)
		b = appendString(b, i.Metrics)
	}
	if len(i.Outputs) > 0 {
		b = append(b, `,"outputs":`...)
		b = appendStrings(b, i.Outputs)
	}
	if len(i.Params) > 0 {
		b = append(b, `,"params":{`...)
		keys := make([]string, 0, len(i.Params))
		for k := range i.Params {
			keys = append(keys, k)
		}
		sort.Slice(keys, func(x, y int) bool { return lessUTF16(keys[x], keys[y]) })
		for k, key := range keys {
			if k > 0 {
				b = append(b, ',')
			}
			b = appendString(b, key)
			b = append(b, ':')
			var ok bool
			if b, ok = appendScalar(b, i.Params[key]); !ok {
				return nil, false
			}
		}
		b = append(b, '}')
	}
	if i.Repeat != 0 {
		b = append(b, `,"repeat":`...)
		b = strconv.AppendInt(b, int64(i.Repeat), 10)
	}
	return append(b, '}'), true
}

func appendStrings(b []byte, list []string) []byte {
	if list == nil {
		return append(b, "null"...)
	}
	b = append(b, '[')
	for k, s := range list {
		if k > 0 {
			b = append(b, ',')
		}
		b = appendString(b, s)
	}
	return append(b, ']')
}

const maxExactInt = 1 << 53

func appendScalar(b []byte, v any) ([]byte, bool) {
	var f float64
	switch v := v.(type) {
	case string:
		return appendString(b, v), true
	case bool:
		return strconv.AppendBool(b, v), true
	case int:
		if v > maxExactInt || v < -maxExactInt {
			return nil, false
		}
		f = float64(v)
	case int64:
		if v > maxExactInt || v < -maxExactInt {
			return nil, false
		}
		f = float64(v)
	case float64:
		f = v
	default:
		return nil, false
	}
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return nil, false
	}
	s, err := jcs.NumberToJSON(f)
	if err != nil {
		return nil, false
	}
	return append(b, s...), true
}

// appendString writes s as RFC 8785 does: only '"', '\\' and control
// characters escaped, everything else as UTF-8; invalid UTF-8 becomes
// U+FFFD, as encoding/json would make it.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	if plainASCII(s) {
		b = append(b, s...)
		return append(b, '"')
	}
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b = append(b, '\\', byte(r))
		case r == '\b':
			b = append(b, '\\', 'b')
		case r == '\f':
			b = append(b, '\\', 'f')
		case r == '\n':
			b = append(b, '\\', 'n')
		case r == '\r':
			b = append(b, '\\', 'r')
		case r == '\t':
			b = append(b, '\\', 't')
		case r < 0x20:
			b = append(b, '\\', 'u', '0', '0', "0123456789abcdef"[r>>4], "0123456789abcdef"[r&0xf])
		default:
			b = utf8.AppendRune(b, r)
		}
	}
	return append(b, '"')
}

// plainASCII reports whether s is printable ASCII needing no escape.
func plainASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x80 || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

// lessUTF16 orders strings by UTF-16 code units, as RFC 8785 sorts keys.
func lessUTF16(a, b string) bool {
	ua, ub := utf16.Encode([]rune(a)), utf16.Encode([]rune(b))
	for k := 0; k < len(ua) && k < len(ub); k++ {
		if ua[k] != ub[k] {
			return ua[k] < ub[k]
		}
	}
	return len(ua) < len(ub)
}
