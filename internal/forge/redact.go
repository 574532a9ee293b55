package forge

import "strings"

// redactor keeps the token out of every error a client returns: the
// libraries' errors name the request and quote the forge's answer, and a
// forge (or a proxy in front of it) may echo what it was sent.
type redactor struct{ secret string }

// maxErrorRunes keeps an error that quotes a whole HTML error page to one
// readable line.
const maxErrorRunes = 300

func (r redactor) err(err error) error {
	if err == nil {
		return nil
	}
	return &redactedError{msg: r.text(err.Error()), err: err}
}

func (r redactor) text(s string) string {
	if r.secret != "" {
		s = strings.ReplaceAll(s, r.secret, "[redacted]")
	}
	return clipRunes(strings.Join(strings.Fields(s), " "), maxErrorRunes)
}

// redactedError reads as the redacted message; errors.Is and errors.As
// still reach the library's error (its status code).
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }
