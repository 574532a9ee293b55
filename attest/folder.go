package attest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"syscall"

	"github.com/expsync/expsync/contract"
	"github.com/expsync/expsync/tree"
)

// FolderOptions is the policy for verifying a results folder.
type FolderOptions struct {
	Keys Verifiers
	VerifyOptions
	// Store finds a subject that is not in the folder (an output too large
	// to commit) by its sha256: the path of a local copy. Nil: none.
	Store func(sha256 string) (path string, ok bool)
	// RequireAll fails subjects that are neither in the folder nor in the
	// store; without it they are reported as not checked.
	RequireAll bool
	// RunID is the run ID the folder must attest; "" means the folder's name.
	RunID string
	// Experiment, when set, is the experiment the folder must attest: the
	// name of the experiment folder it lies in (results/<experiment>/<run>/),
	// so a genuine run folder copied under another experiment is refused.
	// It is read from the identity in run.json, which the run ID covers.
	Experiment string
	// ContextTreeWithout returns the Git tree ID of tree without the paths
	// (relative to it), computed from the tree's objects (see
	// tree.TreeIDWithout and tree.GitObjects). With it, an identity whose
	// contextTree leaves spec files out is recomputed from the attested
	// real tree; nil (no repository at hand): that check is not made.
	ContextTreeWithout func(tree string, paths []string) (string, error)
	// SkipReproductions leaves the folder's reproductions/ out: the
	// planner decides that a run is done by its own attestation, and
	// statements about it (checked where they are shown) do not change
	// that. Otherwise every file there must be a reproduction statement
	// that verifies (see checkReproductions).
	SkipReproductions bool
}

// VerifyFolder checks that a results folder (results/<experiment>/<run-id>/)
// is what a trusted key attested: the envelope in provenance.intoto.jsonl
// verifies, its invocation ID is the folder's run ID, every subject matches
// its file in the folder (or the store), no file in the folder is left
// unattested, and the identity recorded in run.json hashes to the run ID.
//
// The planner calls it to decide that a run in a branch is done; the error
// is nil exactly when the report has no failed check.
func VerifyFolder(dir string, opts FolderOptions) (*Report, error) {
	return verifyFolderFrom(dirSource{dir: dir}, dir, filepath.Base(filepath.Clean(dir)), opts)
}

// VerifyTreeFolder is VerifyFolder for a results folder inside a snapshot (a
// Git commit's tree, for the planner deciding that a run in a branch is
// done): dir is the folder's slash path in the snapshot.
func VerifyTreeFolder(snap tree.Reader, dir string, opts FolderOptions) (*Report, error) {
	return verifyFolderFrom(treeSource{snap: snap, dir: dir}, dir, path.Base(path.Clean(dir)), opts)
}

func verifyFolderFrom(src folderSource, where, name string, opts FolderOptions) (*Report, error) {
	r := &Report{Path: where, RunID: opts.RunID}
	if r.RunID == "" {
		r.RunID = name
	}
	data, err := src.read(EnvelopeFile, MaxEnvelopeBytes)
	switch {
	case errors.Is(err, fs.ErrNotExist) || errors.Is(err, tree.ErrNotExist):
		r.fail("envelope", "no "+EnvelopeFile+": the folder is not signed")
		return r, r.Err()
	case err != nil:
		r.fail("envelope", err.Error())
		return r, r.Err()
	}
	v := verifyEnvelopeInto(r, data, opts.Keys, opts.VerifyOptions)
	if v == nil {
		return r, r.Err()
	}
	checkInvocationID(r, v)
	checkSubjects(r, src, v, opts)
	statements := checkUnattested(r, src, v, opts)
	checkRecordedIdentity(r, src, v, opts)
	checkReproductions(r, src, statements, opts)
	return r, r.Err()
}

// VerifyEnvelopeFile checks an envelope on its own (PATH given as a file):
// signature, types and builder; subjects are checked against the files
// beside it when the file is a results folder's provenance.intoto.jsonl.
func VerifyEnvelopeFile(file string, opts FolderOptions) (*Report, error) {
	if filepath.Base(file) == EnvelopeFile {
		return VerifyFolder(filepath.Dir(file), opts)
	}
	if dir := filepath.Dir(file); filepath.Base(dir) == ReproductionsDir && ValidReproductionName(filepath.Base(file)) {
		// A reproduction statement is checked against the run folder it
		// names: the folder is verified with it.
		return VerifyFolder(filepath.Dir(dir), opts)
	}
	r := &Report{Path: file}
	if v := verifyFolderEnvelope(r, file, opts.Keys, opts.VerifyOptions); v != nil {
		r.RunID = v.InvocationID
		r.notChecked("subjects", "envelope verified on its own; give its results folder to check the files")
	}
	return r, r.Err()
}

