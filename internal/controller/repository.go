package controller

import (
	"context"
	"fmt"
	"strings"
	"text/template"
	"time"

	"github.com/expsync/expsync/api/v1alpha1"
	"github.com/expsync/expsync/attest"
	"github.com/expsync/expsync/gitsource"
	"github.com/expsync/expsync/internal/deploy"
	"github.com/expsync/expsync/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// credentials are what an ExperimentRepository's Secrets hold, read at one
// moment, in the shape serve's configuration gives them (deploy).
// versions names each Secret's resourceVersion: a change of any rebuilds
// the repository's engine.
type credentials struct {
	deploy.Credentials
	commitSigner deploy.CommitSigner
	versions     string
}

// readCredentials reads the Secrets a repository's Git side needs: Git
// credentials, verification keys and the commit signing key. The
// attestation key is read when a statement is signed (see keysFor).
func readCredentials(ctx context.Context, r client.Reader, obj *v1alpha1.ExperimentRepository) (*credentials, error) {
	c := &credentials{}
	var versions []string
	ns := obj.Namespace
	if ref := obj.Spec.SecretRef; ref != nil {
		s, err := getSecret(ctx, r, ns, ref.Name, "Git credentials (spec.secretRef)")
		if err != nil {
			return nil, err
		}
		if c.Auth, err = gitAuth(s); err != nil {
			return nil, err
		}
		versions = append(versions, "git="+s.ResourceVersion)
	}
	if ck := obj.Spec.Commit; ck != nil && ck.SigningKey != nil {
		s, err := getSecret(ctx, r, ns, ck.SigningKey.Name, "commit signing key (spec.commit.signingKey)")
		if err != nil {
			return nil, err
		}
		if c.commitSigner, err = commitSigner(s); err != nil {
			return nil, err
		}
		versions = append(versions, "commit="+s.ResourceVersion)
	}
	if v := obj.Spec.Verify; v != nil {
		s, err := getSecret(ctx, r, ns, v.SecretRef.Name, "verification keys (spec.verify.secretRef)")
		if err != nil {
			return nil, err
		}
		if c.CommitKeys, err = verifyKeys(s); err != nil {
			return nil, err
		}
		versions = append(versions, "verify="+s.ResourceVersion)
	}
	c.versions = strings.Join(versions, ",")
	return c, nil
}

// repositoryConfig is the spec as serve's configuration would say it.
func repositoryConfig(obj *v1alpha1.ExperimentRepository) deploy.RepositoryConfig {
	rc := deploy.RepositoryConfig{URL: obj.Spec.URL, AllowHTTP: obj.Spec.AllowHTTP}
	for _, r := range obj.Spec.Refs {
		rc.Refs = append(rc.Refs, deploy.RefConfig{Pattern: r.Pattern, Trusted: r.Trusted, ResultsBranch: r.ResultsBranch})
	}
	if v := obj.Spec.Verify; v != nil {
		rc.Verify = &deploy.VerifyConfig{Required: v.Required}
		for _, f := range v.From {
			rc.Verify.From = append(rc.Verify.From, string(f))
		}
	}
	return rc
}

// gitRepository is the spec as gitsource reads it, assembled by the same
// code as serve's entries (deploy.RepositoryConfig.Repository); controller
// mode refuses file:// URLs and local paths (a user's object must not read
// the controller's file system).
func gitRepository(obj *v1alpha1.ExperimentRepository, c *credentials) (gitsource.Repository, error) {
	repo, err := repositoryConfig(obj).Repository(c.Credentials, c.commitSigner.OwnKey)
	if err != nil {
		return repo, err
	}
	repo.URLPolicy.ControllerMode = true
	if t := obj.Spec.Timeout; t != nil && t.Duration > 0 {
		repo.Limits.Timeout = t.Duration
	}
	return repo, nil
}

// checkSpec finds what the schema cannot: a problem only a spec change
// fixes (the object is then Stalled).
func checkSpec(obj *v1alpha1.ExperimentRepository) error {
	if err := gitsource.ValidateURL(obj.Spec.URL, gitsource.URLPolicy{ControllerMode: true, AllowHTTP: obj.Spec.AllowHTTP}); err != nil {
		return fmt.Errorf("spec.url: %w", err)
	}
	for i, r := range obj.Spec.Refs {
		if err := reconcile.CheckResultsBranch(r.Pattern, r.ResultsBranch); err != nil {
			return fmt.Errorf("spec.refs[%d]: %w", i, err)
		}
	}
	if c := obj.Spec.Commit; c != nil && c.MessageTemplate != "" {
		if _, err := messageTemplate(c.MessageTemplate); err != nil {
			return fmt.Errorf("spec.commit.messageTemplate: %w", err)
		}
	}
	return nil
}

// messageTemplate parses the results commit message template.
func messageTemplate(text string) (func(reconcile.CommitSummary) (string, error), error) {
	tmpl, err := template.New("message").Option("missingkey=error").Parse(text)
	if err != nil {
		return nil, err
	}
	// Execute once on a sample so a template naming a field that does not
	// exist fails now, not at the first commit.
	var b strings.Builder
	if err := tmpl.Execute(&b, reconcile.CommitSummary{Experiments: []reconcile.ExperimentSummary{{}}}); err != nil {
		return nil, err
	}
	return func(s reconcile.CommitSummary) (string, error) {
		var b strings.Builder
		err := tmpl.Execute(&b, s)
		return b.String(), err
	}, nil
}

// keysFor loads the attestation signer and the trusted keys when the
// engine signs or verifies: the Secrets are read again when the last read
// is older than keysTTL (a rotated or revoked key takes effect within it),
// and a cosign key is decrypted only when its bytes changed.
func keysFor(r client.Reader, obj *v1alpha1.ExperimentRepository, ttl time.Duration) reconcile.Keys {
	ns, spec := obj.Namespace, obj.Spec.DeepCopy()
	var (
		mu      = make(chan struct{}, 1)
		at      time.Time
		signer  *attest.Signer
		trusted attest.Verifiers
		lastErr error
	)
	load := func() (*attest.Signer, attest.Verifiers, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		var s *attest.Signer
		switch a := spec.Attestation; {
		case a.SecretRef != nil:
			sec, err := getSecret(ctx, r, ns, a.SecretRef.Name, "attestation key (spec.attestation.secretRef)")
			if err != nil {
				return nil, nil, err
			}
			if s, err = attestationSigner(sec); err != nil {
				return nil, nil, err
			}
		case a.KMSKey != "":
			var err error
			if s, err = attest.LoadSigner(ctx, a.KMSKey); err != nil {
				return nil, nil, fmt.Errorf("attestation key (spec.attestation.kmsKey): %w", err)
			}
		default:
			return nil, nil, fmt.Errorf("spec.attestation names no key")
		}
		own, err := attest.NewKey("attestation", s.Public())
		if err != nil {
			return nil, nil, err
		}
		keys := attest.Verifiers{own}
		if tk := spec.TrustedKeys; tk != nil {
			sec, err := getSecret(ctx, r, ns, tk.Name, "trusted keys (spec.trustedKeys)")
			if err != nil {
				return nil, nil, err
			}
			more, err := trustedKeys(sec)
			if err != nil {
				return nil, nil, err
			}
			keys = append(keys, more...)
		}
		return s, keys, nil
	}
	return func() (*attest.Signer, attest.Verifiers, error) {
		mu <- struct{}{}
		defer func() { <-mu }()
		if time.Since(at) < ttl && (signer != nil || lastErr != nil) {
			if lastErr != nil {
				return nil, nil, lastErr
			}
			return signer, trusted, nil
		}
		s, keys, err := load()
		at = time.Now()
		if err != nil {
			lastErr = signingKeyError{err}
			return nil, nil, lastErr
		}
		signer, trusted, lastErr = s, keys, nil
		return signer, trusted, nil
	}
}

// signingKeyError marks an unusable key as reconcile.ErrSigningKey, so the
// engine stops signing (finished runs stay in the run cache).
type signingKeyError struct{ err error }

func (e signingKeyError) Error() string   { return e.err.Error() }
func (e signingKeyError) Unwrap() []error { return []error{reconcile.ErrSigningKey, e.err} }

// refOrder maps a ref to the index of the first spec.refs pattern it
// matches (the status lists refs in that order).
func refOrder(obj *v1alpha1.ExperimentRepository) func(ref string) int {
	policies := make([]gitsource.RefPolicy, len(obj.Spec.Refs))
	for i, r := range obj.Spec.Refs {
		policies[i] = gitsource.RefPolicy{Pattern: r.Pattern}
	}
	return func(ref string) int {
		for i, p := range policies {
			if p.Match(ref) {
				return i
			}
		}
		return len(policies)
	}
}
