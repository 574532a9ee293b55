package contract

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/expsync/expsync/internal/fieldcheck"
)

// The canonical form lists Identity's fields by hand (appendCanonical): a
// field it leaves out would give two identities that differ only there the
// same run ID, and the run cache would hand one run the other's result.
// Every leaf of a filled Identity is changed alone and must change the
// canonical bytes — on both paths, and so the ID — and the two paths must
// agree on every such variant.
func TestCanonicalSeesEveryField(t *testing.T) {
	fast := func(i Identity) []byte {
		b, ok := appendCanonical(nil, i)
		if !ok {
			t.Fatalf("fast path refused %+v", i)
		}
		return b
	}
	general := func(i Identity) []byte {
		b, err := i.canonicalJCS()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	id := func(i Identity) []byte {
		s, err := i.ID()
		if err != nil {
			t.Fatal(err)
		}
		return []byte(s)
	}
	if n := fieldcheck.Leaves[Identity](); n < 15 {
		t.Fatalf("Identity has %d leaves filled; the check walks nothing", n)
	}
	for name, out := range map[string]func(Identity) []byte{"appendCanonical": fast, "canonicalJCS": general, "ID": id} {
		if unused := fieldcheck.Unused(out); len(unused) > 0 {
			t.Errorf("%s leaves out %v: add them to the canonical form (and bump IDVersion if IDs move)", name, unused)
		}
	}
	for n := 0; ; n++ {
		v := fieldcheck.Filled[Identity](1)
		path := fieldcheck.Change(&v, n)
		if path == "" {
			break
		}
		if diff := cmp.Diff(string(general(v)), string(fast(v))); diff != "" {
			t.Errorf("%s changed: the fast path differs from JCS (-jcs +fast):\n%s", path, diff)
		}
	}
}

// TestCanonicalCheckCatchesAForgottenField shows the check above failing
// when Identity grows a field the canonical form does not write: a copy of
// Identity with one more field, encoded by today's appendCanonical, which
// does not know it, is reported with exactly that field.
func TestCanonicalCheckCatchesAForgottenField(t *testing.T) {
	type grownIdentity struct {
		Identity
		Seed int `json:"seed"`
	}
	unused := fieldcheck.Unused(func(g grownIdentity) []byte {
		b, _ := appendCanonical(nil, g.Identity)
		return b
	})
	if diff := cmp.Diff([]string{"Seed"}, unused); diff != "" {
		t.Errorf("fields reported as left out (-want +got):\n%s", diff)
	}
}

// TestCloneSharesNothing: Contract.Clone (render's copy of a run's
// contract, once field by field) is deep for every leaf — a slice, map or
// pointer added to Contract or Identity and not copied is reported — and
// the check itself catches a shallow copy.
func TestCloneSharesNothing(t *testing.T) {
	if shared := fieldcheck.Shared(func(c Contract) Contract { return c.Clone() }); len(shared) > 0 {
		t.Errorf("Contract.Clone shares %v with the original: copy them in contract/clone.go", shared)
	}
	if shared := fieldcheck.Shared(func(i Identity) Identity { return i.Clone() }); len(shared) > 0 {
		t.Errorf("Identity.Clone shares %v with the original", shared)
	}
	if shared := fieldcheck.Shared(func(c Contract) Contract { return c }); len(shared) == 0 {
		t.Error("a shallow copy of Contract shares nothing: the check walks nothing")
	}
}
