package reproduce

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"path"

	"github.com/expsync/expsync/attest"
	"github.com/expsync/expsync/contract"
	"github.com/expsync/expsync/internal/results"
	"github.com/expsync/expsync/tree"
)

// Material is what a verified run folder attests: everything a
// reproduction may use.
type Material struct {
	// Dir is the run folder (a path on disk, or in a snapshot).
	Dir   string
	RunID string
	// Record is run.json, a subject of the verified statement.
	Record *results.Record
	// Envelope, RunJSON and Metrics are the folder's files as verified.
	Envelope, RunJSON, Metrics []byte
	// Verified is the authenticated statement.
	Verified *attest.Verified
	// Contract is the run contract the statement carries as a byproduct
	// (nil when it carries none): what the original runner executed.
	Contract *contract.Contract
	// Report is the folder's verification.
	Report *attest.Report

	files folderFiles
	// subjects are the verified digests by file name.
	subjects map[string]string
}

// folderFiles reads a run folder's files: from disk, or from a snapshot.
type folderFiles interface {
	ReadFile(name string, limit int64) ([]byte, error)
}

type diskFolder string

func (d diskFolder) ReadFile(name string, limit int64) ([]byte, error) {
	// A folder checked out from a pull request may link anywhere.
	return attest.ReadFolderFile(string(d), name, limit)
}

type snapshotFolder struct {
	snap tree.Reader
	dir  string
}

func (s snapshotFolder) ReadFile(name string, limit int64) ([]byte, error) {
	return s.snap.ReadFile(path.Join(s.dir, name), limit)
}

// ErrNotVerified is wrapped by Load's error for a folder that does not
// verify: it is never executed.
var ErrNotVerified = errors.New("the run folder does not verify; it is not reproduced")

// Load verifies the run folder dir on disk with opts (signature before
// payload, every subject, the identity hashing to the run ID, the
// statements already in its reproductions/ unless opts skips them) and
// reads what it attests.
func Load(dir string, opts attest.FolderOptions) (*Material, error) {
	rep, err := attest.VerifyFolder(dir, opts)
	return load(rep, err, dir, diskFolder(dir), opts)
}

// LoadTree is Load for a run folder in a snapshot of a branch (serve's
// audit): dir is its slash path there.
func LoadTree(snap tree.Reader, dir string, opts attest.FolderOptions) (*Material, error) {
	rep, err := attest.VerifyTreeFolder(snap, dir, opts)
	return load(rep, err, dir, snapshotFolder{snap: snap, dir: dir}, opts)
}

// load reads what a verified folder attests. The files are read once and
// checked against their verified digests, so what is used is what was
// signed even if the folder changes meanwhile.
func load(rep *attest.Report, verr error, dir string, files folderFiles, opts attest.FolderOptions) (*Material, error) {
	if verr != nil {
		return &Material{Dir: dir, Report: rep}, fmt.Errorf("%w: %v", ErrNotVerified, verr)
	}
	m := &Material{Dir: dir, RunID: rep.RunID, Verified: rep.Verified, Report: rep, files: files, subjects: map[string]string{}}
	for _, s := range rep.Verified.Subjects {
		m.subjects[s.Name] = s.SHA256
	}
	var err error
	if m.Envelope, err = files.ReadFile(attest.EnvelopeFile, attest.MaxEnvelopeBytes); err != nil {
		return nil, err
	}
	if _, err := attest.VerifyEnvelope(m.Envelope, opts.Keys, opts.VerifyOptions); err != nil {
		return nil, fmt.Errorf("%w: %s changed while it was read: %v", ErrNotVerified, attest.EnvelopeFile, err)
	}
	if m.RunJSON, err = m.readSubject(attest.RunFile, maxRecordBytes); err != nil {
		return nil, err
	}
	if m.Metrics, err = m.readSubject(attest.MetricsFile, maxRecordBytes); err != nil {
		return nil, err
	}
	if m.Record, err = results.ParseRecord(m.RunJSON); err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	if m.Record.RunID != m.RunID {
		return nil, fmt.Errorf("%w: run.json records run %s in the folder of run %s", ErrNotVerified, m.Record.RunID, m.RunID)
	}
	if m.Contract, err = signedContract(rep.Verified); err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	return m, nil
}

// maxRecordBytes bounds run.json and metrics.json as read here.
const maxRecordBytes = 16 << 20

// readSubject reads a file of the folder that the statement covers, and
// checks it against its attested digest.
func (m *Material) readSubject(name string, limit int64) ([]byte, error) {
	want := m.subjects[name]
	if want == "" {
		return nil, fmt.Errorf("%w: the statement does not cover %s", ErrNotVerified, name)
	}
	data, err := m.files.ReadFile(name, limit)
	if err != nil {
		return nil, err
	}
	if sum := contract.SHA256Hex(data); sum != want {
		return nil, fmt.Errorf("%w: %s changed while it was read (sha256 %s, attested %s)", ErrNotVerified, name, sum, want)
	}
	return data, nil
}

// signedContract reads the run contract byproduct of a verified statement,
// checked against its digest; nil when there is none.
func signedContract(v *attest.Verified) (*contract.Contract, error) {
	_, prov, err := v.InToto()
	if err != nil {
		return nil, err
	}
	for _, b := range prov.GetRunDetails().GetByproducts() {
		if b.GetName() != attest.ContractByproduct {
			continue
		}
		content := b.GetContent()
		if want := b.GetDigest()["sha256"]; want != "" && want != contract.SHA256Hex(content) {
			return nil, fmt.Errorf("the contract byproduct does not match its digest")
		}
		dec := json.NewDecoder(bytes.NewReader(content))
		dec.UseNumber()
		var c contract.Contract
		if err := dec.Decode(&c); err != nil {
			return nil, fmt.Errorf("the contract byproduct: %w", err)
		}
		return &c, nil
	}
	return nil, nil
}
