package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"

	"github.com/spf13/cobra"

	"github.com/expsync/expsync/attest"
)

// keygenOptions is `expsync keygen`: make a signing key pair.
type keygenOptions struct {
	KeyPrefix string
	Type      string
	Force     bool
	// Passphrase returns the passphrase; nil means attest.Passphrase
	// (EXPSYNC_PASSWORD, else a prompt on a terminal, else empty).
	Passphrase func() ([]byte, error)
}

func init() {
	commands = append(commands, func() *cobra.Command {
		o := &keygenOptions{}
		cmd := &cobra.Command{
			Use:   "keygen [--key-prefix P] [--type ecdsa|ed25519|rsa]",
			Short: "Make a key pair for signing attestations (P.key, P.pub)",
			Long: `Make a key pair for signing run attestations: P.key, the private key in
cosign's encrypted format ("ENCRYPTED SIGSTORE PRIVATE KEY", readable by
cosign), and P.pub, the public key reviewers give to ` + "`expsync verify --key`" + `.

The passphrase comes from EXPSYNC_PASSWORD, else a prompt when standard input
is a terminal. Without either the key is written with an empty passphrase
(cosign's convention), which protects nothing: keep such a key in a secret
store.

Exit codes: 0 written, 2 usage (bad --type, files exist without --force).`,
			Args: cobra.NoArgs,
			RunE: func(c *cobra.Command, _ []string) error {
				return o.Exec(c.OutOrStdout(), c.ErrOrStderr())
			},
		}
		f := cmd.Flags()
		f.StringVar(&o.KeyPrefix, "key-prefix", "expsync", "write PREFIX.key and PREFIX.pub")
		f.StringVar(&o.Type, "type", string(attest.KeyECDSA), "key type: ecdsa (P-256), ed25519 or rsa (3072 bits)")
		f.BoolVar(&o.Force, "force", false, "overwrite existing key files")
		return cmd
	})
}

// Exec writes the key pair; out gets what was written, errOut warnings.
func (o *keygenOptions) Exec(out, errOut io.Writer) error {
	kt := attest.KeyType(o.Type)
	if !slices.Contains(attest.KeyTypes, kt) {
		return &exitError{code: 2, err: fmt.Errorf("--type %q: use ecdsa, ed25519 or rsa", o.Type)}
	}
	if o.KeyPrefix == "" {
		return &exitError{code: 2, err: errors.New("--key-prefix must not be empty")}
	}
	keyFile, pubFile := o.KeyPrefix+".key", o.KeyPrefix+".pub"
	if !o.Force {
		for _, p := range []string{keyFile, pubFile} {
			if _, err := os.Stat(p); err == nil {
				return &exitError{code: 2, err: fmt.Errorf("%s exists; pass --force to overwrite it", p)}
			}
		}
	}
	passFn := o.Passphrase
	if passFn == nil {
		passFn = func() ([]byte, error) { return attest.Passphrase("Enter passphrase for the new private key: ", true) }
	}
	pass, err := passFn()
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	if len(pass) == 0 {
		fmt.Fprintf(errOut, "warning: %s is encrypted with an empty passphrase; set %s to protect it\n", keyFile, attest.PasswordEnv)
	}
	priv, err := attest.GenerateKey(kt)
	if err != nil {
		return err
	}
	kp, err := attest.EncodeKeyPair(priv, pass)
	if err != nil {
		return err
	}
	if err := writeNew(keyFile, kp.Private, 0o600, o.Force); err != nil {
		return err
	}
	if err := writeNew(pubFile, kp.Public, 0o644, o.Force); err != nil {
		return err
	}
	s, err := attest.NewSigner(priv)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "Private key written to %s\nPublic key written to %s\nKey ID %s (%s)\n", keyFile, pubFile, s.KeyID(), kt)
	return nil
}

// writeNew writes a file with mode, refusing to replace one unless force.
func writeNew(path string, data []byte, mode fs.FileMode, force bool) error {
	flags := os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	if !force {
		flags |= os.O_EXCL
	}
	f, err := os.OpenFile(path, flags, mode)
	if err != nil {
		return fmt.Errorf("write key file: %w", err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	return f.Close()
}
