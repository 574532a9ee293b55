package gitsource

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"golang.org/x/crypto/ssh"
)

// pgpKey is a real OpenPGP key made in the test, imported into a private
// gpg home so the git CLI (through gpg) signs with it too.
type pgpKey struct {
	entity      *openpgp.Entity
	public      string // armored public key
	private     string // armored private key
	fingerprint string
}

func newPGPKey(t *testing.T, name string) *pgpKey {
	t.Helper()
	e, err := openpgp.NewEntity(name, "", strings.ToLower(name)+"@example.org", nil)
	if err != nil {
		t.Fatal(err)
	}
	var pub, priv bytes.Buffer
	w, _ := armor.Encode(&pub, openpgp.PublicKeyType, nil)
	if err := e.Serialize(w); err != nil {
		t.Fatal(err)
	}
	w.Close()
	w, _ = armor.Encode(&priv, openpgp.PrivateKeyType, nil)
	if err := e.SerializePrivate(w, nil); err != nil {
		t.Fatal(err)
	}
	w.Close()
	k := &pgpKey{entity: e, public: pub.String(), private: priv.String(),
		fingerprint: strings.ToUpper(bytesToHex(e.PrimaryKey.Fingerprint))}
	return k
}

func bytesToHex(b []byte) string {
	const digits = "0123456789abcdef"
	out := make([]byte, 0, 2*len(b))
	for _, c := range b {
		out = append(out, digits[c>>4], digits[c&15])
	}
	return string(out)
}

// gpgHome imports the key into a fresh gpg home (short path: gpg-agent's
// socket path is limited in length).
func (k *pgpKey) gpgHome(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("gpg"); err != nil {
		t.Skip("gpg is not installed; the git CLI cannot sign with PGP")
	}
	home, err := os.MkdirTemp("/tmp", "gpg")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(home, 0o700)
	t.Cleanup(func() {
		exec.Command("gpgconf", "--homedir", home, "--kill", "gpg-agent").Run()
		os.RemoveAll(home)
	})
	cmd := exec.Command("gpg", "--homedir", home, "--batch", "--import")
	cmd.Stdin = strings.NewReader(k.private)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("gpg import: %v: %s", err, out)
	}
	return home
}

// sshSigningKey writes an ed25519 key pair for `git -c gpg.format=ssh`.
func sshSigningKey(t *testing.T) (pubLine string, keyFile string, priv []byte) {
	t.Helper()
	pub, priv := newSSHKey(t)
	dir := t.TempDir()
	keyFile = filepath.Join(dir, "id")
	os.WriteFile(keyFile, priv, 0o600)
	pubLine = strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pub)))
	os.WriteFile(keyFile+".pub", []byte(pubLine+"\n"), 0o644)
	return pubLine, keyFile, priv
}

func (p *peer) commitWith(env []string, msg string, files map[string]string, config ...string) string {
	p.t.Helper()
	for name, content := range files {
		full := filepath.Join(p.dir, filepath.FromSlash(name))
		os.MkdirAll(filepath.Dir(full), 0o755)
		os.WriteFile(full, []byte(content), 0o644)
	}
	runGit(p.t, p.dir, "add", "-A")
	args := []string{}
	for _, c := range config {
		args = append(args, "-c", c)
	}
	args = append(args, "commit", "-q", "--allow-empty", "-m", msg)
	git := func(args ...string) ([]byte, error) {
		cmd := exec.Command("git", args...)
		cmd.Dir = p.dir
		cmd.Env = append(gitEnv(os.TempDir()), env...)
		return cmd.CombinedOutput()
	}
	if out, err := git(args...); err != nil {
		p.t.Fatalf("git commit: %v: %s", err, out)
	}
	// gpg on a heavily loaded machine has been seen to write a signature
	// that gpg itself then calls BAD (the RSA value is wrong; the signed
	// bytes are right). That breaks this fixture's promise, a commit
	// validly signed by the key, not expsync: check with gpg and sign again.
	if env != nil && !slices.Contains(config, "gpg.format=ssh") {
		amend := append(args[:len(args)-5:len(args)-5], "commit", "-q", "--allow-empty", "--amend", "--no-edit")
		for attempt := 1; ; attempt++ {
			out, err := git("verify-commit", "HEAD")
			if err == nil {
				break
			}
			if attempt == 3 {
				p.t.Fatalf("gpg made a bad signature %d times: %s", attempt, out)
			}
			p.t.Logf("gpg made a bad signature, signing again: %s", out)
			if out, err := git(amend...); err != nil {
				p.t.Fatalf("git commit --amend: %v: %s", err, out)
			}
		}
	}
	return runGit(p.t, p.dir, "rev-parse", "HEAD")
}

