package gitsource

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/storer"
)

// VerifyPolicy says which keys may sign commits.
type VerifyPolicy struct {
	// Required verifies commits on trusted refs too (untrusted refs are
	// always verified).
	Required bool
	// PGPKeys are ASCII-armored public keys (or key rings) whose
	// signatures are accepted.
	PGPKeys []string
	// SSHKeys are authorized_keys lines ("ssh-ed25519 AAAA... comment")
	// whose Git SSH signatures (namespace "git") are accepted.
	SSHKeys []string
	// OwnKeys are expsync's own results-signing keys (armored PGP or
	// authorized_keys lines), so its results commits pass verification.
	OwnKeys []string
	// From are full commit IDs the operator accepts as verification
	// baselines: a commit listed here that is signed by an allowed key
	// counts as verified, with the history beneath it, wherever a ref's
	// history holds it. It resets the baseline of a ref that took one
	// already (after an unsigned commit was pushed that cannot be removed
	// from history); the commits after it are each verified.
	From []string
}

func (p *VerifyPolicy) validate() error {
	if _, err := p.fromCommits(); err != nil {
		return err
	}
	_, err := p.keys()
	return err
}

// fromCommits parses From.
func (p *VerifyPolicy) fromCommits() ([]plumbing.Hash, error) {
	var out []plumbing.Hash
	for i, c := range p.From {
		c = strings.ToLower(strings.TrimSpace(c))
		if len(c) != 40 || !plumbing.IsHash(c) {
			return nil, fmt.Errorf("verification from[%d]: %q is not a full commit ID (40 hex digits; `git rev-parse COMMIT` prints it)", i, p.From[i])
		}
		out = append(out, plumbing.NewHash(c))
	}
	return out, nil
}

// acceptFrom adds to stop the policy's From commits that the cache holds,
// after checking that an allowed key signed each one: the baseline stays
// something an allowed key vouches for. It returns those it added.
func acceptFrom(st storer.EncodedObjectStorer, ks *keySet, from []plumbing.Hash, stop map[plumbing.Hash]bool) ([]string, error) {
	var added []string
	for _, h := range from {
		if stop[h] {
			continue
		}
		c, err := object.GetCommit(st, h)
		if errors.Is(err, plumbing.ErrObjectNotFound) {
			continue // not in this ref's fetched history
		}
		if err != nil {
			return nil, err
		}
		if _, err := ks.verifyCommit(c); err != nil {
			return nil, fmt.Errorf("verification baseline (from) %s is refused: %w", h, err)
		}
		stop[h] = true
		added = append(added, h.String())
	}
	return added, nil
}

// keySet is a parsed VerifyPolicy.
type keySet struct {
	pgp openpgp.EntityList
	ssh []sshKey
}

func (p *VerifyPolicy) keys() (*keySet, error) {
	ks := &keySet{}
	add := func(where string, i int, k string) error {
		k = strings.TrimSpace(k)
		if strings.HasPrefix(k, "-----BEGIN PGP") {
			list, err := openpgp.ReadArmoredKeyRing(strings.NewReader(k))
			if err != nil {
				return fmt.Errorf("verification %s[%d]: not a readable armored PGP key: %w", where, i, err)
			}
			ks.pgp = append(ks.pgp, list...)
			return nil
		}
		sk, err := parseSSHAuthorizedKey(k)
		if err != nil {
			return fmt.Errorf("verification %s[%d]: %w", where, i, err)
		}
		ks.ssh = append(ks.ssh, sk)
		return nil
	}
	for i, k := range p.PGPKeys {
		if !strings.HasPrefix(strings.TrimSpace(k), "-----BEGIN PGP") {
			return nil, fmt.Errorf("verification pgpKeys[%d]: expected an armored key (-----BEGIN PGP PUBLIC KEY BLOCK-----)", i)
		}
		if err := add("pgpKeys", i, k); err != nil {
			return nil, err
		}
	}
	for i, k := range p.SSHKeys {
		if err := add("sshKeys", i, k); err != nil {
			return nil, err
		}
	}
	for i, k := range p.OwnKeys {
		if err := add("ownKeys", i, k); err != nil {
			return nil, err
		}
	}
	if len(ks.pgp) == 0 && len(ks.ssh) == 0 {
		return nil, fmt.Errorf("verification is configured but lists no keys")
	}
	return ks, nil
}

