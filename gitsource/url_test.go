package gitsource

import (
	"errors"
	"strings"
	"testing"
)

func TestValidateURL(t *testing.T) {
	controller := URLPolicy{ControllerMode: true}
	local := URLPolicy{AllowHTTP: true}
	cases := []struct {
		url    string
		policy URLPolicy
		ok     bool
	}{
		{"https://git.example/lab/exps.git", controller, true},
		{"ssh://git@git.example:2222/lab/exps.git", controller, true},
		{"git@github.com:lab/exps.git", controller, true},
		{"github.com:lab/exps.git", controller, true},
		{"git://git.example/exps.git", controller, true},
		{"http://git.example/exps.git", controller, false},
		{"http://git.example/exps.git", local, true},
		{"file:///srv/git/exps.git", controller, false},
		{"file:///srv/git/exps.git", local, true},
		{"/srv/git/exps.git", controller, false},
		{"/srv/git/exps.git", local, true},
		{"ext::sh -c touch% /tmp/pwned", local, false},
		{"fd::17", local, false},
		{"-uhttps://x", local, false},
		{"--upload-pack=touch /tmp/pwned", local, false},
		{"https://user:hunter2@git.example/x.git", local, false},
		{"git:hunter2@github.com:lab/exps.git", controller, false},
		{"git:hunter2@github.com:lab/exps.git", local, false},
		{"github.com:lab/ex@ps.git", controller, true},
		{"https://git.example/x.git\n", local, false},
		{" https://git.example/x.git", local, false},
		{"ssh://-oProxyCommand=x/y", local, false},
		{"ftp://git.example/x.git", local, false},
		{"", local, false},
	}
	for _, c := range cases {
		err := ValidateURL(c.url, c.policy)
		if (err == nil) != c.ok {
			t.Errorf("ValidateURL(%q, %+v) = %v, want ok=%v", c.url, c.policy, err, c.ok)
		}
		if err != nil {
			if !errors.Is(err, ErrUnsafeURL) {
				t.Errorf("ValidateURL(%q) error does not wrap ErrUnsafeURL: %v", c.url, err)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("ValidateURL error shows the password: %v", err)
			}
		}
	}
}

func TestRedactURL(t *testing.T) {
	cases := map[string]string{
		"https://user:hunter2@git.example/x.git":          "https://git.example/x.git",
		"https://x-access-token:ghs_abc@github.com/o/r":   "https://github.com/o/r",
		"https://git.example/x.git?private_token=glpat-1": "https://git.example/x.git",
		"ssh://git@git.example/x.git":                     "ssh://git@git.example/x.git",
		"ssh://git:pw@git.example/x.git":                  "ssh://git@git.example/x.git",
		"git@github.com:o/r.git":                          "git@github.com:o/r.git",
		"user:pw@host:path":                               "<redacted>@host:path",
		"/srv/git/x.git":                                  "/srv/git/x.git",
	}
	for in, want := range cases {
		if got := RedactURL(in); got != want {
			t.Errorf("RedactURL(%q) = %q, want %q", in, got, want)
		}
	}
}

func FuzzRedactURL(f *testing.F) {
	for _, s := range []string{"https://u:p@h/x", "u:p@h:x", "ssh://a:b@c/d", "https://h/x?token=t#frag", "%zz@:"} {
		f.Add(s, "p")
	}
	f.Fuzz(func(t *testing.T, raw, secret string) {
		// A password placed in the userinfo never survives redaction.
		if len(secret) < 4 || strings.ContainsAny(secret, "@/:?#%") {
			return
		}
		for _, u := range []string{
			"https://user:" + secret + "@" + raw,
			"ssh://git:" + secret + "@" + raw,
			"user:" + secret + "@" + raw,
		} {
			if out := RedactURL(u); strings.Contains(out, ":"+secret+"@") {
				t.Fatalf("RedactURL(%q) = %q keeps the password", u, out)
			}
		}
		_ = ValidateURL(raw, URLPolicy{ControllerMode: true}) // must not panic
	})
}

func FuzzValidateURLRefusesHelpers(f *testing.F) {
	f.Add("ext", "sh -c id")
	f.Add("fd", "3")
	f.Fuzz(func(t *testing.T, transport, rest string) {
		if transport == "" || strings.ContainsAny(transport, ":/ \t\r\n") {
			return
		}
		if err := ValidateURL(transport+"::"+rest, URLPolicy{AllowHTTP: true}); err == nil &&
			remoteHelperSyntax.MatchString(transport+"::") {
			t.Fatalf("%q accepted", transport+"::"+rest)
		}
	})
}
