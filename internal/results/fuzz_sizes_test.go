package results

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"

	"github.com/expsync/expsync/contract"
	"github.com/expsync/expsync/tree"
)

// FuzzFolderSizes (issue 9, item 4): for any run within the runner's
// limits — outputs (up to 200 here, for speed: the reconciler's
// TestAnyFolderExpsyncWritesVerifies builds the 10,000 of the limit), paths
// up to MaxOutputPathBytes, any reason and metrics error — BuildFolder
// writes run.json and metrics.json under the writers' limits, keeps the
// outputs listed, and the summaries' reader reads the folder back.
func FuzzFolderSizes(f *testing.F) {
	f.Add(uint16(200), uint16(1000), uint32(0), uint32(0), []byte("x"))
	f.Add(uint16(292), uint16(3584), uint32(1<<20), uint32(1<<20), []byte("é\"\\"))
	f.Add(uint16(0), uint16(0), uint32(5000), uint32(0), []byte{})
	f.Fuzz(func(t *testing.T, files, pathBytes uint16, reasonBytes, metricsErrBytes uint32, fill []byte) {
		n := int(files) % 201
		per := int(pathBytes) % (contract.MaxOutputPathBytes + 1)
		if n > 0 && n*per > contract.MaxOutputNameBytes {
			per = contract.MaxOutputNameBytes / n
		}
		letter := "n"
		if len(fill) > 0 && fill[0] >= 'a' && fill[0] <= 'z' {
			letter = string(fill[0])
		}
		content := []byte("x")
		sum := sha256.Sum256(content)
		sha := hex.EncodeToString(sum[:])
		var outputs []OutputFile
		for i := 0; i < n; i++ {
			name := fmt.Sprintf("o/%06d", i)
			if pad := per - len(name); pad > 0 {
				name += strings.Repeat(letter, pad)
			}
			outputs = append(outputs, OutputFile{Path: splitLong(name), SHA256: sha, Size: 1, Open: func() ([]byte, error) { return content, nil }})
		}
		rec := &Record{RunID: strings.Repeat("a", 64), Experiment: "e", Status: contract.Succeeded,
			Reason: strings.Repeat(string(fill)+"r", int(reasonBytes%(2<<20))), MetricsError: strings.Repeat("m", int(metricsErrBytes%(2<<20)))}
		folder, err := BuildFolder(Layout{}, rec, []byte(`{"a":1}`), nil, outputs, DefaultLimits)
		if err != nil {
			t.Fatal(err)
		}
		if l := len(folder.File(RunFile)); l > contract.MaxRecordBytes {
			t.Fatalf("run.json has %d bytes, over %d", l, contract.MaxRecordBytes)
		}
		if l := len(folder.File(MetricsFile)); l > contract.MaxMetricsBytes {
			t.Fatalf("metrics.json has %d bytes", l)
		}
		if len(folder.Record.Outputs) != n {
			t.Fatalf("%d outputs listed, want %d (a run within the runner's limits must keep its list)", len(folder.Record.Outputs), n)
		}
		snap := tree.NewMemory()
		for _, name := range []string{RunFile, MetricsFile} {
			if err := snap.Write(folder.Dir+"/"+name, folder.File(name), tree.ModeFile); err != nil {
				t.Fatal(err)
			}
		}
		run, err := Layout{}.ReadRun(snap, folder.Dir, (MergeOptions{}).MaxBytes())
		if err != nil || !bytes.Equal([]byte(run.Record.RunID), []byte(rec.RunID)) {
			t.Fatalf("read back: %v", err)
		}
	})
}

// splitLong folds a name into folders of at most 200 bytes (each name of
// a path is at most 255 bytes).
func splitLong(name string) string {
	var parts []string
	for len(name) > 200 {
		parts = append(parts, name[:200])
		name = name[200:]
	}
	return strings.Join(append(parts, name), "/")
}
