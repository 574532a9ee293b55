package store

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"testing"

	"github.com/expsync/expsync/contract"
)

// TestOverlay: reads come from Lower first, writes go to Upper alone, and an
// object whose Lower copy is corrupt is read from Upper once stored again.
func TestOverlay(t *testing.T) {
	ctx := context.Background()
	lower, err := OpenLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	upper, err := OpenLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	o := &Overlay{Lower: lower, Upper: upper}
	shared, err := lower.Put(ctx, bytes.NewReader([]byte("shared\n")), "")
	if err != nil {
		t.Fatal(err)
	}
	mine, err := o.Put(ctx, bytes.NewReader([]byte("mine\n")), "")
	if err != nil {
		t.Fatal(err)
	}
	if ok, _ := lower.Has(ctx, mine.SHA256); ok {
		t.Errorf("Put wrote to Lower")
	}
	for sha, want := range map[string]string{shared.SHA256: "shared\n", mine.SHA256: "mine\n"} {
		if got := readAll(t, o, sha); got != want {
			t.Errorf("Open(%s) = %q, want %q", sha[:8], got, want)
		}
		if err := o.Verify(ctx, sha); err != nil {
			t.Errorf("Verify(%s): %v", sha[:8], err)
		}
	}
	if err := o.Verify(ctx, contract.SHA256Hex([]byte("absent"))); !errors.Is(err, ErrNotFound) {
		t.Errorf("Verify(absent) = %v, want ErrNotFound", err)
	}

	// Lower's copy goes bad; Lower is read-only to this overlay's user, so
	// the bad copy stays there, and the right bytes stored again in Upper
	// are what Open returns from then on.
	path := lower.ObjectPath(shared.SHA256)
	_ = os.Chmod(path, 0o644)
	if err := os.WriteFile(path, []byte("bad\n"), 0o444); err != nil {
		t.Fatal(err)
	}
	lower.small.drop(shared.SHA256)
	var mm *MismatchError
	if err := o.Verify(ctx, shared.SHA256); !errors.As(err, &mm) {
		t.Fatalf("Verify of a corrupt Lower object = %v, want a mismatch", err)
	}
	if _, err := o.Put(ctx, bytes.NewReader([]byte("shared\n")), shared.SHA256); err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, o, shared.SHA256); got != "shared\n" {
		t.Errorf("after storing it again, Open = %q", got)
	}
	if err := o.Verify(ctx, shared.SHA256); err != nil {
		t.Errorf("Verify after storing again: %v", err)
	}
}

func readAll(t *testing.T, s Store, sha string) string {
	t.Helper()
	rc, err := s.Open(context.Background(), sha)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
