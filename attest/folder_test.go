package attest

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/expsync/expsync/contract"
	"github.com/expsync/expsync/tree"
	"github.com/google/go-cmp/cmp"
)

// statuses returns each check's status by name, for cmp.Diff.
func statuses(r *Report) map[string]Status {
	out := map[string]Status{}
	for _, c := range r.Checks {
		out[c.Name] = c.Status
	}
	return out
}

func TestVerifyFolderAcceptsSignedFolder(t *testing.T) {
	dir, key := signedFolder(t)
	r, err := VerifyFolder(dir, FolderOptions{Keys: Verifiers{key}, RequireAll: true, Store: storeWith(t, []byte(storeOnlyContent))})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]Status{
		"signature": StatusOK, "statement": StatusOK, "builder": StatusOK, "invocationID": StatusOK,
		"subject " + RunFile: StatusOK, "subject " + MetricsFile: StatusOK, "subject " + LogFile: StatusOK,
		"subject outputs/out/estimate.json": StatusOK, "subject outputs/big.bin": StatusOK, "unattested files": StatusOK, "runID": StatusOK, "contextTree": StatusOK,
	}
	if diff := cmp.Diff(want, statuses(r)); diff != "" {
		t.Errorf("checks (-want +got):\n%s", diff)
	}
	if r.RunID != filepath.Base(dir) || r.Verified == nil {
		t.Errorf("report run ID %q, verified %v", r.RunID, r.Verified != nil)
	}
}

// expectFolderFailure verifies dir and wants check to have failed with a
// detail containing detail.
func expectFolderFailure(t *testing.T, dir string, opts FolderOptions, check, detail string) {
	t.Helper()
	r, err := VerifyFolder(dir, opts)
	if err == nil {
		t.Fatalf("folder verified; want %s to fail", check)
	}
	if !errors.Is(err, ErrNotVerified) {
		t.Errorf("error %v does not wrap ErrNotVerified", err)
	}
	for _, c := range r.Failures() {
		if c.Name == check && strings.Contains(c.Detail, detail) {
			return
		}
	}
	t.Fatalf("want failed check %q mentioning %q; failures: %+v", check, detail, r.Failures())
}

func TestRejectFlippedOutputByte(t *testing.T) {
	dir, key := signedFolder(t)
	p := filepath.Join(dir, "outputs", "out", "estimate.json")
	b := readFile(t, p)
	b[3] ^= 0x01
	writeFile(t, p, b)
	expectFolderFailure(t, dir, FolderOptions{Keys: Verifiers{key}}, "subject outputs/out/estimate.json", "edited after signing")
}

func TestRejectEditedRunJSON(t *testing.T) {
	dir, key := signedFolder(t)
	p := filepath.Join(dir, RunFile)
	writeFile(t, p, []byte(strings.Replace(string(readFile(t, p)), "Succeeded", "Failed", 1)))
	expectFolderFailure(t, dir, FolderOptions{Keys: Verifiers{key}}, "subject "+RunFile, "edited after signing")
}

func TestRejectEditedMetricsJSON(t *testing.T) {
	dir, key := signedFolder(t)
	writeFile(t, filepath.Join(dir, MetricsFile), []byte(`{"pi":3.2}`+"\n"))
	expectFolderFailure(t, dir, FolderOptions{Keys: Verifiers{key}}, "subject "+MetricsFile, "edited after signing")
}

func TestRejectEnvelopeCopiedIntoAnotherRunsFolder(t *testing.T) {
	s := testSigner(t, KeyECDSA)
	root := t.TempDir()
	idA, idB := testIdentity(1), testIdentity(2)
	dirA := writeRunFolder(t, root, idA, testRun(t, idA), s)
	dirB := writeRunFolder(t, root, idB, testRun(t, idB), s)
	// Make B's files identical to A's too, so only the run ID can tell.
	for _, name := range []string{RunFile, MetricsFile, LogFile, "outputs/out/estimate.json", EnvelopeFile} {
		writeFile(t, filepath.Join(dirB, filepath.FromSlash(name)), readFile(t, filepath.Join(dirA, filepath.FromSlash(name))))
	}
	expectFolderFailure(t, dirB, FolderOptions{Keys: Verifiers{keyOf(t, s)}}, "invocationID", "copied from another run")
}

