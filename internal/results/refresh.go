package results

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"sort"

	"github.com/expsync/expsync/tree"
)

// Refresh regenerates the summaries — each experiment's README and plots
// under the results folder, and the index — from the run folders of head,
// and returns the pages that differ from head's (nil content deletes a
// plot no longer drawn). Empty when every summary is up to date, so a
// caller commits only when something changed and never loops: the pages
// are a pure function of the folders, the plots and the trusted keys.
//
// A folder pushed by someone else (forged, copied, unsigned) shows up as
// unverified at once, not at the next run; a README edited by hand is
// rewritten. choices are the plots the plan chooses per experiment; an
// experiment the plan does not know (its spec was removed) keeps the plots
// its README records.
func (l Layout) Refresh(head tree.Reader, choices map[string][]PlotChoice, opts MergeOptions) (Changes, error) {
	entries, err := head.ReadDir(l.root())
	if errors.Is(err, tree.ErrNotExist) {
		return Changes{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("refresh results summaries: %w", err)
	}
	plots := map[string][]PlotChoice{}
	var experiments []string
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		experiments = append(experiments, e.Name)
		if c, ok := choices[e.Name]; ok {
			plots[e.Name] = c
			continue
		}
		if c, ok, err := l.drawnPlots(head, e.Name); err != nil {
			return nil, err
		} else if ok {
			plots[e.Name] = c
		}
	}
	sort.Strings(experiments)
	opts.Plots = plots
	pages := Changes{}
	if err := l.summaries(head, head, experiments, opts, pages); err != nil {
		return nil, err
	}
	for p, data := range pages {
		if same, err := holds(head, p, data); err != nil {
			return nil, err
		} else if same {
			delete(pages, p)
		}
	}
	return pages, nil
}

// holds reports whether head has the file p with exactly data (nil: p is
// absent), by Git blob ID when head knows it.
func holds(head tree.Reader, p string, data []byte) (bool, error) {
	e, err := head.Stat(p)
	if errors.Is(err, tree.ErrNotExist) {
		return data == nil, nil
	}
	if err != nil {
		return false, err
	}
	if data == nil || e.Mode != tree.ModeFile {
		return false, nil
	}
	if e.Hash != "" {
		return e.Hash == tree.BlobID(data), nil
	}
	theirs, err := head.ReadFile(p, int64(len(data))+1)
	if err != nil {
		return false, nil
	}
	return bytes.Equal(theirs, data), nil
}

// drawnPlots reads the plots an experiment's README was drawn with (its
// `<!-- expsync:plots ... -->` line, in the README's head); ok is false
// when there is no README or it names none (the default plot).
func (l Layout) drawnPlots(r tree.Reader, experiment string) ([]PlotChoice, bool, error) {
	head, err := readmeHead(r, path.Join(l.ExperimentDir(experiment), ReadmeFile))
	if errors.Is(err, tree.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("read results README of %s: %w", experiment, err)
	}
	for line := range bytes.Lines(head) {
		if m, ok := bytes.CutPrefix(bytes.TrimSpace(line), []byte(plotsMarkerPrefix)); ok {
			var c []PlotChoice
			if json.Unmarshal(bytes.TrimSuffix(m, []byte(" -->")), &c) == nil && len(c) > 0 {
				return c, true, nil
			}
		}
	}
	return nil, false, nil
}

// readmeHeadBytes is how much of a README is read for its head: the
// markers come before the table, which may be megabytes long.
const readmeHeadBytes = 64 << 10

// readmeHead returns the start of a README, up to its table: streamed
// when the reader can (a Git snapshot), so a long table is never read.
func readmeHead(r tree.Reader, p string) ([]byte, error) {
	type opener interface {
		OpenFile(p string, limit int64) (io.ReadCloser, tree.Entry, error)
	}
	var data []byte
	if o, ok := r.(opener); ok {
		rc, _, err := o.OpenFile(p, 0)
		if err != nil {
			return nil, err
		}
		defer rc.Close()
		if data, err = io.ReadAll(io.LimitReader(bufio.NewReader(rc), readmeHeadBytes)); err != nil {
			return nil, err
		}
	} else {
		full, err := r.ReadFile(p, 0)
		if err != nil {
			return nil, err
		}
		data = full[:min(len(full), readmeHeadBytes)]
	}
	head, _, _ := bytes.Cut(data, []byte("\n|"))
	return head, nil
}