// verifyCommit checks one commit's signature and names the key that made it.
func (ks *keySet) verifyCommit(c *object.Commit) (string, error) {
	sig := strings.TrimSpace(c.PGPSignature)
	if sig == "" {
		return "", fmt.Errorf("commit %s by %s <%s> is not signed", c.Hash, c.Author.Name, c.Author.Email)
	}
	payload, err := signedPayload(c)
	if err != nil {
		return "", err
	}
	if strings.HasPrefix(sig, "-----BEGIN SSH SIGNATURE-----") {
		fp, err := verifySSHSignature(ks.ssh, payload, []byte(sig), "git")
		if err != nil {
			return "", fmt.Errorf("commit %s: %w", c.Hash, err)
		}
		return fp, nil
	}
	if len(ks.pgp) == 0 {
		return "", fmt.Errorf("commit %s has a PGP signature but no PGP keys are allowed", c.Hash)
	}
	signer, err := openpgp.CheckArmoredDetachedSignature(ks.pgp, strings.NewReader(string(payload)), strings.NewReader(sig), nil)
	if err != nil {
		return "", fmt.Errorf("commit %s: PGP signature not made by an allowed key: %v", c.Hash, err)
	}
	return fmt.Sprintf("PGP %X", signer.PrimaryKey.Fingerprint), nil
}

// signedPayload is the commit without its signature: the bytes that were signed.
func signedPayload(c *object.Commit) ([]byte, error) {
	enc := &plumbing.MemoryObject{}
	if err := c.EncodeWithoutSignature(enc); err != nil {
		return nil, fmt.Errorf("encode commit %s: %w", c.Hash, err)
	}
	r, err := enc.Reader()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return io.ReadAll(r)
}

// VerifyResult reports one verification walk.
type VerifyResult struct {
	Checked []string // commits verified, newest first
	Signers []string // who signed each (same order)
	// Baseline is set when the ref had no verified history and its signed
	// head alone was accepted as the baseline (see baselineHead).
	Baseline bool
	// From lists VerifyPolicy.From commits accepted as baselines.
	From []string
}

// verifyRange verifies every commit reachable from head that is not
// accepted (already verified, or history of a trusted ref: see
// acceptedHistory) and is present in the cache. The walk stops at commits
// the cache does not hold: the server leaves out commits reachable from
// what the cache already had, so the boundary is the history that was
// already accepted (or, on a first sight of a ref fetched shallow,
// headAlone, the head alone).
//
// That holds only if everything the cache holds shallow (shallow: commits
// whose parents were not fetched) is accepted history: other operations
// fetch shallow too (a snapshot, a results branch started from a pull
// request), and a commit under one of those cuts is left out by the server
// without ever being checked. So when the walk meets the boundary, every
// cut must be accepted; otherwise verifyRange returns errUnverifiedCut and
// the caller fetches afresh.
//
// mayBaseline is set for a trusted ref with required verification that
// was never verified before: when no accepted commit is reachable from its
// head, the signed head alone is its baseline (baselineHead). Untrusted
// refs never take a baseline: every commit outside accepted history is
// checked.
func verifyRange(st storer.EncodedObjectStorer, ks *keySet, head plumbing.Hash, accepted map[plumbing.Hash]bool, max int,
	shallow []plumbing.Hash, headAlone, mayBaseline bool) (VerifyResult, error) {
	if mayBaseline {
		reaches, err := reachesAccepted(st, head, accepted, shallow, headAlone)
		if err != nil {
			return VerifyResult{}, err
		}
		if !reaches {
			return baselineHead(st, ks, head)
		}
	}
	var res VerifyResult
	seen := map[plumbing.Hash]bool{}
	queue := []plumbing.Hash{head}
	boundary := false
	for len(queue) > 0 {
		h := queue[0]
		queue = queue[1:]
		if seen[h] || accepted[h] {
			continue
		}
		seen[h] = true
		c, err := object.GetCommit(st, h)
		if errors.Is(err, plumbing.ErrObjectNotFound) {
			if h == head {
				return res, fmt.Errorf("commit %s is not in the cache", h)
			}
			boundary = true
			continue // history boundary
		}
		if err != nil {
			return res, err
		}
		if len(res.Checked) >= max {
			return res, fmt.Errorf("more than %d new commits to verify; raise the limit or verify a shorter range", max)
		}
		who, err := ks.verifyCommit(c)
		if err != nil {
			return res, err
		}
		res.Checked = append(res.Checked, h.String())
		res.Signers = append(res.Signers, who)
		queue = append(queue, c.ParentHashes...)
	}
	if !boundary {
		return res, nil
	}
	return res, checkCuts(st, shallow, accepted, head, headAlone)
}

