package reproduce

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/expsync/expsync/attest"
)

// Statement is the reproduction statement of an outcome that has a verdict:
// its predicate, and the digests of the run folder's envelope and run.json
// as they were verified.
func Statement(o *Outcome) (attest.ReproductionStatement, error) {
	if o.Reproduction == nil || o.Material == nil {
		return attest.ReproductionStatement{}, errors.New("no verdict to record: the run was not reproduced")
	}
	return attest.ReproductionStatementFor(o.Material.Envelope, o.Material.RunJSON, *o.Reproduction), nil
}

// StatementName names a statement file by when the reproduction finished
// and the key that signs it, so statements by several reproducers (or one,
// repeatedly) sit side by side: 20261207T170405Z-<key>.intoto.jsonl.
func StatementName(finished time.Time, keyID string) string {
	var key strings.Builder
	for _, c := range strings.TrimPrefix(keyID, "SHA256:") {
		if (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') {
			key.WriteRune(c)
		}
		if key.Len() == 12 {
			break
		}
	}
	return finished.UTC().Format("20060102T150405Z") + "-" + key.String() + attest.ReproductionSuffix
}

// Sign signs the outcome's statement with signer and returns the file's
// name and content.
func Sign(o *Outcome, signer *attest.Signer) (name string, data []byte, err error) {
	st, err := Statement(o)
	if err != nil {
		return "", nil, err
	}
	data, err = attest.SignReproduction(st, signer)
	if err != nil {
		return "", nil, err
	}
	finished, err := time.Parse(time.RFC3339Nano, o.Reproduction.Reproduced.FinishedOn)
	if err != nil {
		finished = time.Now()
	}
	return StatementName(finished, signer.KeyID()), data, nil
}

// Write signs the outcome's statement and writes it into the run folder's
// reproductions/, never replacing a file there. The folder is opened as a
// root (os.Root): a reproductions/ that became a symlink — the run under
// test can write anywhere its user can — never sends the file elsewhere.
// It returns the path.
func Write(o *Outcome, signer *attest.Signer) (string, error) {
	name, data, err := Sign(o, signer)
	if err != nil {
		return "", err
	}
	root, err := os.OpenRoot(o.Path)
	if err != nil {
		return "", err
	}
	defer root.Close()
	if err := root.Mkdir(attest.ReproductionsDir, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return "", err
	}
	base := strings.TrimSuffix(name, attest.ReproductionSuffix)
	for i := 1; ; i++ {
		rel := attest.ReproductionsDir + "/" + name
		f, err := root.OpenFile(rel, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if errors.Is(err, fs.ErrExist) && i < 100 {
			name = fmt.Sprintf("%s-%d%s", base, i+1, attest.ReproductionSuffix)
			continue
		}
		if err != nil {
			return "", err
		}
		_, werr := f.Write(data)
		if cerr := f.Close(); werr == nil {
			werr = cerr
		}
		if werr != nil {
			root.Remove(rel)
			return "", werr
		}
		return filepath.Join(o.Path, attest.ReproductionsDir, name), nil
	}
}
