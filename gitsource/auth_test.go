package gitsource

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fluxcd/gitkit"
	"github.com/fluxcd/pkg/gittestserver"
	"golang.org/x/crypto/ssh"
)

// assertNoSecret fails if err's text (or anything it unwraps to) shows a secret.
func assertNoSecret(t *testing.T, err error, secrets ...string) {
	t.Helper()
	for e := err; e != nil; {
		for _, s := range secrets {
			if strings.Contains(e.Error(), s) {
				t.Errorf("error shows a secret %q: %v", s, e)
			}
		}
		switch u := e.(type) {
		case interface{ Unwrap() []error }:
			for _, inner := range u.Unwrap() {
				assertNoSecret(t, inner, secrets...)
			}
			return
		case interface{ Unwrap() error }:
			e = u.Unwrap()
		default:
			return
		}
	}
}

func TestErrorsNameTheRepositoryAndHideSecrets(t *testing.T) {
	srv := newServer(t)
	srv.newRepo("exps")
	srv.newRepo("empty")
	p := newPeer(t, srv.peerURL("exps"))
	p.commit("first", map[string]string{"a.txt": "a"})
	p.push("main")
	ctx := testCtx(t)

	// A listener that accepts and never answers, for the timeout case.
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	go func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	closed, _ := net.Listen("tcp", "127.0.0.1:0")
	closedAddr := closed.Addr().String()
	closed.Close()

	wrongPassword := "wrong-Pa55-" + strings.Repeat("z", 8)
	cases := []struct {
		name string
		url  string
		auth *Auth
		op   func(*Source) error
		want error
	}{
		{"wrong password", srv.url("exps"), &Auth{Username: testUser, Password: wrongPassword},
			func(s *Source) error { _, err := s.Poll(ctx); return err }, ErrAuth},
		{"wrong password on fetch", srv.url("exps"), &Auth{Username: testUser, Password: wrongPassword},
			func(s *Source) error { _, err := s.Snapshot(ctx, "main", ""); return err }, ErrAuth},
		{"wrong token", srv.url("exps"), &Auth{BearerToken: "tok-" + wrongPassword},
			func(s *Source) error { _, err := s.Poll(ctx); return err }, ErrAuth},
		{"missing branch", srv.url("exps"), basicAuth(),
			func(s *Source) error { _, err := s.Snapshot(ctx, "nope", ""); return err }, ErrRefNotFound},
		{"empty repository", srv.url("empty"), basicAuth(),
			func(s *Source) error { _, err := s.Poll(ctx); return err }, ErrEmptyRepository},
		{"empty repository snapshot", srv.url("empty"), basicAuth(),
			func(s *Source) error { _, err := s.Snapshot(ctx, "main", ""); return err }, ErrEmptyRepository},
		{"missing repository", srv.url("absent"), basicAuth(),
			func(s *Source) error { _, err := s.Poll(ctx); return err }, ErrRepositoryNotFound},
		{"unreachable", "http://" + closedAddr + "/x.git", basicAuth(),
			func(s *Source) error { _, err := s.Poll(ctx); return err }, ErrUnreachable},
		{"timeout", "http://" + silent.Addr().String() + "/x.git", basicAuth(),
			func(s *Source) error {
				ctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
				defer cancel()
				_, err := s.Poll(ctx)
				return err
			}, ErrTimeout},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			src, err := New(Repository{URL: c.url, Auth: c.auth, Refs: []RefPolicy{{Pattern: "main", Trusted: true}},
				URLPolicy: URLPolicy{AllowHTTP: true}}, t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			err = c.op(src)
			if !errors.Is(err, c.want) {
				t.Fatalf("err = %v, want %v", err, c.want)
			}
			if !strings.Contains(err.Error(), RedactURL(c.url)) {
				t.Errorf("error does not name the repository %s: %v", c.url, err)
			}
			assertNoSecret(t, err, testPassword, wrongPassword)
			t.Logf("%v", err)
		})
	}
}

