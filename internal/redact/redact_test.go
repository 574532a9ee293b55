package redact

import (
	"strings"
	"testing"
)

func TestUserinfo(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"no url here", "no url here"},
		{"https://example.org/x.git", "https://example.org/x.git"},
		{"https://ann@example.org/x", "https://ann@example.org/x"},
		{`Get "https://ann:pw@h.org/x.git": EOF`, `Get "https://ann:[REDACTED]@h.org/x.git": EOF`},
		{"a https://u:p@h b ssh://git:pp@h2:22/r", "a https://u:[REDACTED]@h b ssh://git:[REDACTED]@h2:22/r"},
		{"https://u:p@ss@h/x", "https://u:[REDACTED]@h/x"},
		{"://", "://"},
		{"x://:@", "x://:[REDACTED]@"},
	} {
		if got := Userinfo(tc.in); got != tc.want {
			t.Errorf("Userinfo(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestTextRedactsRawAndQuoted(t *testing.T) {
	secrets := LongestFirst([]string{"ab", "", "a\tb-long", "ab"})
	if len(secrets) != 2 || secrets[0] != "a\tb-long" {
		t.Fatalf("LongestFirst = %q", secrets)
	}
	got := Text(`raw a	b-long, quoted "a\tb-long", short ab`, secrets)
	if want := `raw [REDACTED], quoted "[REDACTED]", short [REDACTED]`; got != want {
		t.Errorf("Text = %q, want %q", got, want)
	}
}

func TestURL(t *testing.T) {
	for in, want := range map[string]string{
		"https://u:p@h.org/data.tgz?sig=abc#f": "https://h.org/data.tgz",
		"s3://bucket/key":                      "s3://bucket/key",
		"https://h.org/a@b/c":                  "https://h.org/a@b/c",
	} {
		if got := URL(in); got != want {
			t.Errorf("URL(%q) = %q, want %q", in, got, want)
		}
	}
}

// FuzzUserinfo: whatever surrounds it, a password between "://user:" and
// "@host" never survives, and redacting twice changes nothing more.
func FuzzUserinfo(f *testing.F) {
	f.Add("Get \"", "pw", "\": EOF")
	f.Add("", "p@ss", "")
	f.Fuzz(func(t *testing.T, before, pass, after string) {
		if pass == "" || strings.ContainsAny(pass, "/ \t\n\"'`<>@") || strings.Contains(pass, Marker) {
			return
		}
		s := before + "https://ann:" + pass + "@h.org/x" + after
		got := Userinfo(s)
		if strings.Contains(got, "ann:"+pass+"@h.org") {
			t.Fatalf("Userinfo(%q) = %q keeps the password", s, got)
		}
		if again := Userinfo(got); again != got {
			t.Fatalf("not idempotent: %q then %q", got, again)
		}
	})
}
