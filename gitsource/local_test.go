package gitsource

import (
	"errors"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// Local mode reads a repository by path (or file://); controller mode refuses both.
func TestLocalPathRepositoryAndControllerMode(t *testing.T) {
	root := t.TempDir()
	bare := filepath.Join(root, "exps.git")
	runGit(t, root, "init", "-q", "--bare", "-b", "main", bare)
	p := newPeer(t, bare)
	head := p.commit("first", map[string]string{"a.txt": "local"})
	p.push("main")
	want := map[string]string{"a.txt": "local"}
	for i, url := range []string{bare, "file://" + bare} {
		t.Run(url, func(t *testing.T) {
			src, err := New(Repository{URL: url, Refs: []RefPolicy{{Pattern: "main", Trusted: true}}}, t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			ctx := testCtx(t)
			if ch, err := src.Poll(ctx); err != nil || len(ch) != 1 || ch[0].New != head {
				t.Fatalf("poll = %+v, %v", ch, err)
			}
			sn, err := src.Snapshot(ctx, "main", head)
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(want, readAll(t, sn)); d != "" {
				t.Errorf("(-want +got):\n%s", d)
			}
			sn.Close()
			res, err := src.CommitBack(ctx, CommitRequest{Branch: "main", Files: map[string][]byte{fmt.Sprintf("r/%d", i): []byte("x")},
				Message: "results", Author: bot}, nil)
			if err != nil || !res.Pushed {
				t.Fatalf("commit back = %+v, %v", res, err)
			}
			if got := reclone(t, bare, "main").head(t); got != res.Commit {
				t.Errorf("head = %s, want %s", got, res.Commit)
			}
			head = res.Commit
			want[fmt.Sprintf("r/%d", i)] = "x"
			_, err = New(Repository{URL: url, Refs: []RefPolicy{{Pattern: "main"}}, URLPolicy: URLPolicy{ControllerMode: true}}, t.TempDir())
			if !errors.Is(err, ErrUnsafeURL) {
				t.Errorf("controller mode accepted %s: %v", url, err)
			}
		})
	}
}

// Two Sources (as two processes would) sharing a cache folder wait for
// each other instead of corrupting it.
func TestSourcesSharingACacheFolder(t *testing.T) {
	srv := newServer(t)
	srv.newRepo("exps")
	p := newPeer(t, srv.peerURL("exps"))
	head := p.commit("first", map[string]string{"a.txt": "shared"})
	p.push("main")
	root := t.TempDir()
	ctx := testCtx(t)
	errs := make(chan error, 8)
	for i := 0; i < 8; i++ {
		src, err := New(Repository{URL: srv.url("exps"), Auth: basicAuth(), URLPolicy: URLPolicy{AllowHTTP: true},
			Refs: []RefPolicy{{Pattern: "main", Trusted: true}}}, root)
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			sn, err := src.Snapshot(ctx, "main", head)
			if err == nil {
				var data []byte
				data, err = sn.ReadFile("a.txt", 0)
				if err == nil && string(data) != "shared" {
					err = fmt.Errorf("read %q", data)
				}
				sn.Close()
			}
			errs <- err
		}()
	}
	for i := 0; i < 8; i++ {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}
