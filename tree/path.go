package tree

import (
	"fmt"
	"strings"
)

// Clean checks a repository path and returns it in canonical form: no
// leading or trailing slash, no "." or empty components; "" for the root.
// An absolute path, a ".." component, a NUL byte or a backslash (a Windows
// separator that would escape on checkout there) is refused with ErrEscapes.
func Clean(p string) (string, error) {
	if strings.HasPrefix(p, "/") || strings.ContainsAny(p, "\x00\\") {
		return "", fmt.Errorf("%q: %w", p, ErrEscapes)
	}
	parts := strings.Split(p, "/")
	kept := parts[:0]
	for _, part := range parts {
		switch part {
		case "", ".":
			continue
		case "..":
			return "", fmt.Errorf("%q: %w", p, ErrEscapes)
		}
		kept = append(kept, part)
	}
	return strings.Join(kept, "/"), nil
}

// Join joins cleaned repository paths.
func Join(elem ...string) string {
	var kept []string
	for _, e := range elem {
		if e != "" && e != "." {
			kept = append(kept, strings.Trim(e, "/"))
		}
	}
	return strings.Join(kept, "/")
}

// Split returns the parent folder and the last component of a cleaned path.
func Split(p string) (dir, name string) {
	i := strings.LastIndexByte(p, '/')
	if i < 0 {
		return "", p
	}
	return p[:i], p[i+1:]
}

// Contains reports whether the cleaned path p is folder or lies inside it
// (the root "" contains everything).
func Contains(folder, p string) bool {
	return folder == "" || p == folder || strings.HasPrefix(p, folder+"/")
}
