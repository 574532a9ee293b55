package controller

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"runtime/debug"
	"sort"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/expsync/expsync/attest"
	"github.com/expsync/expsync/gitsource"
	"github.com/expsync/expsync/internal/deploy"
)

// Secrets are read when they are used, through the API server directly
// (the manager's APIReader), never through an informer: a controller that
// watched Secrets would hold every Secret of the cluster in memory. The
// keys are those of the tools users already have: Flux's GitRepository for
// Git credentials and verification keys, cosign and Tekton Chains for the
// attestation key, Flux's image-automation-controller for commit signing.
const (
	keyUsername    = "username"
	keyPassword    = "password"
	keyBearerToken = "bearerToken"
	keyIdentity    = "identity"
	keyKnownHosts  = "known_hosts"
	keyCosignKey   = "cosign.key"
	keyCosignPass  = "cosign.password"
	keyGitASC      = "git.asc"
	keyPassphrase  = "passphrase"
	keyForgeToken  = "token"
	// Suffixes of verification and trusted keys, as Flux names them.
	suffixPGP    = ".asc"
	suffixSSH    = ".sshpub"
	suffixPublic = ".pub"
)

// ErrSecret marks a Secret that is missing or lacks what it must hold;
// its message names the Secret and the keys, never a value.
var ErrSecret = errors.New("secret unusable")

type secretError struct{ msg string }

func (e *secretError) Error() string { return e.msg }
func (e *secretError) Is(t error) bool {
	return t == ErrSecret
}

func secretErrorf(format string, args ...any) error {
	return &secretError{msg: fmt.Sprintf(format, args...)}
}

// getSecret reads one Secret of the object's namespace. what says what it
// is for ("Git credentials (spec.secretRef)").
func getSecret(ctx context.Context, r client.Reader, namespace, name, what string) (*corev1.Secret, error) {
	var s corev1.Secret
	err := r.Get(ctx, types.NamespacedName{Namespace: namespace, Name: name}, &s)
	if apierrors.IsNotFound(err) {
		return nil, secretErrorf("%s: Secret %s/%s not found; create it in the repository's namespace", what, namespace, name)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: read Secret %s/%s: %w", what, namespace, name, err)
	}
	return &s, nil
}

// gitAuth turns a Secret with Flux GitRepository keys into credentials
// (deploy.AuthFromSecret: the same reading as serve's, with ca.crt and an
// SSH key's passphrase under password), refusing a Secret with none.
func gitAuth(s *corev1.Secret) (*gitsource.Auth, error) {
	if len(s.Data[keyUsername]) == 0 && len(s.Data[keyPassword]) == 0 && len(s.Data[keyBearerToken]) == 0 && len(s.Data[keyIdentity]) == 0 {
		return nil, secretErrorf("Git credentials (spec.secretRef): Secret %s/%s has none of the keys %s/%s, %s, %s/%s (the keys of Flux's GitRepository); it has %s",
			s.Namespace, s.Name, keyUsername, keyPassword, keyBearerToken, keyIdentity, keyKnownHosts, keyNames(s))
	}
	if len(s.Data[keyPassword]) > 0 && len(s.Data[keyBearerToken]) > 0 {
		return nil, secretErrorf("Git credentials (spec.secretRef): Secret %s/%s has both %s and %s; keep one",
			s.Namespace, s.Name, keyPassword, keyBearerToken)
	}
	return deploy.AuthFromSecret(s.Data), nil
}

// credentialValues are the secret values of a Git credentials Secret, for
// redaction.
func credentialValues(a *gitsource.Auth) []string {
	if a == nil {
		return nil
	}
	var out []string
	for _, v := range []string{a.Password, a.BearerToken, string(a.SSHPrivateKey), a.SSHPassphrase} {
		if v != "" {
			out = append(out, v)
		}
	}
	return out
}

// verifyKeys reads the allowed commit signing keys as deploy reads key
// files: an armored OpenPGP public key under each *.asc key, SSH keys
// (allowed_signers or authorized_keys lines) under each *.sshpub key.
func verifyKeys(s *corev1.Secret) ([]string, error) {
	var texts []string
	for _, k := range sortedKeys(s) {
		v := string(s.Data[k])
		switch {
		case strings.HasSuffix(k, suffixPGP):
			if !strings.Contains(v, "BEGIN PGP PUBLIC KEY") {
				return nil, secretErrorf("verify.secretRef: Secret %s/%s key %s is not an armored OpenPGP public key", s.Namespace, s.Name, k)
			}
			texts = append(texts, v)
		case strings.HasSuffix(k, suffixSSH):
			texts = append(texts, v)
		}
	}
	if len(texts) == 0 {
		return nil, secretErrorf("verify.secretRef: Secret %s/%s holds no key ending in %s (OpenPGP) or %s (SSH); it has %s",
			s.Namespace, s.Name, suffixPGP, suffixSSH, keyNames(s))
	}
	return texts, nil
}

// trustedKeys reads further public keys (PEM, as `expsync keygen` or
// `cosign generate-key-pair` write them) under *.pub.
func trustedKeys(s *corev1.Secret) (attest.Verifiers, error) {
	var out attest.Verifiers
	for _, k := range sortedKeys(s) {
		if !strings.HasSuffix(k, suffixPublic) {
			continue
		}
		pub, err := attest.DecodePublicKey(s.Data[k])
		if err != nil {
			return nil, secretErrorf("trustedKeys: Secret %s/%s key %s: %v", s.Namespace, s.Name, k, err)
		}
		key, err := attest.NewKey(fmt.Sprintf("secret:%s/%s/%s", s.Namespace, s.Name, k), pub)
		if err != nil {
			return nil, secretErrorf("trustedKeys: Secret %s/%s key %s: %v", s.Namespace, s.Name, k, err)
		}
		out = append(out, key)
	}
	if len(out) == 0 {
		return nil, secretErrorf("trustedKeys: Secret %s/%s holds no key ending in %s; it has %s", s.Namespace, s.Name, suffixPublic, keyNames(s))
	}
	return out, nil
}