func TestRejectFolderSignedByDifferentKey(t *testing.T) {
	dir, _ := signedFolder(t)
	expectFolderFailure(t, dir, FolderOptions{Keys: Verifiers{keyOf(t, freshSigner(t, KeyECDSA))}}, "signature", "0 of 1")
}

func TestRejectTruncatedEnvelopeFile(t *testing.T) {
	dir, key := signedFolder(t)
	p := filepath.Join(dir, EnvelopeFile)
	b := readFile(t, p)
	writeFile(t, p, b[:len(b)-20])
	expectFolderFailure(t, dir, FolderOptions{Keys: Verifiers{key}}, "envelope", "malformed")
}

func TestMissingEnvelopeFails(t *testing.T) {
	dir, key := signedFolder(t)
	if err := os.Remove(filepath.Join(dir, EnvelopeFile)); err != nil {
		t.Fatal(err)
	}
	expectFolderFailure(t, dir, FolderOptions{Keys: Verifiers{key}}, "envelope", "no provenance.intoto.jsonl: the folder is not signed")
}

// TestMissingSignedFileFails (issue 9, item 5): a file the signed run.json
// says the folder holds — run.json and metrics.json always, the log when
// logCommitted, outputs with committed: true — fails verification when it
// is deleted, with or without --require-all, and a copy in the store does
// not stand in for it. Deleting an output or log.txt passed (exit 0, "not
// checked: absent"), so a folder could lose what it was signed with.
func TestMissingSignedFileFails(t *testing.T) {
	for _, name := range []string{"outputs/out/estimate.json", LogFile, MetricsFile, RunFile} {
		t.Run(name, func(t *testing.T) {
			dir, key := signedFolder(t)
			p := filepath.Join(dir, filepath.FromSlash(name))
			data := readFile(t, p)
			if err := os.Remove(p); err != nil {
				t.Fatal(err)
			}
			expectFolderFailure(t, dir, FolderOptions{Keys: Verifiers{key}}, "subject "+name, "absent from the folder")
			expectFolderFailure(t, dir, FolderOptions{Keys: Verifiers{key}, Store: storeWith(t, data)}, "subject "+name, "absent from the folder")
		})
	}
}

// TestMissingSubjectNotCheckedWithoutRequireAll: an output that run.json
// records as not committed (too large for the folder) is in the store
// only: absent, it is not checked unless --require-all.
func TestMissingSubjectNotCheckedWithoutRequireAll(t *testing.T) {
	dir, key := signedFolder(t)
	r, err := VerifyFolder(dir, FolderOptions{Keys: Verifiers{key}})
	if err != nil {
		t.Fatalf("a store-only subject without --require-all failed: %v", err)
	}
	if got := statuses(r)["subject outputs/big.bin"]; got != StatusNotChecked {
		t.Errorf("store-only subject status = %q, want %q", got, StatusNotChecked)
	}
}

func TestRejectMissingSubjectWithRequireAll(t *testing.T) {
	dir, key := signedFolder(t)
	expectFolderFailure(t, dir, FolderOptions{Keys: Verifiers{key}, RequireAll: true}, "subject outputs/big.bin", "absent")
}

// storeWith writes data into a store laid out as expsync's and returns its
// lookup.
func storeWith(t testing.TB, data []byte) func(string) (string, bool) {
	t.Helper()
	store := t.TempDir()
	sum, err := hashRegularFile(writeTemp(t, data))
	if err != nil {
		t.Fatal(err)
	}
	blob := filepath.Join(store, "sha256", sum[:2], sum)
	if err := os.MkdirAll(filepath.Dir(blob), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, blob, data)
	return StoreDir(store)
}

func TestMissingSubjectFoundInStore(t *testing.T) {
	dir, key := signedFolder(t)
	data := []byte(storeOnlyContent)
	store := storeWith(t, data)
	r, err := VerifyFolder(dir, FolderOptions{Keys: Verifiers{key}, RequireAll: true, Store: store})
	if err != nil {
		t.Fatal(err)
	}
	if c := statuses(r)["subject outputs/big.bin"]; c != StatusOK {
		t.Errorf("store subject status %q", c)
	}
	// A store copy that differs is a failure, not a pass.
	p, _ := store(storeOnlySHA256)
	writeFile(t, p, append(data, 'x'))
	expectFolderFailure(t, dir, FolderOptions{Keys: Verifiers{key}, Store: store}, "subject outputs/big.bin", "in the store")
}

