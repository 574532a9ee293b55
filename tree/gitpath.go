package tree

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Git refuses some paths when it checks a tree out, and `git fsck` (and a
// server with receive.fsckObjects) flags trees holding them. A commit with
// such a path breaks every later clone: checkout stops with "invalid path".
// CheckGitPath applies those rules for every platform Git protects, whatever
// platform expsync runs on, because the clone that breaks may be a
// reviewer's on Windows or macOS:
//
//   - everywhere (read-cache.c verify_path, fsck.c fsck_tree): no empty
//     component, no "." or "..", no ".git" in any case;
//   - NTFS (path.c is_ntfs_dotgit, core.protectNTFS, on by default): ".git"
//     or its short name "git~1" followed by spaces, periods or an alternate
//     data stream (".git.", ".git ", ".git::$INDEX_ALLOCATION");
//   - HFS+ (utf8.c is_hfs_dotgit, core.protectHFS): ".git" with Unicode code
//     points HFS+ ignores (zero-width joiners, direction marks, U+FEFF);
//   - Windows (compat/mingw.c is_valid_win32_path): reserved device names
//     (CON, PRN, AUX, NUL, COM1-9, LPT0-9, CONIN$, CONOUT$, also with an
//     extension), the characters < > : " | ? * \ and control characters,
//     and a name ending in a space or a period;
//   - symlinks named .gitmodules, .gitattributes, .gitignore or .mailmap in
//     any of those spellings (fsck);
//   - lengths: a name longer than 255 bytes (NAME_MAX of the usual file
//     systems) or a path longer than 4096 bytes (PATH_MAX; fsck's
//     largePathname) cannot be checked out on Linux.

// Path length limits a checkout can create (see CheckGitPath).
const (
	MaxGitNameBytes = 255
	MaxGitPathBytes = 4096
)

// PathError says why a path cannot be committed. Reason never repeats the
// path, so a caller that must not print it (a name holding a secret) can
// print the reason alone.
type PathError struct {
	Path      string
	Component string // the offending component ("" for the whole path)
	Reason    string
}

func (e *PathError) Error() string {
	if e.Component != "" && e.Component != e.Path {
		return fmt.Sprintf("path %q: %q %s", e.Path, e.Component, e.Reason)
	}
	return fmt.Sprintf("path %q %s", e.Path, e.Reason)
}

// CheckGitPath checks a repository path (slash-separated, relative) for an
// entry of the given mode against Git's rules (see above); nil when every
// Git on every platform checks it out and `git fsck` finds nothing.
func CheckGitPath(p string, mode Mode) error {
	fail := func(comp, reason string) error { return &PathError{Path: p, Component: comp, Reason: reason} }
	switch {
	case p == "":
		return fail("", "is empty")
	case len(p) > MaxGitPathBytes:
		return fail("", fmt.Sprintf("has %d bytes; a checkout cannot create a path longer than %d bytes", len(p), MaxGitPathBytes))
	case strings.HasPrefix(p, "/"):
		return fail("", "is absolute")
	}
	for _, comp := range strings.Split(p, "/") {
		if why := gitNameProblem(comp, mode); why != "" {
			return fail(comp, why)
		}
	}
	return nil
}

// CheckResultPath is CheckGitPath for a regular file expsync writes into a
// results folder, which also must not be a file Git reads as configuration
// of the folder it lies in: a .gitattributes would change how the folder's
// files are checked out (line endings, filters), so their bytes would no
// longer match their signed digests, and fsck checks a .gitmodules file's
// content (a hostile one fails every push to a server that runs fsck).
func CheckResultPath(p string) error {
	if err := CheckGitPath(p, ModeFile); err != nil {
		return err
	}
	for _, comp := range strings.Split(p, "/") {
		for _, name := range []string{"gitattributes", "gitmodules"} {
			if isDotGitFile(comp, name) {
				return &PathError{Path: p, Component: comp,
					Reason: "is read by Git as the folder's ." + name + " (it changes how files are checked out, and git fsck checks its content)"}
			}
		}
	}
	return nil
}

// gitNameProblem says why Git refuses one path component ("" when it does not).
func gitNameProblem(name string, mode Mode) string {
	switch {
	case name == "":
		return "is an empty component (a leading, trailing or double slash)"
	case name == "." || name == "..":
		return "is a relative component"
	case len(name) > MaxGitNameBytes:
		return fmt.Sprintf("has %d bytes; file systems refuse names longer than %d bytes", len(name), MaxGitNameBytes)
	case strings.EqualFold(name, ".git"):
		return "is Git's own folder; Git refuses .git inside a tree in any case"
	case isNTFSDotGit(name):
		return "is .git on Windows (NTFS drops trailing spaces and periods, git~1 is its short name, ':' starts a data stream); Git refuses it on every platform"
	case isHFSDotGit(name):
		return "is .git on macOS (HFS+ ignores zero-width and direction code points); Git refuses it"
	}
	if why := windowsNameProblem(name); why != "" {
		return why
	}
	if mode == ModeSymlink {
		for _, n := range []string{"gitmodules", "gitattributes", "gitignore", "mailmap"} {
			if isDotGitFile(name, n) {
				return "is a symlink named ." + n + ", which git fsck refuses"
			}
		}
	}
	return ""
}

// isNTFSDotGit: ".git" or "git~1" (any case) followed only by spaces and
// periods, up to the end or a ':' (an alternate data stream).
func isNTFSDotGit(name string) bool {
	var rest string
	switch lower := asciiLower(name); {
	case strings.HasPrefix(lower, ".git"):
		rest = name[4:]
	case strings.HasPrefix(lower, "git~1"):
		rest = name[5:]
	default:
		return false
	}
	return onlySpacesAndPeriods(rest)
}

// onlySpacesAndPeriods reports whether s, up to its end or a ':', holds
// nothing but spaces and periods: what NTFS trims from a name.
func onlySpacesAndPeriods(s string) bool {
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case ':':
			return true
		case ' ', '.':
		default:
			return false
		}
	}
	return true
}

