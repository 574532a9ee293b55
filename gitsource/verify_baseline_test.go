package gitsource

import (
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// baselineLab is a repository whose main has unsigned history, and an SSH
// key allowed to sign commits.
type baselineLab struct {
	t       *testing.T
	srv     *server
	p       *peer
	keyFile string
	pub     string
	history []string // main's unsigned commits, oldest first
}

func newBaselineLab(t *testing.T) *baselineLab {
	t.Helper()
	srv := newServer(t)
	srv.newRepo("exps")
	p := newPeer(t, srv.peerURL("exps"))
	l := &baselineLab{t: t, srv: srv, p: p}
	for _, msg := range []string{"u1", "u2", "u3"} {
		l.history = append(l.history, p.commit(msg, map[string]string{"a.txt": msg}))
	}
	p.push("main")
	_, l.keyFile, _ = sshSigningKey(t)
	pub, err := os.ReadFile(l.keyFile + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	l.pub = string(pub)
	return l
}

func (l *baselineLab) signed(msg string) string {
	l.t.Helper()
	return l.p.commitWith(nil, msg, map[string]string{msg + ".txt": msg},
		"commit.gpgsign=true", "gpg.format=ssh", "user.signingkey="+l.keyFile)
}

// source watches main as trusted with verification required (what
// `expsync run --verify-commits` and serve's verify.required configure),
// plus any extra ref policies.
func (l *baselineLab) source(cache string, extra ...RefPolicy) *Source {
	l.t.Helper()
	src, err := New(Repository{URL: l.srv.url("exps"), Auth: basicAuth(), URLPolicy: URLPolicy{AllowHTTP: true},
		Refs:   append([]RefPolicy{{Pattern: "main", Trusted: true}}, extra...),
		Verify: &VerifyPolicy{Required: true, SSHKeys: []string{l.pub}}}, cache)
	if err != nil {
		l.t.Fatal(err)
	}
	return src
}

// poll polls src and returns the change of ref (failing when there is none).
func (l *baselineLab) poll(src *Source, ref string) RefChange {
	l.t.Helper()
	changes, err := src.Poll(testCtx(l.t))
	if err != nil {
		l.t.Fatal(err)
	}
	for _, c := range changes {
		if c.Ref == ref {
			return c
		}
	}
	l.t.Fatalf("poll reported no change of %s: %+v", ref, changes)
	return RefChange{}
}

// expect checks a change's verdict and that its reason names want.
func expect(t *testing.T, what string, c RefChange, runnable bool, want string) {
	t.Helper()
	if c.Runnable != runnable || !strings.Contains(c.Reason, want) {
		t.Errorf("%s: runnable=%v reason=%q; want runnable=%v and a reason containing %q", what, c.Runnable, c.Reason, runnable, want)
	}
}

// TestVerificationBaselineOnExistingHistory: verification turned on for a
// repository whose history is unsigned accepts the signed head as the
// baseline — on a fresh cache and on a cache that already holds the
// unsigned history (expsync ran the branch before verification was on,
// which used to refuse the head for its unsigned parents) — and from then
// on every new commit is checked: an unsigned commit pushed after the
// baseline is refused, also under a signed head, also after a restart.
func TestVerificationBaselineOnExistingHistory(t *testing.T) {
	for _, warm := range []bool{false, true} {
		name := map[bool]string{false: "fresh cache", true: "cache holding the unsigned history"}[warm]
		t.Run(name, func(t *testing.T) {
			l := newBaselineLab(t)
			cache := t.TempDir()
			if warm {
				// expsync ran main before verification was turned on.
				plain, err := New(Repository{URL: l.srv.url("exps"), Auth: basicAuth(), URLPolicy: URLPolicy{AllowHTTP: true},
					Refs: []RefPolicy{{Pattern: "main", Trusted: true}}}, cache)
				if err != nil {
					t.Fatal(err)
				}
				for _, c := range l.history {
					sn, err := plain.Snapshot(testCtx(t), "main", c)
					if err == nil {
						sn.Close()
					}
				}
				sn, err := plain.Snapshot(testCtx(t), "main", "")
				if err != nil {
					t.Fatal(err)
				}
				sn.Close()
			}
			head := l.signed("signed-head")
			l.p.push("main")
			src := l.source(cache)
			expect(t, "signed head over unsigned history", l.poll(src, "refs/heads/main"), true, "verification baseline")

			unsigned := l.p.commit("unsigned-after-baseline", map[string]string{"x.txt": "x"})
			l.p.push("main")
			expect(t, "unsigned commit after the baseline", l.poll(src, "refs/heads/main"), false, unsigned+" by Peer <peer@example.org> is not signed")

			l.signed("signed-over-unsigned")
			l.p.push("main")
			expect(t, "signed head over an unsigned commit after the baseline", l.poll(src, "refs/heads/main"), false, unsigned)

			// A restart (new Source, same cache folder) does not take a
			// new baseline: the ref was verified before.
			expect(t, "after a restart", l.poll(l.source(cache), "refs/heads/main"), false, unsigned)

			// Back on the verified history, a signed commit is checked
			// down to the baseline.
			runGit(t, l.p.dir, "reset", "-q", "--hard", head)
			l.signed("signed-after-baseline")
			l.p.push("--force", "main")
			expect(t, "signed commit on the baseline", l.poll(src, "refs/heads/main"), true, "1 new commit(s) verified")
		})
	}
}

// TestVerificationBaselineRefusesAnUnsignedHead: on first sight the head
// itself must be signed by an allowed key.
func TestVerificationBaselineRefusesAnUnsignedHead(t *testing.T) {
	l := newBaselineLab(t)
	src := l.source(t.TempDir())
	expect(t, "unsigned head on first sight", l.poll(src, "refs/heads/main"), false, l.history[2]+" by Peer <peer@example.org> is not signed")
	// Once signed, the head is the baseline.
	l.signed("signed")
	l.p.push("main")
	expect(t, "signed head after a refused one", l.poll(src, "refs/heads/main"), true, "verification baseline")
}

// TestVerificationBaselineIsTakenOncePerRef: once a ref was verified, a
// force-push to a history without a verified commit, or deleting and
// re-creating the ref, does not take a new baseline: every commit of the
// new history is checked.
func TestVerificationBaselineIsTakenOncePerRef(t *testing.T) {
	l := newBaselineLab(t)
	l.signed("baseline")
	l.p.push("main")
	src := l.source(t.TempDir())
	expect(t, "baseline", l.poll(src, "refs/heads/main"), true, "verification baseline")

	// A new history: an unsigned root under a signed head.
	runGit(t, l.p.dir, "checkout", "-q", "--orphan", "rewrite")
	root := l.p.commit("unsigned-root", map[string]string{"b.txt": "b"})
	l.signed("signed-on-rewrite")
	l.p.push("--force", "rewrite:main")
	expect(t, "force-push to a history without a verified commit", l.poll(src, "refs/heads/main"), false, root)

	runGit(t, l.srv.barePath("exps"), "update-ref", "-d", "refs/heads/main")
	if c := l.poll(src, "refs/heads/main"); !c.Deleted() {
		t.Fatalf("main not deleted: %+v", c)
	}
	l.p.push("rewrite:main")
	expect(t, "deleted and re-created on a history without a verified commit", l.poll(src, "refs/heads/main"), false, root)
}

// TestVerificationBaselineNotForUntrustedRefs: with main verified from a
// baseline, a pull request (untrusted) whose signed head sits on an
// unsigned commit is refused on first sight — a pull request never takes a
// baseline — while one whose own commits are all signed runs, its walk
// stopping at main's verified history; also on a fresh cache where the
// pull request is polled in the same first Poll as main.
func TestVerificationBaselineNotForUntrustedRefs(t *testing.T) {
	l := newBaselineLab(t)
	mainHead := l.signed("baseline")
	l.p.push("main")
	hidden := l.p.commit("unsigned-in-pr", map[string]string{"evil.txt": "x"})
	bad := l.signed("signed-pr-head")
	runGit(t, l.p.dir, "reset", "-q", "--hard", mainHead)
	l.signed("pr-good-1")
	good := l.signed("pr-good-2")
	l.p.push("--force", bad+":refs/heads/scratch1")
	l.p.push("--force", good+":refs/heads/scratch2")
	bare := l.srv.barePath("exps")
	pr := RefPolicy{Pattern: "refs/pull/*/head", ResultsBranch: "results"}
	for _, c := range []struct {
		head     string
		runnable bool
		reason   string
	}{
		{bad, false, hidden + " by Peer <peer@example.org> is not signed"},
		{good, true, "2 new commit(s) verified"},
	} {
		runGit(t, bare, "update-ref", "refs/pull/1/head", c.head)
		src := l.source(t.TempDir(), pr) // fresh cache: main and the pull request seen at once
		changes, err := src.Poll(testCtx(t))
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]RefChange{}
		for _, ch := range changes {
			got[ch.Ref] = ch
		}
		expect(t, "main", got["refs/heads/main"], true, "verification baseline")
		expect(t, "pull request at "+c.head[:8], got["refs/pull/1/head"], c.runnable, c.reason)
		// Only the trusted ref is recorded as having taken a baseline.
		refs, err := src.loadVerifiedRefs()
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(map[string]bool{"refs/heads/main": true}, refs); diff != "" {
			t.Errorf("refs recorded as verified: -want +got\n%s", diff)
		}
	}
}

// TestVerificationFromResetsTheBaseline: a ref stuck behind an unsigned
// commit pushed after its baseline (one that cannot be removed from
// history) runs again from a signed commit the operator names in
// VerifyPolicy.From; the commits after it are still verified, and a From
// commit that is not signed by an allowed key is refused.
func TestVerificationFromResetsTheBaseline(t *testing.T) {
	l := newBaselineLab(t)
	l.signed("baseline")
	l.p.push("main")
	cache := t.TempDir()
	expect(t, "baseline", l.poll(l.source(cache), "refs/heads/main"), true, "verification baseline")
	unsigned := l.p.commit("unsigned-after-baseline", map[string]string{"x.txt": "x"})
	reset := l.signed("signed-over-unsigned")
	l.p.push("main")
	expect(t, "unsigned commit after the baseline", l.poll(l.source(cache), "refs/heads/main"), false, unsigned)

	from := func(commits ...string) *Source {
		src := l.source(cache)
		src.repo.Verify.From = commits
		return src
	}
	expect(t, "from an unsigned commit", l.poll(from(unsigned), "refs/heads/main"), false,
		"verification baseline (from) "+unsigned+" is refused: commit "+unsigned+" by Peer <peer@example.org> is not signed")
	expect(t, "from the signed commit over it", l.poll(from(reset), "refs/heads/main"), true, "configured verification baseline")

	after := l.p.commit("unsigned-after-reset", map[string]string{"y.txt": "y"})
	l.signed("signed-after-reset")
	l.p.push("main")
	expect(t, "unsigned commit after the new baseline", l.poll(from(reset), "refs/heads/main"), false, after)
	runGit(t, l.p.dir, "reset", "-q", "--hard", reset)
	l.signed("good-after-reset")
	l.p.push("--force", "main")
	// Remembered as verified: the option can go.
	expect(t, "signed commit after the new baseline", l.poll(l.source(cache), "refs/heads/main"), true, "1 new commit(s) verified")

	_, err := New(Repository{URL: l.srv.url("exps"), Auth: basicAuth(), URLPolicy: URLPolicy{AllowHTTP: true},
		Refs:   []RefPolicy{{Pattern: "main", Trusted: true}},
		Verify: &VerifyPolicy{Required: true, SSHKeys: []string{l.pub}, From: []string{reset[:12]}}}, t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "from[0]") || !strings.Contains(err.Error(), "not a full commit ID") {
		t.Errorf("abbreviated From commit: %v", err)
	}
}

// TestVerificationTrustedRefsFirst: an untrusted ref that sorts before the
// trusted one (refs/heads/a-pr before refs/heads/main) is verified after
// main took its baseline in the same first Poll, so its unsigned commit
// under a signed head is found — not its head alone checked against an
// empty cache.
func TestVerificationTrustedRefsFirst(t *testing.T) {
	l := newBaselineLab(t)
	l.signed("baseline")
	l.p.push("main")
	hidden := l.p.commit("unsigned-in-pr", map[string]string{"evil.txt": "x"})
	l.signed("signed-pr-head")
	l.p.push("HEAD:refs/heads/a-pr")
	src := l.source(t.TempDir(), RefPolicy{Pattern: "a-pr", ResultsBranch: "results"})
	changes, err := src.Poll(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	var refs []string
	got := map[string]RefChange{}
	for _, c := range changes {
		refs = append(refs, c.Ref)
		got[c.Ref] = c
	}
	if diff := cmp.Diff([]string{"refs/heads/a-pr", "refs/heads/main"}, refs); diff != "" {
		t.Errorf("changes are reported sorted by ref: -want +got\n%s", diff)
	}
	expect(t, "main", got["refs/heads/main"], true, "verification baseline")
	expect(t, "untrusted a-pr", got["refs/heads/a-pr"], false, hidden+" by Peer <peer@example.org> is not signed")
}