func verifyFolderEnvelope(r *Report, file string, keys Verifiers, opts VerifyOptions) *Verified {
	data, err := readLimited(file, MaxEnvelopeBytes)
	if err != nil {
		r.fail("envelope", err.Error())
		return nil
	}
	return verifyEnvelopeInto(r, data, keys, opts)
}

func verifyEnvelopeInto(r *Report, data []byte, keys Verifiers, opts VerifyOptions) *Verified {
	v, err := VerifyEnvelope(data, keys, opts)
	if err != nil {
		r.fail(checkName(err), err.Error())
		return nil
	}
	names := make([]string, len(v.Keys))
	for i, k := range v.Keys {
		names[i] = k.Name
	}
	r.ok("signature", fmt.Sprintf("signed by %d trusted key(s): %v", len(v.Keys), names))
	r.ok("statement", "in-toto Statement v1, SLSA Provenance v1")
	r.ok("builder", v.BuilderID)
	r.Verified = v
	return v
}

// checkName maps a VerifyEnvelope error to the check that failed.
func checkName(err error) string {
	switch {
	case errors.Is(err, ErrMalformedEnvelope):
		return "envelope"
	case errors.Is(err, ErrNoSignatures), errors.Is(err, ErrSignature):
		return "signature"
	case errors.Is(err, ErrPayloadType):
		return "payloadType"
	case errors.Is(err, ErrPredicateType):
		return "predicateType"
	case errors.Is(err, ErrBuilderID):
		return "builder"
	case errors.Is(err, ErrUsage):
		return "policy"
	default:
		return "statement"
	}
}

func checkInvocationID(r *Report, v *Verified) {
	if v.InvocationID != r.RunID {
		r.fail("invocationID", fmt.Sprintf("envelope attests run %s, but the folder is run %s (an envelope copied from another run?)", v.InvocationID, r.RunID))
		return
	}
	r.ok("invocationID", v.InvocationID)
}

func checkSubjects(r *Report, src folderSource, v *Verified, opts FolderOptions) {
	inFolder := committedFiles(src, v)
	for _, s := range v.Subjects {
		name := "subject " + s.Name
		got, err := src.hash(s.Name)
		where := "folder"
		if errors.Is(err, fs.ErrNotExist) && opts.Store != nil && !inFolder[s.Name] {
			if p, ok := opts.Store(s.SHA256); ok {
				got, err = hashRegularFile(p)
				where = "store"
			}
		}
		switch {
		case errors.Is(err, fs.ErrNotExist) && inFolder[s.Name]:
			// Signed as part of the folder: a deletion is an edit.
			r.fail(name, "absent from the folder, which the signed "+RunFile+" says holds it (deleted after signing?)")
		case errors.Is(err, fs.ErrNotExist):
			if opts.RequireAll {
				r.fail(name, "absent from the folder and the store (--require-all)")
			} else {
				r.notChecked(name, "absent from the folder and the store")
			}
		case err != nil:
			r.fail(name, err.Error())
		case got != s.SHA256:
			r.fail(name, fmt.Sprintf("sha256 %s in the %s, attested %s (edited after signing)", got, where, s.SHA256))
		default:
			r.ok(name, "sha256 "+s.SHA256+" ("+where+")")
		}
	}
}

// committedFiles names the subjects the folder itself must hold: run.json
// and metrics.json always, and the log and outputs that the signed run.json
// records as committed (logCommitted; outputs[].committed). The others
// (too large, or holding a secret) live in the store only. run.json is
// read only when it hashes to its attested digest: a forged one decides
// nothing.
func committedFiles(src folderSource, v *Verified) map[string]bool {
	in := map[string]bool{RunFile: true, MetricsFile: true}
	var want string
	for _, s := range v.Subjects {
		if s.Name == RunFile {
			want = s.SHA256
		}
	}
	data, err := src.read(RunFile, contract.ReadRecordBytes)
	sum := sha256.Sum256(data)
	if err != nil || want == "" || hex.EncodeToString(sum[:]) != want {
		return in
	}
	var rec struct {
		LogCommitted bool `json:"logCommitted"`
		Outputs      []struct {
			Path      string `json:"path"`
			Committed bool   `json:"committed"`
		} `json:"outputs"`
	}
	if json.Unmarshal(data, &rec) != nil {
		return in
	}
	in[LogFile] = rec.LogCommitted
	for _, o := range rec.Outputs {
		if o.Committed {
			in[path.Join(OutputsDir, o.Path)] = true
		}
	}
	return in
}