func TestVerificationOfUntrustedRefs(t *testing.T) {
	srv := newServer(t)
	srv.newRepo("exps")
	p := newPeer(t, srv.peerURL("exps"))
	base := p.commit("base", map[string]string{"a.txt": "a"})
	p.push("main")

	allowed := newPGPKey(t, "Allowed")
	stranger := newPGPKey(t, "Stranger")
	allowedHome, strangerHome := allowed.gpgHome(t), stranger.gpgHome(t)
	sshPub, sshKeyFile, _ := sshSigningKey(t)
	_, strangerSSHFile, _ := sshSigningKey(t)
	pgpSign := func(home, fpr string) ([]string, []string) {
		return []string{"GNUPGHOME=" + home}, []string{"commit.gpgsign=true", "user.signingkey=" + fpr, "gpg.program=gpg"}
	}

	src, err := New(Repository{URL: srv.url("exps"), Auth: basicAuth(), URLPolicy: URLPolicy{AllowHTTP: true},
		Refs: []RefPolicy{
			{Pattern: "main", Trusted: true},
			{Pattern: "refs/pull/*/head", Trusted: false, ResultsBranch: "results"},
		},
		Verify: &VerifyPolicy{PGPKeys: []string{allowed.public}, SSHKeys: []string{sshPub}},
	}, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t)
	if _, err := src.Poll(ctx); err != nil { // main: trusted, observed
		t.Fatal(err)
	}
	bare := srv.barePath("exps")
	pr := func(commit string) RefChange {
		t.Helper()
		p.push("--force", commit+":refs/heads/scratch") // send the objects
		runGit(t, bare, "update-ref", "refs/pull/1/head", commit)
		changes, err := src.Poll(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(changes) != 1 || changes[0].Ref != "refs/pull/1/head" || changes[0].New != commit {
			t.Fatalf("poll = %+v", changes)
		}
		return changes[0]
	}

	// 1. Unsigned: refused, with the reason.
	unsigned := p.commit("unsigned", map[string]string{"b.txt": "b"})
	if c := pr(unsigned); c.Runnable || !strings.Contains(c.Reason, "is not signed") || !strings.Contains(c.Reason, unsigned) {
		t.Errorf("unsigned commit: %+v", c)
	}
	// 2. Signed by the allowed key on top of the unsigned one: still
	// refused, because every new commit is checked, not only the head.
	env, cfg := pgpSign(allowedHome, allowed.fingerprint)
	signedOnUnsigned := p.commitWith(env, "signed", map[string]string{"c.txt": "c"}, cfg...)
	if c := pr(signedOnUnsigned); c.Runnable || !strings.Contains(c.Reason, unsigned) {
		t.Errorf("signed head over an unsigned commit: %+v", c)
	}
	// 3. A clean branch from main: two commits, PGP then SSH signed.
	runGit(t, p.dir, "reset", "-q", "--hard", base)
	first := p.commitWith(env, "pgp signed", map[string]string{"d.txt": "d"}, cfg...)
	second := p.commitWith(nil, "ssh signed", map[string]string{"e.txt": "e"},
		"commit.gpgsign=true", "gpg.format=ssh", "user.signingkey="+sshKeyFile)
	c := pr(second)
	if !c.Runnable || !strings.Contains(c.Reason, "2 new commit(s) verified") || !strings.Contains(c.Reason, "SSH SHA256:") {
		t.Errorf("PGP + SSH signed commits: %+v", c)
	}
	_ = first
	// 4. One more commit by an unknown PGP key, then by an unknown SSH key.
	env2, cfg2 := pgpSign(strangerHome, stranger.fingerprint)
	byStranger := p.commitWith(env2, "stranger", map[string]string{"f.txt": "f"}, cfg2...)
	if c := pr(byStranger); c.Runnable || !strings.Contains(c.Reason, "not made by an allowed key") {
		t.Errorf("unknown PGP key: %+v", c)
	}
	runGit(t, p.dir, "reset", "-q", "--hard", second)
	bySSHStranger := p.commitWith(nil, "ssh stranger", map[string]string{"g.txt": "g"},
		"commit.gpgsign=true", "gpg.format=ssh", "user.signingkey="+strangerSSHFile)
	if c := pr(bySSHStranger); c.Runnable || !strings.Contains(c.Reason, "not allowed") {
		t.Errorf("unknown SSH key: %+v", c)
	}
	// 5. Back to the verified commit: remembered, no new verification needed.
	if c := pr(second); !c.Runnable || !strings.Contains(c.Reason, "verified before") {
		t.Errorf("previously verified commit: %+v", c)
	}
}

func TestOwnResultsCommitsPassVerification(t *testing.T) {
	srv := newServer(t)
	srv.newRepo("exps")
	own := newPGPKey(t, "Expsync")
	sshPub, _, sshPriv := sshSigningKey(t)
	pgpSigner, err := NewPGPSigner(own.private, "")
	if err != nil {
		t.Fatal(err)
	}
	sshSigner, err := NewSSHSigner(sshPriv, "")
	if err != nil {
		t.Fatal(err)
	}
	src, err := New(Repository{URL: srv.url("exps"), Auth: basicAuth(), URLPolicy: URLPolicy{AllowHTTP: true},
		Refs:   []RefPolicy{{Pattern: "main", Trusted: true}},
		Verify: &VerifyPolicy{Required: true, OwnKeys: []string{own.public, sshPub}}}, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t)
	// expsync creates main (a root commit) and adds to it, signing with
	// PGP then SSH; with verification required, each is runnable.
	var heads []string
	for i, signer := range []Signer{pgpSigner, sshSigner} {
		res, err := src.CommitBack(ctx, CommitRequest{Branch: "main", Create: true, Files: map[string][]byte{"r.txt": {byte('0' + i)}},
			Message: "results", Author: bot, Signer: signer}, nil)
		if err != nil {
			t.Fatal(err)
		}
		heads = append(heads, res.Commit)
		ch, err := src.Poll(ctx)
		if err != nil || len(ch) != 1 || ch[0].New != res.Commit || !ch[0].Runnable {
			t.Fatalf("own signed results commit %d: %+v, %v", i, ch, err)
		}
	}
	// A peer's unsigned commit on top is refused.
	p := newPeer(t, srv.peerURL("exps"))
	runGit(t, p.dir, "pull", "-q", "origin", "main")
	unsigned := p.commit("unsigned", map[string]string{"x.txt": "x"})
	p.push("main")
	ch, err := src.Poll(ctx)
	if err != nil || len(ch) != 1 || ch[0].Runnable || !strings.Contains(ch[0].Reason, unsigned+" by Peer <peer@example.org> is not signed") {
		t.Fatalf("unsigned commit with verification required: %+v, %v", ch, err)
	}
	runGit(t, p.dir, "reset", "-q", "--hard", "HEAD~1")
	p.push("--force", "main")
	// The git CLI accepts our SSH signature too (independent verifier).
	got := reclone(t, srv.peerURL("exps"), "main")
	allowed := filepath.Join(t.TempDir(), "allowed_signers")
	os.WriteFile(allowed, []byte("bot@expsync.dev "+sshPub+"\n"), 0o644)
	if out, err := gitErr(got.dir, nil, "-c", "gpg.ssh.allowedSignersFile="+allowed, "verify-commit", heads[1]); err != nil {
		t.Errorf("git verify-commit of our SSH-signed commit: %v %s", err, out)
	}
	// And gpg accepts our PGP signature.
	home := own.gpgHome(t)
	cmd := exec.Command("git", "verify-commit", heads[0])
	cmd.Dir = got.dir
	cmd.Env = append(gitEnv(os.TempDir()), "GNUPGHOME="+home)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("git verify-commit of our PGP-signed commit: %v %s", err, out)
	}
}