func TestBearerTokenAuth(t *testing.T) {
	const token = "ghp_bearer-token-123456"
	srv, err := gittestserver.NewTempGitServer()
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(srv.Root())
	srv.AddHTTPMiddlewares(func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Authorization") != "Bearer "+token {
				w.Header().Set("WWW-Authenticate", `Bearer realm="git"`)
				http.Error(w, "unauthorized", http.StatusUnauthorized)
				return
			}
			next.ServeHTTP(w, r)
		})
	})
	if err := srv.StartHTTP(); err != nil {
		t.Fatal(err)
	}
	defer srv.StopHTTP()
	runGit(t, srv.Root(), "init", "-q", "--bare", "-b", "main", "exps.git")
	work := t.TempDir()
	runGit(t, work, "init", "-q", "-b", "main")
	os.WriteFile(filepath.Join(work, "a.txt"), []byte("a"), 0o644)
	runGit(t, work, "add", "-A")
	runGit(t, work, "commit", "-q", "-m", "one")
	runGit(t, work, "push", "-q", filepath.Join(srv.Root(), "exps.git"), "main")
	head := runGit(t, work, "rev-parse", "HEAD")

	src, err := New(Repository{URL: srv.HTTPAddress() + "/exps.git", Auth: &Auth{BearerToken: token},
		Refs: []RefPolicy{{Pattern: "main", Trusted: true}}, URLPolicy: URLPolicy{AllowHTTP: true}}, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	changes, err := src.Poll(testCtx(t))
	if err != nil || len(changes) != 1 || changes[0].New != head {
		t.Fatalf("poll with a bearer token = %+v, %v", changes, err)
	}
	sn, err := src.Snapshot(testCtx(t), "main", head)
	if err != nil {
		t.Fatal(err)
	}
	sn.Close()
}

// TestRedirectDoesNotCarryCredentials: a server that redirects to another
// host must not receive the password there.
func TestRedirectDoesNotCarryCredentials(t *testing.T) {
	var mu sync.Mutex
	var leaked []string
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		if a := r.Header.Get("Authorization"); a != "" {
			leaked = append(leaked, a)
		}
		mu.Unlock()
		http.Error(w, "nothing here", http.StatusUnauthorized)
	}))
	defer other.Close()
	// Same loopback, another origin: "localhost" vs "127.0.0.1".
	otherURL := strings.Replace(other.URL, "127.0.0.1", "localhost", 1)
	redirector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, otherURL+r.URL.RequestURI(), http.StatusFound)
	}))
	defer redirector.Close()

	src, err := New(Repository{URL: redirector.URL + "/exps.git", Auth: basicAuth(),
		Refs: []RefPolicy{{Pattern: "main", Trusted: true}}, URLPolicy: URLPolicy{AllowHTTP: true}}, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	_, err = src.Poll(testCtx(t))
	if err == nil {
		t.Fatal("poll through a redirect to a server without the repository succeeded")
	}
	assertNoSecret(t, err, testPassword)
	mu.Lock()
	defer mu.Unlock()
	if len(leaked) > 0 {
		t.Fatalf("credentials were sent to the redirect target: %v", leaked)
	}
}

// sshServer serves the same repositories over SSH, accepting only clientKey.
func sshServer(t *testing.T, srv *server, clientKey ssh.PublicKey) (url string, knownHosts []byte) {
	t.Helper()
	gs := srv.srv
	keyDir := t.TempDir()
	gs.KeyDir(keyDir)
	want := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(clientKey)))
	gs.PublicKeyLookupFunc(func(content string) (*gitkit.PublicKey, error) {
		if strings.TrimSpace(content) != want {
			return nil, errors.New("unknown key")
		}
		return &gitkit.PublicKey{Id: "alice"}, nil
	})
	if err := gs.ListenSSH(); err != nil {
		t.Fatal(err)
	}
	go gs.StartSSH()
	t.Cleanup(func() { gs.StopSSH() })
	hostPub, err := os.ReadFile(filepath.Join(keyDir, "gitkit.rsa.pub"))
	if err != nil {
		t.Fatal(err)
	}
	addr := strings.TrimPrefix(gs.SSHAddress(), "ssh://git@")
	host, port, _ := net.SplitHostPort(addr)
	return gs.SSHAddress(), []byte("[" + host + "]:" + port + " " + string(hostPub))
}

func newSSHKey(t testing.TB) (ssh.PublicKey, []byte) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return sshPub, pem.EncodeToMemory(block)
}