// checkUnattested fails files in the folder that no subject covers: anyone
// can push files next to a signed envelope, and a reader must not mistake
// them for attested results. Reproduction statements carry signatures of
// their own: it returns them, to be verified (checkReproductions).
func checkUnattested(r *Report, src folderSource, v *Verified, opts FolderOptions) (statements []string) {
	attested := map[string]bool{EnvelopeFile: true}
	for _, s := range v.Subjects {
		attested[s.Name] = true
	}
	names, err := src.files()
	if err != nil {
		r.fail("unattested files", err.Error())
		return nil
	}
	var extra []string
	for _, n := range names {
		switch {
		case attested[n]:
		case inReproductions(n) && opts.SkipReproductions:
		case IsReproductionFile(n):
			statements = append(statements, n)
		default:
			extra = append(extra, n)
		}
	}
	if len(extra) > 0 {
		sort.Strings(extra)
		r.fail("unattested files", fmt.Sprintf("not covered by the attestation: %v", extra))
		return statements
	}
	r.ok("unattested files", "none")
	return statements
}

// checkRecordedIdentity recomputes the run ID from the identity document in
// run.json (already checked against its subject digest) and compares it and
// its context tree with what the statement attests.
func checkRecordedIdentity(r *Report, src folderSource, v *Verified, opts FolderOptions) {
	data, err := src.read(RunFile, contract.ReadRecordBytes)
	if err != nil {
		r.notChecked("runID", err.Error())
		failExperimentUnknown(r, opts.Experiment, err)
		return
	}
	id, err := ParseRecordedIdentity(data)
	if err != nil {
		r.notChecked("runID", err.Error())
		failExperimentUnknown(r, opts.Experiment, err)
		return
	}
	checkExperiment(r, id, opts.Experiment)
	excluded, err := parseContextExcluded(data)
	if err != nil {
		r.fail("contextTree", err.Error())
		return
	}
	checkIdentity(r, id, v, excluded, opts.ContextTreeWithout)
}

// checkExperiment compares the attested experiment (the identity's, which
// hashes to the run ID) with the experiment folder the run lies in.
func checkExperiment(r *Report, id *contract.Identity, want string) {
	switch {
	case want == "":
	case id.Experiment != want:
		r.fail("experiment", fmt.Sprintf("folder lies under experiment %q but attests experiment %q (a run folder copied from another experiment?)", want, id.Experiment))
	default:
		r.ok("experiment", want)
	}
}

// failExperimentUnknown fails the experiment check when it was asked for
// but run.json, which names the attested experiment, cannot be read.
func failExperimentUnknown(r *Report, want string, err error) {
	if want != "" {
		r.fail("experiment", fmt.Sprintf("cannot tell which experiment the run belongs to (want %q): %v", want, err))
	}
}

// parseContextExcluded reads run.json's contextExcluded: the spec files the
// identity's contextTree leaves out of the attested context tree.
func parseContextExcluded(data []byte) ([]string, error) {
	var rec struct {
		ContextExcluded []string `json:"contextExcluded"`
	}
	if err := json.Unmarshal(data, &rec); err != nil {
		return nil, fmt.Errorf("%s: %v", RunFile, err)
	}
	for _, p := range rec.ContextExcluded {
		if c, err := tree.Clean(p); err != nil || c != p || c == "" {
			return nil, fmt.Errorf("%s: contextExcluded %q is not a clean path inside the context", RunFile, p)
		}
	}
	return rec.ContextExcluded, nil
}

// RecordedIdentity reads the identity document from a run.json file.
func RecordedIdentity(file string) (*contract.Identity, error) {
	data, err := readLimited(file, contract.ReadRecordBytes)
	if err != nil {
		return nil, err
	}
	return ParseRecordedIdentity(data)
}