func writeTemp(t testing.TB, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "f")
	writeFile(t, p, data)
	return p
}

func TestRejectUnattestedFile(t *testing.T) {
	dir, key := signedFolder(t)
	writeFile(t, filepath.Join(dir, "outputs", "extra.json"), []byte("{}"))
	expectFolderFailure(t, dir, FolderOptions{Keys: Verifiers{key}}, "unattested files", "outputs/extra.json")
}

func TestRejectSymlinkedSubject(t *testing.T) {
	dir, key := signedFolder(t)
	p := filepath.Join(dir, MetricsFile)
	target := writeTemp(t, readFile(t, p))
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, p); err != nil {
		t.Fatal(err)
	}
	expectFolderFailure(t, dir, FolderOptions{Keys: Verifiers{key}}, "subject "+MetricsFile, "symlinks are not followed")
}

// TestRejectIdentityNotMatchingRunID: a run signed under an ID its recorded
// identity does not hash to (a signer bug, or a forged run.json signed by a
// careless pipeline) is caught by recomputing the ID.
func TestRejectIdentityNotMatchingRunID(t *testing.T) {
	s := testSigner(t, KeyECDSA)
	id := testIdentity(1)
	run := testRun(t, id)
	recorded := testIdentity(1, func(i *contract.Identity) { i.Command = append(i.Command, "--fast") })
	dir := writeRunFolder(t, t.TempDir(), recorded, run, s)
	expectFolderFailure(t, dir, FolderOptions{Keys: Verifiers{keyOf(t, s)}}, "runID", "hashes to")
}

func TestRejectIdentityWithOtherContextTree(t *testing.T) {
	s := testSigner(t, KeyECDSA)
	recorded := testIdentity(1, func(i *contract.Identity) { i.ContextTree = testSpecBlob })
	run := testRun(t, recorded)
	run.ContextTree = testContextTree // statement attests another tree
	dir := writeRunFolder(t, t.TempDir(), recorded, run, s)
	expectFolderFailure(t, dir, FolderOptions{Keys: Verifiers{keyOf(t, s)}}, "contextTree", "attested "+testContextTree)
}

func TestVerifyEnvelopeFileOnItsOwn(t *testing.T) {
	dir, key := signedFolder(t)
	loose := filepath.Join(t.TempDir(), "att.json")
	writeFile(t, loose, readFile(t, filepath.Join(dir, EnvelopeFile)))
	r, err := VerifyEnvelopeFile(loose, FolderOptions{Keys: Verifiers{key}})
	if err != nil {
		t.Fatal(err)
	}
	if statuses(r)["subjects"] != StatusNotChecked || r.RunID != filepath.Base(dir) {
		t.Errorf("loose envelope report: %+v", r)
	}
}

func TestHashFolderRefusesSymlinks(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, RunFile), []byte("{}"))
	if err := os.Symlink("/etc/hostname", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	if _, err := HashFolder(dir); err == nil || !strings.Contains(err.Error(), "symlinks") {
		t.Fatalf("HashFolder with a symlink: %v", err)
	}
}