func TestSSHWithStrictKnownHosts(t *testing.T) {
	srv := newServer(t)
	srv.newRepo("exps")
	p := newPeer(t, srv.peerURL("exps"))
	head := p.commit("first", map[string]string{"a.txt": "over ssh"})
	p.push("main")
	clientPub, clientKey := newSSHKey(t)
	base, knownHosts := sshServer(t, srv, clientPub)
	url := base + "/exps.git"
	ctx := testCtx(t)
	mk := func(a *Auth) *Source {
		src, err := New(Repository{URL: url, Auth: a, Refs: []RefPolicy{{Pattern: "main", Trusted: true}}}, t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		return src
	}

	src := mk(&Auth{SSHPrivateKey: clientKey, KnownHosts: knownHosts})
	changes, err := src.Poll(ctx)
	if err != nil || len(changes) != 1 || changes[0].New != head {
		t.Fatalf("poll over SSH = %+v, %v", changes, err)
	}
	sn, err := src.Snapshot(ctx, "main", head)
	if err != nil {
		t.Fatal(err)
	}
	if data, err := sn.ReadFile("a.txt", 0); err != nil || string(data) != "over ssh" {
		t.Fatalf("ReadFile over SSH = %q, %v", data, err)
	}
	sn.Close()
	res, err := src.CommitBack(ctx, CommitRequest{Branch: "main", Files: map[string][]byte{"results/r.txt": []byte("done")},
		Message: "results", Author: Signature{Name: "expsync", Email: "bot@expsync.dev"}}, nil)
	if err != nil || !res.Pushed {
		t.Fatalf("commit back over SSH = %+v, %v", res, err)
	}
	if got := reclone(t, srv.peerURL("exps"), "main"); got.head(t) != res.Commit || got.files(t)["results/r.txt"] != "done" {
		t.Fatalf("server after SSH push: head %s, files %v", got.head(t), got.files(t))
	}

	// A hashed known_hosts (ssh-keygen -H), as OpenSSH writes by default.
	khFile := filepath.Join(t.TempDir(), "known_hosts")
	os.WriteFile(khFile, knownHosts, 0o600)
	if out, err := exec.Command("ssh-keygen", "-H", "-f", khFile).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen -H: %v: %s", err, out)
	}
	hashed, _ := os.ReadFile(khFile)
	if !strings.HasPrefix(string(hashed), "|1|") {
		t.Fatalf("known_hosts not hashed: %s", hashed)
	}
	if _, err := mk(&Auth{SSHPrivateKey: clientKey, KnownHosts: hashed}).Poll(ctx); err != nil {
		t.Errorf("hashed known_hosts: %v", err)
	}

	// No known_hosts: refused before connecting. Wrong host key: refused.
	if _, err := mk(&Auth{SSHPrivateKey: clientKey}).Poll(ctx); !errors.Is(err, ErrHostKey) {
		t.Errorf("no known_hosts: err = %v, want ErrHostKey", err)
	}
	otherHost, _ := newSSHKey(t)
	hostPort := strings.Fields(string(knownHosts))[0]
	wrong := []byte(hostPort + " " + string(ssh.MarshalAuthorizedKey(otherHost)))
	if _, err := mk(&Auth{SSHPrivateKey: clientKey, KnownHosts: wrong}).Poll(ctx); !errors.Is(err, ErrHostKey) {
		t.Errorf("wrong host key: err = %v, want ErrHostKey", err)
	}
	// A key the server does not accept.
	_, strangerKey := newSSHKey(t)
	err = func() error {
		_, err := mk(&Auth{SSHPrivateKey: strangerKey, KnownHosts: knownHosts}).Poll(ctx)
		return err
	}()
	if !errors.Is(err, ErrAuth) {
		t.Errorf("unknown client key: err = %v, want ErrAuth", err)
	}
	assertNoSecret(t, err, string(strangerKey), "PRIVATE KEY")
}

// A silent server cannot hang a poll even when the caller gives no deadline.
func TestDefaultTimeoutBoundsAnOperation(t *testing.T) {
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	go func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	for _, url := range []string{"http://" + silent.Addr().String() + "/x.git", "git://" + silent.Addr().String() + "/x.git"} {
		src, err := New(Repository{URL: url, Refs: []RefPolicy{{Pattern: "main", Trusted: true}},
			URLPolicy: URLPolicy{AllowHTTP: true}, Limits: Limits{Timeout: 300 * time.Millisecond}}, t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		t0 := time.Now()
		_, err = src.Poll(context.Background())
		if !errors.Is(err, ErrTimeout) || time.Since(t0) > 10*time.Second {
			t.Errorf("%s: err = %v after %v, want ErrTimeout soon after 300ms", url, err, time.Since(t0))
		}
	}
}