// ParseRecordedIdentity reads the identity document of a run.json.
func ParseRecordedIdentity(data []byte) (*contract.Identity, error) {
	var rec struct {
		Identity *contract.Identity `json:"identity"`
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(&rec); err != nil {
		return nil, fmt.Errorf("%s: %v", RunFile, err)
	}
	if rec.Identity == nil {
		return nil, fmt.Errorf("%s has no identity document", RunFile)
	}
	return rec.Identity, nil
}

// CheckIdentity adds the checks that id hashes to the attested invocation
// ID and names the attested context tree (for an identity whose context
// holds no spec file: see checkIdentity for the other case).
func CheckIdentity(r *Report, id *contract.Identity, v *Verified) {
	checkIdentity(r, id, v, nil, nil)
}

// checkIdentity is CheckIdentity for a context whose spec files (excluded,
// from run.json) the identity leaves out: its contextTree must then be the
// attested real tree without them, which without recomputes from Git
// objects; with no objects at hand that link is reported as not checked.
func checkIdentity(r *Report, id *contract.Identity, v *Verified, excluded []string, without func(string, []string) (string, error)) {
	recomputed, err := id.ID()
	switch {
	case err != nil:
		r.fail("runID", "recompute from run.json identity: "+err.Error())
	case recomputed != v.InvocationID:
		r.fail("runID", fmt.Sprintf("run.json identity hashes to %s, attested %s", recomputed, v.InvocationID))
	default:
		r.ok("runID", "recomputed from run.json identity")
	}
	trees := v.DependenciesWith("gitTree")
	if len(trees) != 1 {
		r.fail("contextTree", fmt.Sprintf("statement has %d gitTree dependencies, want 1", len(trees)))
		return
	}
	attested := trees[0].Digest.Get("gitTree")
	switch {
	case len(excluded) == 0 && attested != id.ContextTree:
		r.fail("contextTree", fmt.Sprintf("run.json identity names tree %s, attested %s", id.ContextTree, attested))
	case len(excluded) == 0:
		r.ok("contextTree", id.ContextTree)
	case without == nil:
		r.notChecked("contextTree", fmt.Sprintf("identity names %s, the attested tree %s without %d spec file(s) %v; give the repository to recompute it",
			id.ContextTree, attested, len(excluded), excluded))
	default:
		got, err := without(attested, excluded)
		switch {
		case err != nil:
			r.fail("contextTree", fmt.Sprintf("attested tree %s without %v: %v", attested, excluded, err))
		case got != id.ContextTree:
			r.fail("contextTree", fmt.Sprintf("attested tree %s without %v is %s, run.json identity names %s", attested, excluded, got, id.ContextTree))
		default:
			r.ok("contextTree", fmt.Sprintf("%s = attested tree %s without %d spec file(s)", id.ContextTree, attested, len(excluded)))
		}
	}
}

// hashRegularFile hashes a regular file; symlinks are refused, never followed.
func hashRegularFile(file string) (string, error) {
	f, err := openRegular(func(flag int) (*os.File, error) { return os.OpenFile(file, flag|syscall.O_NOFOLLOW, 0) }, filepath.Base(file))
	if err != nil {
		return "", err
	}
	defer f.Close()
	return hashOpened(f, file)
}

func hashOpened(f *os.File, file string) (string, error) {
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("hash %s: %w", file, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// openRegular opens a file for reading with open (given the flags), and
// refuses a symlink (O_NOFOLLOW) and anything but a regular file. It never
// waits: O_NONBLOCK makes opening a FIFO return at once, and a FIFO is
// then refused.
func openRegular(open func(flag int) (*os.File, error), name string) (*os.File, error) {
	f, err := open(os.O_RDONLY | syscall.O_NOFOLLOW | syscall.O_NONBLOCK)
	if errors.Is(err, syscall.ELOOP) {
		return nil, fmt.Errorf("%s is a symlink; symlinks are not followed", name)
	}
	if err != nil {
		return nil, err
	}
	info, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !info.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("%s is not a regular file (%s); symlinks are not followed", path.Base(filepath.ToSlash(name)), info.Mode().Type())
	}
	// Reads block again (O_NONBLOCK is for the open only).
	if err := syscall.SetNonblock(int(f.Fd()), false); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// readLimited reads a file named by the user (an envelope or a run.json
// given on the command line): it may be a symlink, but must end at a
// regular file, never a FIFO or a device that would block or never end.
func readLimited(file string, limit int64) ([]byte, error) {
	f, err := openRegular(func(flag int) (*os.File, error) { return os.OpenFile(file, flag&^syscall.O_NOFOLLOW, 0) }, filepath.Base(file))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readAllLimited(f, file, limit)
}

func readAllLimited(f io.Reader, file string, limit int64) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", file, err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s exceeds %d bytes", file, limit)
	}
	return data, nil
}

// HashFolder lists every regular file under dir (but the envelope) as a
// subject named by its slash path relative to dir. Symlinks are an error:
// a results folder holds files only.
func HashFolder(dir string) ([]Subject, error) {
	var out []Subject
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if rel == EnvelopeFile {
			return nil
		}
		sum, err := hashRegularFile(p)
		if err != nil {
			return err
		}
		out = append(out, Subject{Name: path.Clean(rel), SHA256: sum})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("hash results folder %s: %w", dir, err)
	}
	return out, nil
}

// StoreDir returns a FolderOptions.Store over a local content-addressed
// store laid out as <root>/sha256/<aa>/<hex> (expsync's store), falling back
// to <root>/sha256/<hex>.
func StoreDir(root string) func(string) (string, bool) {
	return func(sum string) (string, bool) {
		if !isHex(sum, 64) {
			return "", false
		}
		for _, p := range []string{
			filepath.Join(root, "sha256", sum[:2], sum),
			filepath.Join(root, "sha256", sum),
		} {
			if _, err := os.Lstat(p); err == nil {
				return p, true
			}
		}
		return "", false
	}
}