// checkCuts fails with errUnverifiedCut when the cache holds a commit
// fetched without its parents that is not accepted history (the head of a
// ref fetched alone, headAlone, excepted): a walk that met the boundary
// cannot tell what hides under it.
func checkCuts(st storer.EncodedObjectStorer, shallow []plumbing.Hash, accepted map[plumbing.Hash]bool,
	head plumbing.Hash, headAlone bool) error {
	for _, h := range shallow {
		if accepted[h] || (headAlone && h == head) {
			continue
		}
		c, err := object.GetCommit(st, h)
		if err != nil {
			continue // not in the cache: hides nothing
		}
		for _, p := range c.ParentHashes {
			if !hasCommit(st, p) {
				return fmt.Errorf("%w: %s", errUnverifiedCut, h)
			}
		}
	}
	return nil
}

// reachesAccepted reports whether head's history in the cache reaches an
// accepted commit (verified before, or trusted history). A walk that ends
// at the boundary while the cache holds unaccepted cuts proves nothing
// either way: errUnverifiedCut, and the caller fetches afresh.
func reachesAccepted(st storer.EncodedObjectStorer, head plumbing.Hash, accepted map[plumbing.Hash]bool,
	shallow []plumbing.Hash, headAlone bool) (bool, error) {
	if len(accepted) == 0 {
		return false, nil // nothing was ever verified: no walk needed
	}
	seen := map[plumbing.Hash]bool{}
	stack := []plumbing.Hash{head}
	boundary := false
	for len(stack) > 0 {
		h := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if accepted[h] {
			return true, nil
		}
		if seen[h] {
			continue
		}
		seen[h] = true
		c, err := object.GetCommit(st, h)
		if errors.Is(err, plumbing.ErrObjectNotFound) {
			if h == head {
				return false, fmt.Errorf("commit %s is not in the cache", h)
			}
			boundary = true
			continue
		}
		if err != nil {
			return false, err
		}
		stack = append(stack, c.ParentHashes...)
	}
	if boundary {
		if err := checkCuts(st, shallow, accepted, head, headAlone); err != nil {
			return false, err
		}
	}
	return false, nil
}

// baselineHead accepts a ref's signed head as its verification baseline.
//
// Why the head alone is enough: a signature covers the commit object,
// which names its tree and its parents by hash, and each parent names its
// own; so whoever signs a commit vouches for the whole history beneath it
// (Flux's source-controller verifies the head the same way). Asking that
// existing history be signed too would mean re-signing (rewriting) every
// repository before verification could be turned on. From the baseline
// on, each new commit is checked, down to commits verified before; an
// unsigned head is refused like any other unsigned commit.
func baselineHead(st storer.EncodedObjectStorer, ks *keySet, head plumbing.Hash) (VerifyResult, error) {
	c, err := object.GetCommit(st, head)
	if errors.Is(err, plumbing.ErrObjectNotFound) {
		return VerifyResult{}, fmt.Errorf("commit %s is not in the cache", head)
	}
	if err != nil {
		return VerifyResult{}, err
	}
	who, err := ks.verifyCommit(c)
	if err != nil {
		return VerifyResult{}, err
	}
	return VerifyResult{Checked: []string{head.String()}, Signers: []string{who}, Baseline: true}, nil
}