// A pull request on top of an unsigned trusted main: only the pull
// request's own commits are verified, not main's history.
func TestVerificationStopsAtTrustedHistory(t *testing.T) {
	srv := newServer(t)
	srv.newRepo("exps")
	p := newPeer(t, srv.peerURL("exps"))
	p.commit("m1", map[string]string{"a.txt": "1"})
	main := p.commit("m2", map[string]string{"a.txt": "2"})
	p.push("main")
	_, keyFile, _ := sshSigningKey(t)
	pub, _ := os.ReadFile(keyFile + ".pub")
	src, err := New(Repository{URL: srv.url("exps"), Auth: basicAuth(), URLPolicy: URLPolicy{AllowHTTP: true},
		Refs:   []RefPolicy{{Pattern: "main", Trusted: true}, {Pattern: "refs/pull/*/head", ResultsBranch: "results"}},
		Verify: &VerifyPolicy{SSHKeys: []string{string(pub)}}}, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t)
	if _, err := src.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	sn, err := src.Snapshot(ctx, "main", main) // the reconciler snapshots main
	if err != nil {
		t.Fatal(err)
	}
	sn.Close()
	signed := func(msg string) string {
		return p.commitWith(nil, msg, map[string]string{msg + ".txt": msg},
			"commit.gpgsign=true", "gpg.format=ssh", "user.signingkey="+keyFile)
	}
	signed("pr1")
	head := signed("pr2")
	p.push("--force", head+":refs/heads/scratch")
	runGit(t, srv.barePath("exps"), "update-ref", "refs/pull/9/head", head)
	ch, err := src.Poll(ctx)
	if err != nil || len(ch) != 1 || !ch[0].Runnable || !strings.Contains(ch[0].Reason, "2 new commit(s) verified") {
		t.Fatalf("pull request over unsigned trusted main: %+v, %v", ch, err)
	}
}

