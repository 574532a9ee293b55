// Command kmsplugin is a sigstore KMS CLI plugin (sigstore-kms-<scheme>) for
// tests: it stands in for a cloud KMS by keeping an ECDSA key in the file
// named by $EXPSYNC_TEST_KMS_KEY, and speaks sigstore's plugin protocol
// through sigstore's own handler package, exactly as a real plugin would.
package main

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"

	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/sigstore/sigstore/pkg/signature/kms/cliplugin/handler"
)

type fileKMS struct {
	signature.SignerVerifier
	key *ecdsa.PrivateKey
}

func (f fileKMS) CreateKey(context.Context, string) (crypto.PublicKey, error) {
	return nil, errors.New("CreateKey is not supported by the test plugin")
}

func (f fileKMS) CryptoSigner(context.Context, func(error)) (crypto.Signer, crypto.SignerOpts, error) {
	return f.key, crypto.SHA256, nil
}

func (f fileKMS) SupportedAlgorithms() []string { return []string{"ecdsa-p256-sha256"} }
func (f fileKMS) DefaultAlgorithm() string      { return "ecdsa-p256-sha256" }

func load() (fileKMS, error) {
	data, err := os.ReadFile(os.Getenv("EXPSYNC_TEST_KMS_KEY"))
	if err != nil {
		return fileKMS{}, err
	}
	block, _ := pem.Decode(data)
	if block == nil {
		return fileKMS{}, errors.New("key file is not PEM")
	}
	key, err := x509.ParseECPrivateKey(block.Bytes)
	if err != nil {
		return fileKMS{}, err
	}
	sv, err := signature.LoadECDSASignerVerifier(key, crypto.SHA256)
	if err != nil {
		return fileKMS{}, err
	}
	return fileKMS{SignerVerifier: sv, key: key}, nil
}

func main() {
	args, err := handler.GetPluginArgs(os.Args)
	if err != nil {
		_ = handler.WriteErrorResponse(os.Stdout, err)
		return
	}
	impl, err := load()
	if err != nil {
		_ = handler.WriteErrorResponse(os.Stdout, fmt.Errorf("test KMS: %w", err))
		return
	}
	_, _ = handler.Dispatch(os.Stdout, os.Stdin, args, impl)
}