// errUnverifiedCut: the cache holds a commit fetched without its parents
// that is not accepted history, so the walk's boundary proves nothing.
var errUnverifiedCut = errors.New("the cache holds history fetched shallow that was never verified")

// acceptedHistory is stop (verified commits, trusted refs' heads) and every
// commit the cache holds that they reach: the history of a trusted ref is
// trusted beyond its head (a pull request branched from main before main
// moved on), and a verified commit's history was checked when it was.
func acceptedHistory(st storer.EncodedObjectStorer, stop map[plumbing.Hash]bool) map[plumbing.Hash]bool {
	accepted := make(map[plumbing.Hash]bool, len(stop))
	queue := make([]plumbing.Hash, 0, len(stop))
	for h := range stop {
		queue = append(queue, h)
	}
	for len(queue) > 0 {
		h := queue[len(queue)-1]
		queue = queue[:len(queue)-1]
		if accepted[h] {
			continue
		}
		accepted[h] = true
		c, err := object.GetCommit(st, h)
		if err != nil {
			continue // not in the cache (or not a commit): the walk stops at it
		}
		queue = append(queue, c.ParentHashes...)
	}
	return accepted
}

// The verified set persists across restarts and cache drops.

const maxVerifiedKept = 20000

func (s *Source) verifiedPath() string { return filepath.Join(s.dir, "verified") }

func (s *Source) loadVerified() (map[plumbing.Hash]bool, []string, error) {
	f, err := os.Open(s.verifiedPath())
	if errors.Is(err, os.ErrNotExist) {
		return map[plumbing.Hash]bool{}, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	set := map[plumbing.Hash]bool{}
	var order []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if plumbing.IsHash(line) {
			set[plumbing.NewHash(line)] = true
			order = append(order, line)
		}
	}
	return set, order, sc.Err()
}

func (s *Source) saveVerified(order []string, added []string) error {
	order = append(order, added...)
	if len(order) > maxVerifiedKept {
		order = order[len(order)-maxVerifiedKept:]
	}
	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		return err
	}
	tmp := s.verifiedPath() + ".tmp"
	if err := os.WriteFile(tmp, []byte(strings.Join(order, "\n")+"\n"), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, s.verifiedPath())
}

// The refs verified at least once persist next to the verified commits. A
// ref listed there never takes a baseline again: a force-push, or deleting
// and re-creating the ref, cannot move its verification to a head of the
// pusher's choosing whose history was never checked.

func (s *Source) verifiedRefsPath() string { return filepath.Join(s.dir, "verified-refs") }

func (s *Source) loadVerifiedRefs() (map[string]bool, error) {
	data, err := os.ReadFile(s.verifiedRefsPath())
	if errors.Is(err, os.ErrNotExist) {
		return map[string]bool{}, nil
	}
	if err != nil {
		return nil, err
	}
	refs := map[string]bool{}
	for _, line := range strings.Split(string(data), "\n") {
		if line = strings.TrimSpace(line); line != "" {
			refs[line] = true
		}
	}
	return refs, nil
}

// recordVerifiedRef adds ref to the refs verified at least once. Only
// trusted refs may take a baseline, so only they are recorded (every pull
// request would grow the file without end).
func (s *Source) recordVerifiedRef(refs map[string]bool, ref string) error {
	if p, _ := s.repo.PolicyFor(ref); !p.Trusted || refs[ref] {
		return nil
	}
	refs[ref] = true
	names := make([]string, 0, len(refs))
	for r := range refs {
		names = append(names, r)
	}
	sort.Strings(names)
	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		return err
	}
	tmp := s.verifiedRefsPath() + ".tmp"
	if err := os.WriteFile(tmp, []byte(strings.Join(names, "\n")+"\n"), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, s.verifiedRefsPath())
}
