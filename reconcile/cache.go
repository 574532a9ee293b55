package reconcile

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/expsync/expsync/render"
	"github.com/expsync/expsync/results"
	"github.com/expsync/expsync/runner"
)

// FolderFile is the run cache file holding a run's signed results folder,
// so a folder lost from a branch (a force-push) is committed again without
// rerunning or re-signing.
const FolderFile = "results-folder.json"

// cachedFolderDoc is FolderFile's content: the folder's files by their name
// in the folder (encoding/json writes []byte as base64).
type cachedFolderDoc struct {
	Files map[string][]byte `json:"files"`
}

type recovered struct {
	run    render.Run
	files  map[string][]byte // relative to the run folder
	record *results.Record
}

// cachedFolder returns the run's cached signed folder when it stands for
// this run: a success always, a failure only under the same scheduling
// fields, and only when its envelope still verifies with a trusted key.
func (r *Reconciler) cachedFolder(ctx context.Context, layout results.Layout, run render.Run) (map[string][]byte, *results.Record, bool) {
	data, err := r.Store.RunFile(ctx, run.ID, FolderFile)
	if err != nil {
		return nil, nil, false
	}
	var doc cachedFolderDoc
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, nil, false
	}
	folder, err := results.FolderFromFiles(layout, doc.Files)
	if err != nil || folder.Record.RunID != run.ID {
		return nil, nil, false
	}
	if folder.Record.Status != results.Succeeded && folder.Record.Scheduling != runner.SchedulingDigest(run.Contract) {
		return nil, nil, false
	}
	if _, err := VerifyFolder(memFolder(folder.Dir, doc.Files), folder.Dir, run.ID, r.Trusted); err != nil {
		return nil, nil, false // signed by a key no longer trusted: run it again
	}
	return doc.Files, folder.Record, true
}

// cacheFolder keeps the signed folder in the run cache.
func (r *Reconciler) cacheFolder(ctx context.Context, runID string, folder *results.Folder) error {
	data, err := json.Marshal(cachedFolderDoc{Files: folder.RelFiles()})
	if err != nil {
		return err
	}
	if err := r.Store.PutRunFile(ctx, runID, FolderFile, data); err != nil {
		return fmt.Errorf("cache results folder of run %s: %w", runID, err)
	}
	return nil
}
