package attest

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"
)

// jsonScanner walks a JSON document that json.Valid has accepted, reading
// the few fields verification needs and skipping the rest without building
// anything. It exists for speed: reflection-driven decoding of a 2 KiB
// statement costs about half a signature check (BenchmarkVerifyVsRaw).
//
// It is stricter than encoding/json: keys match exactly, and a key that
// differs from a known one only in case, or is its protobuf field name
// ("predicate_type"), is refused rather than silently preferred or ignored,
// as is a known key given twice. FuzzParseStatement checks it against the
// encoding/json reading of the same statement.
type jsonScanner struct {
	data []byte
	pos  int
}

// objectState tracks one object being read: which known keys were seen.
type objectState struct {
	name    string
	known   []string
	aliases []string
	seen    uint32
	started bool
}

func (s *jsonScanner) ws() {
	for s.pos < len(s.data) {
		switch s.data[s.pos] {
		case ' ', '\t', '\r', '\n':
			s.pos++
		default:
			return
		}
	}
}

func (s *jsonScanner) peek() byte {
	s.ws()
	if s.pos >= len(s.data) {
		return 0
	}
	return s.data[s.pos]
}

// null consumes a null literal if one is next.
func (s *jsonScanner) null() bool {
	if s.peek() == 'n' {
		s.pos += len("null")
		return true
	}
	return false
}

// rawString consumes a string and returns its body and whether it has
// escapes.
func (s *jsonScanner) rawString() ([]byte, bool) {
	start := s.pos + 1
	s.pos++
	escaped := false
	for {
		s.pos += specialIndex(s.data[s.pos:])
		if s.data[s.pos] == '"' {
			break
		}
		// A backslash (validated JSON has no raw control characters):
		// step over it and the byte it escapes.
		escaped = true
		s.pos += 2
	}
	s.pos++
	return s.data[start : s.pos-1], escaped
}

// str reads a string value (null reads as "").
func (s *jsonScanner) str(field string) (string, error) {
	if s.null() {
		return "", nil
	}
	if s.peek() != '"' {
		return "", fmt.Errorf("%s: want a string", field)
	}
	start := s.pos
	raw, escaped := s.rawString()
	if !escaped {
		if !utf8.Valid(raw) {
			return "", fmt.Errorf("%s: invalid UTF-8", field)
		}
		return string(raw), nil
	}
	var out string
	if err := json.Unmarshal(s.data[start:s.pos], &out); err != nil {
		return "", fmt.Errorf("%s: %w", field, err)
	}
	return out, nil
}

// skip consumes any value.
func (s *jsonScanner) skip() {
	switch s.peek() {
	case '"':
		s.rawString()
	case '{', '[':
		depth := 0
		for {
			switch s.data[s.pos] {
			case '"':
				s.rawString()
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
			}
			s.pos++
			if depth == 0 {
				return
			}
		}
	default:
		for s.pos < len(s.data) {
			switch s.data[s.pos] {
			case ',', '}', ']', ' ', '\t', '\r', '\n':
				return
			}
			s.pos++
		}
	}
}

// enterObject starts reading an object; null reads as an empty object.
func (s *jsonScanner) enterObject(o *objectState) error {
	if s.null() {
		o.started = false
		return nil
	}
	if s.peek() != '{' {
		return fmt.Errorf("%s: want an object", o.name)
	}
	s.pos++
	o.started = true
	return nil
}

// fields reads an object, calling field for each known key with the
// scanner at its value (field must consume it); other keys are skipped and
// null reads as an empty object. The first error ends the object.
func (s *jsonScanner) fields(o *objectState, field func(key string) error) error {
	if err := s.enterObject(o); err != nil {
		return err
	}
	for {
		key, ok, err := s.nextKey(o)
		if err != nil || !ok {
			return err
		}
		if err := field(key); err != nil {
			return err
		}
	}
}