// hfsIgnored are the code points HFS+ drops when it compares names.
func hfsIgnored(r rune) bool {
	switch r {
	case 0x200c, 0x200d, 0x200e, 0x200f,
		0x202a, 0x202b, 0x202c, 0x202d, 0x202e,
		0x206a, 0x206b, 0x206c, 0x206d, 0x206e, 0x206f,
		0xfeff:
		return true
	}
	return false
}

// isHFSDot reports whether name is "." + needle (ASCII, lower case) on
// HFS+: ignoring the code points it ignores, case-insensitively. As in
// git's utf8.c, a malformed UTF-8 sequence ends the name: ".git\xff" is
// .git, ".g\xffit" is not.
func isHFSDot(name, needle string) bool {
	want := "." + needle
	for i := 0; i < len(want); i++ {
		var r rune
		if r, name = hfsNext(name); r != rune(want[i]) && !(r >= 'A' && r <= 'Z' && r+'a'-'A' == rune(want[i])) {
			return false
		}
	}
	r, _ := hfsNext(name)
	return r == 0
}

// hfsNext returns the next code point of s that HFS+ does not ignore and
// the rest of s; 0 at the end of s or at a malformed sequence (git also
// counts U+FFFE and U+FFFF as malformed), after which nothing is read.
func hfsNext(s string) (rune, string) {
	for s != "" {
		r, size := utf8.DecodeRuneInString(s)
		if (r == utf8.RuneError && size <= 1) || r == 0xfffe || r == 0xffff {
			return 0, ""
		}
		s = s[size:]
		if !hfsIgnored(r) {
			return r, s
		}
	}
	return 0, ""
}

func isHFSDotGit(name string) bool { return isHFSDot(name, "git") }

