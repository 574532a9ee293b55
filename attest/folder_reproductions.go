package attest

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"

	"github.com/expsync/expsync/tree"
)

// ReproductionFile is one statement found in a run folder's reproductions/
// and what its verification found.
type ReproductionFile struct {
	// Name is the file's path relative to the run folder.
	Name string `json:"name"`
	OK   bool   `json:"ok"`
	// Reason says why a statement did not verify.
	Reason string `json:"reason,omitempty"`
	// Verdict, BuilderID and FinishedOn are the verified statement's.
	Verdict    string `json:"verdict,omitempty"`
	BuilderID  string `json:"builderID,omitempty"`
	FinishedOn string `json:"finishedOn,omitempty"`
	// Statement is the verified content (nil unless OK).
	Statement *VerifiedReproduction `json:"-"`
}

// IsReproductionFile tells whether name, relative to a run folder, is where
// a reproduction statement may live: reproductions/<name>.intoto.jsonl, one
// level deep, its name made of letters, digits, '.', '_' and '-' (not
// starting with '.'), at most MaxReproductionNameLength bytes.
func IsReproductionFile(name string) bool {
	dir, base := path.Split(name)
	return dir == ReproductionsDir+"/" && ValidReproductionName(base)
}

// ValidReproductionName checks a statement's file name (without folder).
func ValidReproductionName(base string) bool {
	if len(base) > MaxReproductionNameLength || len(base) <= len(ReproductionSuffix) || !strings.HasSuffix(base, ReproductionSuffix) || base[0] == '.' {
		return false
	}
	for _, c := range base {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// inReproductions tells whether name lies below the reproductions folder.
func inReproductions(name string) bool { return strings.HasPrefix(name, ReproductionsDir+"/") }

// checkReproductions verifies each statement of the folder and adds a
// check per statement: signed by a trusted key (for a builder the key may
// vouch for), naming this run, and its subjects the folder's own envelope
// and run.json — so a statement copied from another run, or kept after
// run.json was edited, fails.
func checkReproductions(r *Report, src folderSource, names []string, opts FolderOptions) {
	for _, f := range verifyReproductions(src, names, r.RunID, opts) {
		r.Reproductions = append(r.Reproductions, f)
		name := "reproduction " + strings.TrimPrefix(f.Name, ReproductionsDir+"/")
		if !f.OK {
			r.fail(name, f.Reason)
			continue
		}
		s := f.Statement
		r.ok(name, fmt.Sprintf("%s, reproduced by %s at %s", s.Verdict, s.Reproduced.BuilderID, s.Reproduced.FinishedOn))
	}
}

func verifyReproductions(src folderSource, names []string, runID string, opts FolderOptions) []ReproductionFile {
	if len(names) == 0 {
		return nil
	}
	envelopeSum, envErr := src.hash(EnvelopeFile)
	runSum, runErr := src.hash(RunFile)
	out := make([]ReproductionFile, 0, len(names))
	for _, name := range names {
		f := ReproductionFile{Name: name}
		v, err := verifyReproductionFile(src, name, opts)
		switch {
		case err != nil:
			f.Reason = err.Error()
		case v.RunID != runID:
			f.Reason = fmt.Sprintf("reproduces run %s, but the folder is run %s (copied from another run?)", v.RunID, runID)
		case envErr != nil || v.EnvelopeSHA256 != envelopeSum:
			f.Reason = fmt.Sprintf("names the envelope with sha256 %s; the folder's %s has %s", v.EnvelopeSHA256, EnvelopeFile, orErr(envelopeSum, envErr))
		case runErr != nil || v.RunJSONSHA256 != runSum:
			f.Reason = fmt.Sprintf("names the run.json with sha256 %s; the folder's %s has %s (edited after the reproduction?)", v.RunJSONSHA256, RunFile, orErr(runSum, runErr))
		default:
			f.OK, f.Statement = true, v
			f.Verdict, f.BuilderID, f.FinishedOn = v.Verdict, v.Reproduced.BuilderID, v.Reproduced.FinishedOn
		}
		out = append(out, f)
	}
	return out
}

func verifyReproductionFile(src folderSource, name string, opts FolderOptions) (*VerifiedReproduction, error) {
	data, err := src.read(name, MaxEnvelopeBytes)
	if err != nil {
		return nil, err
	}
	return VerifyReproduction(data, opts.Keys, opts.VerifyOptions)
}

func isNotExist(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, tree.ErrNotExist)
}

func orErr(sum string, err error) string {
	if err != nil {
		return err.Error()
	}
	return sum
}

// VerifyTreeReproductions verifies the reproduction statements of the run
// folder dir in a snapshot (what a results README lists): each against the
// trusted keys and the folder's own envelope and run.json. The run folder
// itself is not verified here (see VerifyTreeFolder).
func VerifyTreeReproductions(snap tree.Reader, dir string, opts FolderOptions) ([]ReproductionFile, error) {
	entries, err := snap.ReadDir(path.Join(dir, ReproductionsDir))
	if err != nil {
		if isNotExist(err) {
			return nil, nil
		}
		return nil, err
	}
	src := treeSource{snap: snap, dir: dir}
	var names []string
	var out []ReproductionFile
	for _, e := range entries {
		name := path.Join(ReproductionsDir, e.Name)
		if e.Mode != tree.ModeFile || !ValidReproductionName(e.Name) {
			out = append(out, ReproductionFile{Name: name, Reason: "not a reproduction statement (reproductions/ holds <name>" + ReproductionSuffix + " files only)"})
			continue
		}
		names = append(names, name)
	}
	runID := opts.RunID
	if runID == "" {
		runID = path.Base(dir)
	}
	return append(verifyReproductions(src, names, runID, opts), out...), nil
}

// ReproductionStatementFor fills the subjects of a statement about the run
// folder whose envelope and run.json are given.
func ReproductionStatementFor(envelope, runJSON []byte, r Reproduction) ReproductionStatement {
	e := sha256.Sum256(envelope)
	j := sha256.Sum256(runJSON)
	return ReproductionStatement{Reproduction: r, EnvelopeSHA256: hex.EncodeToString(e[:]), RunJSONSHA256: hex.EncodeToString(j[:])}
}