// signerCache keeps decrypted attestation keys by Secret identity and
// content: decrypting a cosign key costs ~0.1 s of scrypt on purpose, and
// the Secret is read (one GET) at every reconcile that signs. An edited
// Secret has another digest and is decrypted again.
var signerCache sync.Map // string -> *attest.Signer

// decrypting admits one decryption at a time. A cosign key's scrypt (N =
// 2^15, r = 8) allocates 32 MiB for ~0.1 s of CPU: when a fleet's first
// pass met the key of 20 repositories at once, 20 decryptions of the same
// Secret ran side by side and the controller's heap grew by 1.3 GiB
// (BenchmarkControllerFleet). Serialised, a second caller finds the first
// one's result in signerCache, and the scrypt memory in use is one
// decryption's whatever the fleet's size.
var decrypting sync.Mutex

// attestationSigner decrypts cosign.key with cosign.password.
func attestationSigner(s *corev1.Secret) (*attest.Signer, error) {
	pem, ok := s.Data[keyCosignKey]
	if !ok {
		return nil, missingCosignKey(s)
	}
	h := sha256.New()
	h.Write(pem)
	h.Write([]byte{0})
	h.Write(s.Data[keyCosignPass])
	cacheKey := string(s.UID) + "\x00" + string(h.Sum(nil))
	if v, ok := signerCache.Load(cacheKey); ok {
		return v.(*attest.Signer), nil
	}
	decrypting.Lock()
	defer decrypting.Unlock()
	if v, ok := signerCache.Load(cacheKey); ok { // decrypted while this one waited
		return v.(*attest.Signer), nil
	}
	key, err := attest.DecodePrivateKey(pem, func() ([]byte, error) { return s.Data[keyCosignPass], nil })
	if errors.Is(err, attest.ErrWrongPassphrase) {
		return nil, secretErrorf("attestation.secretRef: Secret %s/%s: %s does not open %s (wrong passphrase); put the key's passphrase under %s",
			s.Namespace, s.Name, keyCosignPass, keyCosignKey, keyCosignPass)
	}
	if err != nil {
		return nil, secretErrorf("attestation.secretRef: Secret %s/%s key %s cannot be used with its %s: %v",
			s.Namespace, s.Name, keyCosignKey, keyCosignPass, err)
	}
	signer, err := attest.NewSigner(key)
	if err != nil {
		return nil, secretErrorf("attestation.secretRef: Secret %s/%s key %s: %v", s.Namespace, s.Name, keyCosignKey, err)
	}
	actual, _ := signerCache.LoadOrStore(cacheKey, signer)
	// Give scrypt's memory back now: left to the collector's pace, a few
	// decryptions in a row held ~200 MiB resident during a fleet's first
	// pass. One collection per distinct key, next to ~0.1 s of scrypt.
	debug.FreeOSMemory()
	return actual.(*attest.Signer), nil
}

func missingCosignKey(s *corev1.Secret) error {
	return secretErrorf("attestation.secretRef: Secret %s/%s has no key %s (a cosign private key, as `cosign generate-key-pair k8s://%s/%s` or `expsync keygen` writes it); it has %s",
		s.Namespace, s.Name, keyCosignKey, s.Namespace, s.Name, keyNames(s))
}

// commitSigner reads the results-commit signing key: git.asc (armored
// OpenPGP, as image-automation-controller) or identity (SSH), with an
// optional passphrase (deploy.ParseCommitSigner, as serve reads a key
// file). For an SSH key OwnKey is its authorized_keys line, so
// verification accepts expsync's own results commits.
func commitSigner(s *corev1.Secret) (deploy.CommitSigner, error) {
	pass := string(s.Data[keyPassphrase])
	for _, k := range []string{keyGitASC, keyIdentity} {
		data, ok := s.Data[k]
		if !ok {
			continue
		}
		signer, err := deploy.ParseCommitSigner(data, pass)
		if err != nil {
			return deploy.CommitSigner{}, secretErrorf("commit.signingKey: Secret %s/%s key %s: %v", s.Namespace, s.Name, k, err)
		}
		return signer, nil
	}
	return deploy.CommitSigner{}, secretErrorf("commit.signingKey: Secret %s/%s has neither %s (armored OpenPGP private key) nor %s (SSH private key); it has %s",
		s.Namespace, s.Name, keyGitASC, keyIdentity, keyNames(s))
}

func sortedKeys(s *corev1.Secret) []string {
	keys := make([]string, 0, len(s.Data))
	for k := range s.Data {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// keyNames lists a Secret's keys (never its values) for an error.
func keyNames(s *corev1.Secret) string {
	keys := sortedKeys(s)
	if len(keys) == 0 {
		return "no keys"
	}
	if len(keys) > 10 {
		keys = append(keys[:10], "...")
	}
	return "keys " + strings.Join(keys, ", ")
}

// forgeToken reads the forge's API token (spec.forge.secretRef, key
// token); surrounding white space (a trailing newline of a file the
// Secret was made from) is not part of it.
func forgeToken(s *corev1.Secret) (string, error) {
	token := strings.TrimSpace(string(s.Data[keyForgeToken]))
	if token == "" {
		return "", secretErrorf("forge token (spec.forge.secretRef): Secret %s/%s has no key %s (the forge's API token), or it is blank; it has %s",
			s.Namespace, s.Name, keyForgeToken, keyNames(s))
	}
	return token, nil
}