// More new commits than MaxVerifyCommits are refused, not silently cut.
func TestVerificationRefusesTooManyNewCommits(t *testing.T) {
	srv := newServer(t)
	srv.newRepo("exps")
	p := newPeer(t, srv.peerURL("exps"))
	p.commit("base", map[string]string{"a.txt": "a"})
	p.push("main")
	_, keyFile, _ := sshSigningKey(t)
	pub, _ := os.ReadFile(keyFile + ".pub")
	src, err := New(Repository{URL: srv.url("exps"), Auth: basicAuth(), URLPolicy: URLPolicy{AllowHTTP: true},
		Refs:   []RefPolicy{{Pattern: "main", Trusted: true}, {Pattern: "refs/pull/*/head", ResultsBranch: "results"}},
		Verify: &VerifyPolicy{SSHKeys: []string{string(pub)}}, Limits: Limits{MaxVerifyCommits: 3}}, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t)
	if _, err := src.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	sn, err := src.Snapshot(ctx, "main", "")
	if err != nil {
		t.Fatal(err)
	}
	sn.Close()
	var head string
	for i := 0; i < 5; i++ {
		head = p.commitWith(nil, fmt.Sprintf("c%d", i), map[string]string{fmt.Sprintf("%d.txt", i): "x"},
			"commit.gpgsign=true", "gpg.format=ssh", "user.signingkey="+keyFile)
	}
	p.push("--force", head+":refs/heads/scratch")
	runGit(t, srv.barePath("exps"), "update-ref", "refs/pull/1/head", head)
	ch, err := src.Poll(ctx)
	if err != nil || len(ch) != 1 || ch[0].Runnable || !strings.Contains(ch[0].Reason, "more than 3 new commits") {
		t.Fatalf("5 new commits with a limit of 3: %+v, %v", ch, err)
	}
}

// On first sight, with an empty cache, every commit of an untrusted ref
// that the trusted refs do not have is checked, not only its head.
func TestFirstVerificationChecksAllNewCommits(t *testing.T) {
	srv := newServer(t)
	srv.newRepo("exps")
	p := newPeer(t, srv.peerURL("exps"))
	p.commit("m1", map[string]string{"a.txt": "1"})
	main := p.commit("m2", map[string]string{"a.txt": "2"})
	p.push("main")
	_, keyFile, _ := sshSigningKey(t)
	pub, _ := os.ReadFile(keyFile + ".pub")
	signed := func(msg string) string {
		return p.commitWith(nil, msg, map[string]string{msg + ".txt": msg},
			"commit.gpgsign=true", "gpg.format=ssh", "user.signingkey="+keyFile)
	}
	hidden := p.commit("unsigned", map[string]string{"evil.txt": "x"})
	bad := signed("signed-on-top")
	runGit(t, p.dir, "reset", "-q", "--hard", main)
	signed("good1")
	good := signed("good2")
	p.push("--force", bad+":refs/heads/scratch1")
	p.push("--force", good+":refs/heads/scratch2")
	bare := srv.barePath("exps")
	for _, c := range []struct {
		head     string
		runnable bool
		reason   string
	}{
		{bad, false, hidden + " by Peer <peer@example.org> is not signed"},
		{good, true, "2 new commit(s) verified"},
	} {
		runGit(t, bare, "update-ref", "refs/pull/1/head", c.head)
		src, err := New(Repository{URL: srv.url("exps"), Auth: basicAuth(), URLPolicy: URLPolicy{AllowHTTP: true},
			Refs:   []RefPolicy{{Pattern: "main", Trusted: true}, {Pattern: "refs/pull/*/head", ResultsBranch: "results"}},
			Verify: &VerifyPolicy{SSHKeys: []string{string(pub)}}}, t.TempDir()) // fresh cache
		if err != nil {
			t.Fatal(err)
		}
		ch, err := src.Poll(testCtx(t))
		if err != nil {
			t.Fatal(err)
		}
		var pr *RefChange
		for i := range ch {
			if ch[i].Ref == "refs/pull/1/head" {
				pr = &ch[i]
			}
		}
		if pr == nil || pr.Runnable != c.runnable || !strings.Contains(pr.Reason, c.reason) {
			t.Errorf("first sight of %s: %+v; want runnable=%v and %q", c.head, pr, c.runnable, c.reason)
		}
	}
}
