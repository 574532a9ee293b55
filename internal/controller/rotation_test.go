package controller

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/expsync/expsync/api/v1alpha1"
	"github.com/expsync/expsync/attest"
	"github.com/expsync/expsync/tree"
)

// TestAttestationKeyRotation: replacing the attestation Secret's key takes
// effect at the next reconcile the operator requests (requestedAt reads the
// Secrets at once, before --secrets-ttl; a new resourceVersion rebuilds
// the engine): new runs are signed with the
// new key; runs signed with the old key stay done (not rerun) when the old
// public key is listed in spec.trustedKeys.
func TestAttestationKeyRotation(t *testing.T) {
	f := newFixture(t, "rotation")
	f.lab.Commit("one run", squareSweep("1"))
	f.create(time.Hour)
	p := f.controller()
	waitFor(t, f.c, f.key, "Ready with the first run", 2*time.Minute, func(o *v1alpha1.ExperimentRepository) bool {
		return kstatusReady(o) && len(o.Status.Refs) == 1 && o.Status.Refs[0].Runs.Succeeded == 1
	})
	oldKey := f.pub

	// The new key in the same Secret; the old public key trusted.
	priv, err := attest.GenerateKey(attest.KeyECDSA)
	if err != nil {
		t.Fatal(err)
	}
	pair, err := attest.EncodeKeyPair(priv, []byte("new-pw"))
	if err != nil {
		t.Fatal(err)
	}
	newKey, err := attest.NewKey("new", priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	old := &corev1.Secret{}
	if err := f.c.Get(ctx, client.ObjectKey{Namespace: f.key.Namespace, Name: "signing-key"}, old); err != nil {
		t.Fatal(err)
	}
	trusted := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: f.key.Namespace, Name: "trusted"},
		Data: map[string][]byte{"old.pub": old.Data["cosign.pub"]}}
	if err := f.c.Create(ctx, trusted); err != nil {
		t.Fatal(err)
	}
	old.Data = map[string][]byte{"cosign.key": pair.Private, "cosign.password": []byte("new-pw"), "cosign.pub": pair.Public}
	if err := f.c.Update(ctx, old); err != nil {
		t.Fatal(err)
	}
	f.update(func(o *v1alpha1.ExperimentRepository) {
		o.Spec.TrustedKeys = &meta.LocalObjectReference{Name: "trusted"}
	})
	f.lab.Pull()
	second := strings.TrimSpace(f.lab.Commit("a second run", squareSweep("1, 2")))
	f.update(func(o *v1alpha1.ExperimentRepository) {
		o.Annotations = map[string]string{meta.ReconcileRequestAnnotation: time.Now().String()}
	})
	waitFor(t, f.c, f.key, "Ready with both runs", 2*time.Minute, func(o *v1alpha1.ExperimentRepository) bool {
		return kstatusReady(o) && len(o.Status.Refs) == 1 && o.Status.Refs[0].Runs.Succeeded == 2 &&
			o.Status.Refs[0].ObservedCommit == "main@sha1:"+second
	})
	p.stop()

	// x=1 was not rerun (signed by the old key only), x=2 is signed by
	// the new key only.
	dir := f.lab.Clone()
	root, err := tree.NewDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	entries, err := os.ReadDir(filepath.Join(dir, "results", "square"))
	if err != nil {
		t.Fatal(err)
	}
	byKey := map[string]int{}
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		folder := filepath.ToSlash(filepath.Join("results", "square", e.Name()))
		verify := func(k *attest.Key) bool {
			_, err := attest.VerifyTreeFolder(root, folder, attest.FolderOptions{Keys: attest.Verifiers{k}, RunID: e.Name(), Experiment: "square"})
			return err == nil
		}
		switch o, n := verify(oldKey), verify(newKey); {
		case o && !n:
			byKey["old"]++
		case n && !o:
			byKey["new"]++
		default:
			t.Errorf("%s: verifies with old key %v, new key %v", folder, o, n)
		}
	}
	if byKey["old"] != 1 || byKey["new"] != 1 {
		t.Errorf("run folders by signing key %v: want the first run under the old key (not rerun) and the new run under the new key", byKey)
	}
}
