package gitsource

import (
	"fmt"
	"io"
	"net"
	"os"
	"strings"

	"github.com/go-git/go-git/v5/plumbing/transport"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	gitssh "github.com/go-git/go-git/v5/plumbing/transport/ssh"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// Auth holds the credentials of one repository. Its fields never appear in
// an error or a log line: every message is scrubbed of them.
type Auth struct {
	// HTTPS basic authentication (a password or a personal access token).
	Username, Password string
	// BearerToken is sent as "Authorization: Bearer <token>" over HTTPS.
	BearerToken string

	// SSHUser defaults to the URL's user, then "git".
	SSHUser string
	// SSHPrivateKey is a PEM/OpenSSH private key; SSHPassphrase decrypts it.
	SSHPrivateKey []byte
	SSHPassphrase string
	// KnownHosts is the content of a known_hosts file. SSH refuses to
	// connect to a host whose key is not listed, unless
	// InsecureIgnoreHostKey is set explicitly.
	KnownHosts            []byte
	InsecureIgnoreHostKey bool

	// CABundle holds PEM certificates trusted for HTTPS in addition to the
	// system's (a self-hosted server with its own certificate authority).
	CABundle []byte
}

func (a *Auth) caBundle() []byte {
	if a == nil {
		return nil
	}
	return a.CABundle
}

func (a *Auth) secrets() []string {
	if a == nil {
		return nil
	}
	var s []string
	for _, v := range []string{a.Password, a.BearerToken, a.SSHPassphrase} {
		if v != "" {
			s = append(s, v)
		}
	}
	if len(a.SSHPrivateKey) > 0 {
		s = append(s, string(a.SSHPrivateKey))
	}
	return s
}

// transportAuth converts Auth into go-git's method for the URL's protocol.
func (a *Auth) transportAuth(rawURL string) (transport.AuthMethod, error) {
	if a == nil {
		return nil, nil
	}
	if isSSHURL(rawURL) {
		if len(a.SSHPrivateKey) == 0 {
			return nil, fmt.Errorf("%w: an ssh URL needs an SSH private key", ErrAuth)
		}
		user := a.SSHUser
		if user == "" {
			user = sshUserOf(rawURL)
		}
		keys, err := gitssh.NewPublicKeys(user, a.SSHPrivateKey, a.SSHPassphrase)
		if err != nil {
			// The parser's message never includes key material.
			return nil, fmt.Errorf("%w: cannot read the SSH private key: %v", ErrAuth, err)
		}
		cb, algos, err := a.hostKeyCallback()
		if err != nil {
			return nil, err
		}
		// Pin the algorithms to the key types known_hosts lists, so a server
		// offering several host keys is checked against one we know.
		keys.HostKeyCallback = cb
		keys.HostKeyAlgorithms = algos
		return keys, nil
	}
	switch {
	case a.BearerToken != "":
		return &githttp.TokenAuth{Token: a.BearerToken}, nil
	case a.Username != "" || a.Password != "":
		return &githttp.BasicAuth{Username: a.Username, Password: a.Password}, nil
	}
	return nil, nil
}

func (a *Auth) hostKeyCallback() (ssh.HostKeyCallback, []string, error) {
	if a.InsecureIgnoreHostKey {
		return ssh.InsecureIgnoreHostKey(), nil, nil //nolint:gosec // explicit opt-out
	}
	if len(a.KnownHosts) == 0 {
		return nil, nil, fmt.Errorf("%w: no known_hosts given (strict host key checking is the default)", ErrHostKey)
	}
	// Parse once for the key types (to pin the algorithms), then let
	// x/crypto's knownhosts do the matching: hashed host names, patterns,
	// ports, @revoked markers. It reads the file when it is created.
	algos := map[string]bool{}
	rest := a.KnownHosts
	for len(rest) > 0 {
		marker, _, key, _, r, err := ssh.ParseKnownHosts(rest)
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, nil, fmt.Errorf("%w: known_hosts: %v", ErrHostKey, err)
		}
		if marker != "revoked" {
			algos[key.Type()] = true
		}
		rest = r
	}
	if len(algos) == 0 {
		return nil, nil, fmt.Errorf("%w: known_hosts has no entries", ErrHostKey)
	}
	f, err := os.CreateTemp("", "known_hosts")
	if err != nil {
		return nil, nil, err
	}
	defer os.Remove(f.Name())
	_, werr := f.Write(a.KnownHosts)
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		return nil, nil, werr
	}
	check, err := knownhosts.New(f.Name())
	if err != nil {
		return nil, nil, fmt.Errorf("%w: known_hosts: %v", ErrHostKey, err)
	}
	cb := func(hostname string, remote net.Addr, key ssh.PublicKey) error {
		if err := check(hostname, remote, key); err != nil {
			return fmt.Errorf("%w: %s (%s): %v", ErrHostKey, knownhosts.Normalize(hostname), key.Type(), err)
		}
		return nil
	}
	var list []string
	for _, t := range []string{ssh.KeyAlgoED25519, ssh.KeyAlgoECDSA256, ssh.KeyAlgoECDSA384, ssh.KeyAlgoECDSA521} {
		if algos[t] {
			list = append(list, t)
		}
	}
	if algos[ssh.KeyAlgoRSA] {
		list = append(list, ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA)
	}
	return cb, list, nil
}

func isSSHURL(raw string) bool {
	l := strings.ToLower(raw)
	if strings.HasPrefix(l, "ssh://") || strings.HasPrefix(l, "git+ssh://") || strings.HasPrefix(l, "ssh+git://") {
		return true
	}
	return !strings.Contains(raw, "://") && scpLike.MatchString(raw)
}

func sshUserOf(raw string) string {
	s := raw
	if i := strings.Index(s, "://"); i >= 0 {
		s = s[i+3:]
	}
	if at := strings.Index(s, "@"); at > 0 && !strings.ContainsAny(s[:at], "/:") {
		return s[:at]
	}
	return "git"
}