// ntfsShortPrefix is the 6-character prefix of the fall-back 8.3 short
// names Windows gives Git's dot files (path.c is_ntfs_dot_generic).
var ntfsShortPrefix = map[string]string{
	"gitmodules":    "gi7eba",
	"gitattributes": "gi7d29",
	"gitignore":     "gi250a",
	"mailmap":       "maba30",
}

// isDotGitFile reports whether name is "." + file (gitmodules,
// gitattributes, gitignore, mailmap) on any platform Git protects.
func isDotGitFile(name, file string) bool {
	return isHFSDot(name, file) || isNTFSDot(name, file, ntfsShortPrefix[file])
}

// isNTFSDot reports whether NTFS reads name as "." + file: that name, or a
// short name (the first six letters and ~1 to ~4, or the fall-back prefix
// with ~N), followed by spaces, periods or a data stream.
func isNTFSDot(name, file, shortPrefix string) bool {
	lower := asciiLower(name)
	if strings.HasPrefix(lower, "."+file) {
		return onlySpacesAndPeriods(name[len(file)+1:])
	}
	if len(file) >= 6 && len(lower) >= 8 && lower[:6] == file[:6] && lower[6] == '~' && lower[7] >= '1' && lower[7] <= '4' {
		return onlySpacesAndPeriods(name[8:])
	}
	// The fall-back short name: up to six letters of the prefix, then ~
	// and digits (the first not 0), eight characters in all.
	if len(name) < 8 {
		return false
	}
	sawTilde := false
	for i := 0; i < 8; i++ {
		c := lower[i]
		switch {
		case sawTilde:
			if c < '0' || c > '9' {
				return false
			}
		case c == '~':
			i++
			if i >= 8 || lower[i] < '1' || lower[i] > '9' {
				return false
			}
			sawTilde = true
		case i >= 6 || c >= 0x80 || c != shortPrefix[i]:
			return false
		}
	}
	return onlySpacesAndPeriods(name[8:])
}

// windowsNameProblem says why Git for Windows refuses to check out a file
// of this name (compat/mingw.c is_valid_win32_path), "" when it does not.
func windowsNameProblem(name string) string {
	for i := 0; i < len(name); i++ {
		switch c := name[i]; {
		case c < 0x20:
			return "has a control character, which Git for Windows refuses"
		case strings.IndexByte(`<>:"|?*\`, c) >= 0:
			return fmt.Sprintf("has the character %q, which Git for Windows refuses", c)
		}
	}
	if last := name[len(name)-1]; last == ' ' || last == '.' {
		return "ends in a space or a period, which Windows drops (Git for Windows refuses it)"
	}
	if isWindowsDevice(name) {
		return "is a Windows device name (CON, PRN, AUX, NUL, COM1-9, LPT0-9, also with an extension), which Git for Windows refuses"
	}
	return ""
}

// isWindowsDevice reports whether name is a reserved device name, alone or
// followed by spaces and then the end, an extension or a data stream.
func isWindowsDevice(name string) bool {
	lower := asciiLower(name)
	var n int
	switch {
	case strings.HasPrefix(lower, "conin$"):
		n = 6
	case strings.HasPrefix(lower, "conout$"):
		n = 7
	case strings.HasPrefix(lower, "con"), strings.HasPrefix(lower, "prn"),
		strings.HasPrefix(lower, "aux"), strings.HasPrefix(lower, "nul"):
		n = 3
	case len(lower) >= 4 && strings.HasPrefix(lower, "com") && lower[3] >= '1' && lower[3] <= '9':
		n = 4
	case len(lower) >= 4 && strings.HasPrefix(lower, "lpt") && lower[3] >= '0' && lower[3] <= '9':
		n = 4
	default:
		return false
	}
	rest := strings.TrimLeft(lower[n:], " ")
	return rest == "" || rest[0] == '.' || rest[0] == ':'
}

// asciiLower lowers ASCII letters only, so byte offsets stay those of s
// (strings.ToLower may change the length of other characters).
func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}