// nextKey returns the next known key of the object (its value is next),
// skipping the values of other keys; ok is false at the object's end.
func (s *jsonScanner) nextKey(o *objectState) (key string, ok bool, err error) {
	if !o.started {
		return "", false, nil
	}
	for {
		switch s.peek() {
		case '}':
			s.pos++
			o.started = false
			return "", false, nil
		case ',':
			s.pos++
			s.peek()
		}
		raw, escaped := s.rawString()
		s.peek() // ':'
		s.pos++
		if escaped {
			// Known keys have no escapes; an escaped spelling of one is refused.
			var k string
			if err := json.Unmarshal(append(append([]byte{'"'}, raw...), '"'), &k); err == nil {
				for _, known := range append(o.known[:len(o.known):len(o.known)], o.aliases...) {
					if strings.EqualFold(k, known) {
						return "", false, fmt.Errorf("%s: key %q is written with escapes", o.name, k)
					}
				}
			}
			s.skip()
			continue
		}
		for i, k := range o.known {
			if string(raw) == k {
				if o.seen&(1<<i) != 0 {
					return "", false, fmt.Errorf("%s: key %q given twice", o.name, k)
				}
				o.seen |= 1 << i
				return k, true, nil
			}
			if foldEqual(raw, k) {
				return "", false, fmt.Errorf("%s: key %q differs from %q only in case", o.name, raw, k)
			}
		}
		for _, a := range o.aliases {
			if foldEqual(raw, a) {
				return "", false, fmt.Errorf("%s: key %q is a protobuf field name; use the JSON name", o.name, raw)
			}
		}
		s.skip()
	}
}

// foldEqual is strings.EqualFold without allocating for ASCII keys.
func foldEqual(raw []byte, k string) bool {
	ascii := true
	for _, c := range raw {
		if c >= utf8.RuneSelf {
			ascii = false
			break
		}
	}
	if !ascii {
		return strings.EqualFold(string(raw), k)
	}
	if len(raw) != len(k) {
		return false
	}
	for i := 0; i < len(raw); i++ {
		a, b := raw[i], k[i]
		if 'A' <= a && a <= 'Z' {
			a += 'a' - 'A'
		}
		if 'A' <= b && b <= 'Z' {
			b += 'a' - 'A'
		}
		if a != b {
			return false
		}
	}
	return true
}

// enterArray starts reading an array; null reads as empty. nextItem then
// reports whether an element follows.
func (s *jsonScanner) enterArray(name string) (bool, error) {
	if s.null() {
		return false, nil
	}
	if s.peek() != '[' {
		return false, fmt.Errorf("%s: want an array", name)
	}
	s.pos++
	return true, nil
}

func (s *jsonScanner) nextItem() bool {
	switch s.peek() {
	case ']':
		s.pos++
		return false
	case ',':
		s.pos++
	}
	return true
}

// nonEmptyObject consumes a value and reports whether it is an object with
// at least one key.
func (s *jsonScanner) nonEmptyObject() bool {
	if s.peek() != '{' {
		s.skip()
		return false
	}
	start := s.pos
	s.pos++
	empty := s.peek() == '}'
	s.pos = start
	s.skip()
	return !empty
}

// maxJSONDepth bounds nesting so a hostile document cannot exhaust the
// stack (encoding/json's own limit is 10000).
const maxJSONDepth = 10000

// validJSON reports whether data is one JSON value with optional white
// space around it — json.Valid's answer (FuzzValidJSON holds it to that),
// several times faster because it checks the grammar directly instead of
// stepping a state machine per byte.
func validJSON(data []byte) bool {
	v := jsonValidator{data: data}
	v.ws()
	if !v.value(0) {
		return false
	}
	v.ws()
	return v.pos == len(v.data)
}

type jsonValidator struct {
	data []byte
	pos  int
}

func (v *jsonValidator) ws() {
	for v.pos < len(v.data) {
		switch v.data[v.pos] {
		case ' ', '\t', '\r', '\n':
			v.pos++
		default:
			return
		}
	}
}

func (v *jsonValidator) value(depth int) bool {
	if v.pos >= len(v.data) || depth > maxJSONDepth {
		return false
	}
	switch c := v.data[v.pos]; {
	case c == '"':
		return v.string()
	case c == '{':
		return v.container(depth+1, '}')
	case c == '[':
		return v.container(depth+1, ']')
	case c == '-' || ('0' <= c && c <= '9'):
		return v.number()
	case c == 't':
		return v.literal("true")
	case c == 'f':
		return v.literal("false")
	case c == 'n':
		return v.literal("null")
	}
	return false
}

