package results

import (
	"errors"
	"maps"
	"path"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/expsync/expsync/tree"
)

// TestMergeOwnBatchVerifiesOnlyTheHeadsFolders merges our own batch with
// OwnBatch: the folders it adds or replaces are summarised without a second
// check, while every folder that came with the head (kept, identical or
// untouched) is still verified, and one that fails stays out of the
// summaries.
func TestMergeOwnBatchVerifiesOnlyTheHeadsFolders(t *testing.T) {
	added := aRun("pi", map[string]any{"seed": 1}).record()
	identical := aRun("pi", map[string]any{"seed": 2}).record()
	kept := aRun("pi", map[string]any{"seed": 3}).record()
	replaced := aRun("pi", map[string]any{"seed": 4}).record()
	untouched := aRun("pi", map[string]any{"seed": 5}).record()
	forgedUntouched := aRun("pi", map[string]any{"seed": 6}).record()
	dir := func(r *Record) string { return "results/pi/" + r.RunID }

	head := tree.NewMemory()
	writeAll(t, head, folderOf(t, identical, `{"m": 2}`, `{"sig":"same"}`))
	writeAll(t, head, folderOf(t, kept, `{"m": 30}`, `{"sig":"first writer"}`))
	writeAll(t, head, folderOf(t, replaced, `{"m": 40}`, `{"sig":"forged"}`))
	writeAll(t, head, folderOf(t, untouched, `{"m": 5}`, `{"sig":"theirs"}`))
	writeAll(t, head, folderOf(t, forgedUntouched, `{"m": 666}`, `{"sig":"forged"}`))

	batch := map[string][]byte{}
	for _, files := range []map[string][]byte{
		folderOf(t, added, `{"m": 1}`, `{"sig":"ours"}`),
		folderOf(t, identical, `{"m": 2}`, `{"sig":"same"}`),
		folderOf(t, kept, `{"m": 3}`, `{"sig":"ours"}`),
		folderOf(t, replaced, `{"m": 4}`, `{"sig":"ours"}`),
	} {
		maps.Copy(batch, files)
	}
	var verified []string
	verify := func(r tree.Reader, d, experiment string) error {
		verified = append(verified, d)
		env, err := r.ReadFile(path.Join(d, EnvelopeFile), 0)
		if err != nil {
			return err
		}
		if strings.Contains(string(env), "forged") {
			return errors.New("signature does not verify")
		}
		return nil
	}
	replace := func(_ tree.Reader, d string) bool { return d == dir(replaced) }
	changes, report, err := Layout{}.Merge(head, batch, MergeOptions{OwnBatch: true, Verify: verify, Replace: replace})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{dir(added)}, report.Added); diff != "" {
		t.Errorf("added (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{dir(replaced)}, report.Replaced); diff != "" {
		t.Errorf("replaced (-want +got):\n%s", diff)
	}
	// Each head folder is checked for the experiment README and again for
	// the index; ours never.
	slices.Sort(verified)
	verified = slices.Compact(verified)
	want := []string{dir(identical), dir(kept), dir(untouched), dir(forgedUntouched)}
	slices.Sort(want)
	if diff := cmp.Diff(want, verified); diff != "" {
		t.Errorf("folders verified (-want +got):\n%s", diff)
	}
	readme := string(changes["results/pi/README.md"])
	table, apart, _ := strings.Cut(readme, "Unverified folders")
	for _, r := range []*Record{added, identical, kept, replaced, untouched} {
		if !strings.Contains(table, r.RunID[:12]) {
			t.Errorf("run %s missing from the README table:\n%s", r.RunID[:12], readme)
		}
	}
	if strings.Contains(table, forgedUntouched.RunID[:12]) || !strings.Contains(apart, forgedUntouched.RunID) {
		t.Errorf("the head's forged folder is counted or not listed apart:\n%s", readme)
	}
	if !strings.Contains(table, "| 4 |") || strings.Contains(readme, "| 40 |") || strings.Contains(readme, "666") {
		t.Errorf("README does not show our replacing metric, or shows a forged one:\n%s", readme)
	}

	// Without OwnBatch, our folders are verified like any other.
	verified = nil
	if _, _, err := (Layout{}).Merge(head, batch, MergeOptions{Verify: verify, Replace: replace}); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(verified, dir(added)) || !slices.Contains(verified, dir(replaced)) {
		t.Errorf("without OwnBatch our folders were not verified: %q", verified)
	}
}
