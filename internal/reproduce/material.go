package reproduce

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/expsync/expsync/attest"
	"github.com/expsync/expsync/contract"
	"github.com/expsync/expsync/results"
)

// Material is what a verified run folder attests: everything a
// reproduction may use.
type Material struct {
	// Dir is the run folder.
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
}

// ErrNotVerified is wrapped by Load's error for a folder that does not
// verify: it is never executed.
var ErrNotVerified = errors.New("the run folder does not verify; it is not reproduced")

// Load verifies the run folder dir with opts (signature before payload,
// every subject, the identity hashing to the run ID, the statements already
// in its reproductions/) and reads what it attests. The files are read once
// and checked against their verified digests, so what is used is what was
// signed even if the folder changes meanwhile.
func Load(dir string, opts attest.FolderOptions) (*Material, error) {
	rep, err := attest.VerifyFolder(dir, opts)
	if err != nil {
		return &Material{Dir: dir, Report: rep}, fmt.Errorf("%w: %v", ErrNotVerified, err)
	}
	m := &Material{Dir: dir, RunID: rep.RunID, Verified: rep.Verified, Report: rep}
	want := map[string]string{}
	for _, s := range rep.Verified.Subjects {
		want[s.Name] = s.SHA256
	}
	read := func(name string) ([]byte, error) {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return nil, err
		}
		if sum := sha256Hex(data); want[name] != "" && sum != want[name] {
			return nil, fmt.Errorf("%w: %s changed while it was read (sha256 %s, attested %s)", ErrNotVerified, name, sum, want[name])
		}
		return data, nil
	}
	if m.Envelope, err = os.ReadFile(filepath.Join(dir, attest.EnvelopeFile)); err != nil {
		return nil, err
	}
	if _, err := attest.VerifyEnvelope(m.Envelope, opts.Keys, opts.VerifyOptions); err != nil {
		return nil, fmt.Errorf("%w: %s changed while it was read: %v", ErrNotVerified, attest.EnvelopeFile, err)
	}
	if m.RunJSON, err = read(attest.RunFile); err != nil {
		return nil, err
	}
	if m.Metrics, err = read(attest.MetricsFile); err != nil {
		return nil, err
	}
	if want[attest.RunFile] == "" || want[attest.MetricsFile] == "" {
		return nil, fmt.Errorf("%w: the statement does not cover run.json and metrics.json", ErrNotVerified)
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
		if want := b.GetDigest()["sha256"]; want != "" && want != sha256Hex(content) {
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

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}