// TestVerifyTreeFolderMatchesVerifyFolder runs the same checks over a
// snapshot (tree.Memory, as a Git commit's tree reads) of a signed folder.
func TestVerifyTreeFolderMatchesVerifyFolder(t *testing.T) {
	dir, key := signedFolder(t)
	files := map[string]string{}
	subjects, err := HashFolder(dir)
	if err != nil {
		t.Fatal(err)
	}
	base := "results/pi-montecarlo/" + filepath.Base(dir)
	for _, s := range append(subjects, Subject{Name: EnvelopeFile}) {
		files[base+"/"+s.Name] = string(readFile(t, filepath.Join(dir, filepath.FromSlash(s.Name))))
	}
	opts := FolderOptions{Keys: Verifiers{key}, RequireAll: true, Store: storeWith(t, []byte(storeOnlyContent))}
	fromDir, err := VerifyFolder(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	fromTree, err := VerifyTreeFolder(tree.MemoryOf(files), base, opts)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(statuses(fromDir), statuses(fromTree)); diff != "" {
		t.Errorf("tree and folder verification differ (-dir +tree):\n%s", diff)
	}

	files[base+"/"+MetricsFile] = `{"pi":4}`
	files[base+"/outputs/extra.txt"] = "unsigned"
	r, err := VerifyTreeFolder(tree.MemoryOf(files), base, opts)
	if err == nil {
		t.Fatal("edited snapshot verified")
	}
	got := statuses(r)
	if got["subject "+MetricsFile] != StatusFailed || got["unattested files"] != StatusFailed {
		t.Errorf("edited snapshot checks: %v", got)
	}
}

// TestVerifyFolderChecksExperiment: a genuine run folder copied under
// another experiment's folder is refused when the caller names the
// experiment folder it lies in; the right experiment passes.
func TestVerifyFolderChecksExperiment(t *testing.T) {
	dir, key := signedFolder(t)
	id, err := RecordedIdentity(filepath.Join(dir, RunFile))
	if err != nil {
		t.Fatal(err)
	}
	opts := FolderOptions{Keys: Verifiers{key}, Experiment: id.Experiment}
	r, err := VerifyFolder(dir, opts)
	if err != nil {
		t.Fatalf("own experiment: %v", err)
	}
	if got := statuses(r)["experiment"]; got != StatusOK {
		t.Errorf("experiment check %q, want ok", got)
	}
	opts.Experiment = "other-experiment"
	expectFolderFailure(t, dir, opts, "experiment", `attests experiment "`+id.Experiment+`"`)

	if err := os.Remove(filepath.Join(dir, RunFile)); err != nil {
		t.Fatal(err)
	}
	opts.Experiment = id.Experiment
	expectFolderFailure(t, dir, opts, "experiment", "cannot tell which experiment")
}

// TestFolderFilesAreReadInsideTheFolderOnly (issue 9, hostile re-attack):
// a folder checked out from a pull request is hostile. Its run.json and
// envelope were read with os.Open, which follows a symlink anywhere — to
// a FIFO or a terminal, where `expsync verify` waited forever, or to a
// file outside the folder — and a subject below a symlinked folder
// (outputs -> elsewhere) was hashed from outside it. Each is refused at
// once, naming the file.
func TestFolderFilesAreReadInsideTheFolderOnly(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, file, check, detail string
		replace                   func(t *testing.T, p string)
	}{
		{"an envelope linked to a FIFO", EnvelopeFile, "envelope", "symlinks are not followed", func(t *testing.T, p string) { relink(t, p, fifo) }},
		{"run.json linked to a FIFO", RunFile, "subject " + RunFile, "symlinks are not followed", func(t *testing.T, p string) { relink(t, p, fifo) }},
		{"run.json a FIFO", RunFile, "subject " + RunFile, "not a regular file", func(t *testing.T, p string) {
			_ = os.Remove(p)
			if err := syscall.Mkfifo(p, 0o600); err != nil {
				t.Fatal(err)
			}
		}},
		{"outputs linked to a copy outside", "outputs", "subject outputs/out/estimate.json", "outputs is a symlink", func(t *testing.T, p string) {
			elsewhere := filepath.Join(t.TempDir(), "outputs")
			if err := os.Rename(p, elsewhere); err != nil {
				t.Fatal(err)
			}
			relink(t, p, elsewhere)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, key := signedFolder(t)
			tc.replace(t, filepath.Join(dir, tc.file))
			var r *Report
			done := make(chan struct{})
			go func() {
				defer close(done)
				r, _ = VerifyFolder(dir, FolderOptions{Keys: Verifiers{key}})
			}()
			select {
			case <-done:
			case <-time.After(30 * time.Second):
				// Opening a FIFO for reading waits for a writer: open it
				// for writing so the verification ends, and fail.
				for i := 0; i < 10; i++ {
					if f, err := os.OpenFile(fifo, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
						f.Close()
					}
				}
				<-done
				t.Fatal("verification waited on a FIFO the folder linked to")
			}
			for _, c := range r.Failures() {
				if c.Name == tc.check && strings.Contains(c.Detail, tc.detail) {
					return
				}
			}
			t.Errorf("want failed check %q mentioning %q; failures: %+v", tc.check, tc.detail, r.Failures())
		})
	}
}

func relink(t *testing.T, p, target string) {
	t.Helper()
	_ = os.RemoveAll(p)
	if err := os.Symlink(target, p); err != nil {
		t.Fatal(err)
	}
}
