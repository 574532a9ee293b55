package controller

import (
	"context"
	"errors"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"

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
	// attestation is the Secret of spec.attestation.secretRef (nil with a
	// KMS key): decrypted when the engine first signs (deploy.Open loads
	// keys in the background). trusted are spec.trustedKeys' keys.
	attestation *corev1.Secret
	trusted     attest.Verifiers
	// forgeToken is spec.forge's API token ("" without spec.forge).
	forgeToken string
	versions   string
}

// Secrets are the secret values to keep out of logs: the Git credentials'
// and the forge token.
func (c *credentials) Secrets() []string {
	return append(c.Credentials.Secrets(), c.forgeToken)
}

// readCredentials reads the Secrets a repository needs: Git credentials,
// verification keys, the commit signing key, the attestation key and the
// trusted keys. They are read when the engine is built and again once
// --secrets-ttl passed (a few GETs, never a watch), at once on a spec
// change or reconcile.fluxcd.io/requestedAt: a rotated or revoked key
// rebuilds the engine within the TTL, or at once when the operator asks.
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
	if a := obj.Spec.Attestation.SecretRef; a != nil {
		s, err := getSecret(ctx, r, ns, a.Name, "attestation key (spec.attestation.secretRef)")
		if err != nil {
			return nil, err
		}
		if len(s.Data[keyCosignKey]) == 0 {
			return nil, missingCosignKey(s)
		}
		c.attestation = s
		versions = append(versions, "attestation="+s.ResourceVersion)
	}
	if tk := obj.Spec.TrustedKeys; tk != nil {
		s, err := getSecret(ctx, r, ns, tk.Name, "trusted keys (spec.trustedKeys)")
		if err != nil {
			return nil, err
		}
		if c.trusted, err = trustedKeys(s); err != nil {
			return nil, err
		}
		versions = append(versions, "trusted="+s.ResourceVersion)
	}
	if f := obj.Spec.Forge; f != nil {
		s, err := getSecret(ctx, r, ns, f.SecretRef.Name, "forge token (spec.forge.secretRef)")
		if err != nil {
			return nil, err
		}
		if c.forgeToken, err = forgeToken(s); err != nil {
			return nil, err
		}
		versions = append(versions, "forge="+s.ResourceVersion)
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

// signingKey says how deploy.Open loads the attestation key: key names it
// (in messages and the trusted key list); load, when not nil, decrypts the
// Secret's cosign.key (a KMS URI is loaded by deploy itself).
func signingKey(obj *v1alpha1.ExperimentRepository, c *credentials) (key string, load func(context.Context) (*attest.Signer, error), err error) {
	switch a := obj.Spec.Attestation; {
	case c.attestation != nil:
		s := c.attestation
		return fmt.Sprintf("secret:%s/%s/%s", s.Namespace, s.Name, keyCosignKey),
			func(context.Context) (*attest.Signer, error) { return attestationSigner(s) }, nil
	case a.KMSKey != "":
		return a.KMSKey, nil, nil
	default:
		return "", nil, errors.New("spec.attestation names no key: set secretRef (cosign.key/cosign.password) or kmsKey")
	}
}

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