func (v *jsonValidator) literal(lit string) bool {
	if len(v.data)-v.pos < len(lit) || string(v.data[v.pos:v.pos+len(lit)]) != lit {
		return false
	}
	v.pos += len(lit)
	return true
}

func (v *jsonValidator) string() bool {
	v.pos++ // opening quote
	for v.pos < len(v.data) {
		v.pos += specialIndex(v.data[v.pos:])
		if v.pos >= len(v.data) {
			return false
		}
		c := v.data[v.pos]
		switch {
		case c == '"':
			v.pos++
			return true
		case c < 0x20:
			return false
		case c == '\\':
			v.pos++
			if v.pos >= len(v.data) {
				return false
			}
			switch v.data[v.pos] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				v.pos++
			case 'u':
				if len(v.data)-v.pos < 5 {
					return false
				}
				for _, h := range v.data[v.pos+1 : v.pos+5] {
					if !('0' <= h && h <= '9' || 'a' <= h && h <= 'f' || 'A' <= h && h <= 'F') {
						return false
					}
				}
				v.pos += 5
			default:
				return false
			}
		default:
			v.pos++
		}
	}
	return false
}

func (v *jsonValidator) digits() int {
	start := v.pos
	for v.pos < len(v.data) && '0' <= v.data[v.pos] && v.data[v.pos] <= '9' {
		v.pos++
	}
	return v.pos - start
}

func (v *jsonValidator) number() bool {
	if v.data[v.pos] == '-' {
		v.pos++
	}
	if v.pos >= len(v.data) {
		return false
	}
	if v.data[v.pos] == '0' {
		v.pos++
	} else if v.digits() == 0 {
		return false
	}
	if v.pos < len(v.data) && v.data[v.pos] == '.' {
		v.pos++
		if v.digits() == 0 {
			return false
		}
	}
	if v.pos < len(v.data) && (v.data[v.pos] == 'e' || v.data[v.pos] == 'E') {
		v.pos++
		if v.pos < len(v.data) && (v.data[v.pos] == '+' || v.data[v.pos] == '-') {
			v.pos++
		}
		if v.digits() == 0 {
			return false
		}
	}
	return true
}

// container checks an object (close '}') or an array (close ']') from its
// opening byte: elements separated by ',', each an object's key, ':' and a
// value, or an array's value.
func (v *jsonValidator) container(depth int, close byte) bool {
	v.pos++ // { or [
	v.ws()
	if v.pos < len(v.data) && v.data[v.pos] == close {
		v.pos++
		return true
	}
	for {
		if close == '}' && !v.key() {
			return false
		}
		if !v.value(depth) {
			return false
		}
		v.ws()
		if v.pos >= len(v.data) {
			return false
		}
		switch v.data[v.pos] {
		case ',':
			v.pos++
			v.ws()
		case close:
			v.pos++
			return true
		default:
			return false
		}
	}
}

// key checks an object key and its ':', leaving the position at the value.
func (v *jsonValidator) key() bool {
	if v.pos >= len(v.data) || v.data[v.pos] != '"' || !v.string() {
		return false
	}
	v.ws()
	if v.pos >= len(v.data) || v.data[v.pos] != ':' {
		return false
	}
	v.pos++
	v.ws()
	return true
}

// specialIndex returns the index of the first byte of b that ends a plain
// run of string content — '"', '\\' or a control character — or len(b). It
// tests eight bytes at a time (SWAR), the hot loop of reading a statement:
// hex digests and base64 content are long runs of plain bytes.
func specialIndex(b []byte) int {
	const (
		ones  = 0x0101010101010101
		highs = 0x8080808080808080
		quote = ones * '"'
		slash = ones * '\\'
		space = ones * 0x20
	)
	i := 0
	for ; i+8 <= len(b); i += 8 {
		x := binary.LittleEndian.Uint64(b[i:])
		less := (x - space) & ^x & highs
		q := x ^ quote
		s := x ^ slash
		if less|((q-ones)&^q&highs)|((s-ones)&^s&highs) != 0 {
			break
		}
	}
	for ; i < len(b); i++ {
		if c := b[i]; c == '"' || c == '\\' || c < 0x20 {
			return i
		}
	}
	return len(b)
}
