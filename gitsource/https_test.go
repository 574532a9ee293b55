package gitsource

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"testing"
	"time"

	"github.com/fluxcd/pkg/gittestserver"
)

// selfSignedCA returns a CA and a server certificate for 127.0.0.1, PEM encoded.
func selfSignedCA(t *testing.T) (caPEM, certPEM, keyPEM []byte) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ca := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	leaf := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		KeyUsage: x509.KeyUsageDigitalSignature}
	leafDER, err := x509.CreateCertificate(rand.Reader, leaf, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(key)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leafDER}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
}

func TestHTTPSWithPrivateCA(t *testing.T) {
	caPEM, certPEM, keyPEM := selfSignedCA(t)
	srv, err := gittestserver.NewTempGitServer()
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(srv.Root())
	srv.Auth(testUser, testPassword)
	if err := srv.StartHTTPS(certPEM, keyPEM, caPEM, "127.0.0.1"); err != nil {
		t.Fatal(err)
	}
	defer srv.StopHTTP()
	bare := srv.Root() + "/exps.git"
	runGit(t, srv.Root(), "init", "-q", "--bare", "-b", "main", "exps.git")
	p := newPeer(t, bare)
	head := p.commit("first", map[string]string{"a.txt": "tls"})
	p.push("main")
	url := srv.HTTPAddress() + "/exps.git"
	mk := func(ca []byte) *Source {
		src, err := New(Repository{URL: url, Auth: &Auth{Username: testUser, Password: testPassword, CABundle: ca},
			Refs: []RefPolicy{{Pattern: "main", Trusted: true}}}, t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		return src
	}
	ctx := testCtx(t)
	src := mk(caPEM)
	if ch, err := src.Poll(ctx); err != nil || len(ch) != 1 || ch[0].New != head {
		t.Fatalf("poll over HTTPS with the CA = %+v, %v", ch, err)
	}
	sn, err := src.Snapshot(ctx, "main", head)
	if err != nil {
		t.Fatal(err)
	}
	sn.Close()
	res, err := src.CommitBack(ctx, CommitRequest{Branch: "main", Files: map[string][]byte{"r.txt": []byte("x")},
		Message: "results", Author: bot}, nil)
	if err != nil || !res.Pushed {
		t.Fatalf("push over HTTPS = %+v, %v", res, err)
	}
	if got := reclone(t, bare, "main").head(t); got != res.Commit {
		t.Errorf("server head %s, want %s", got, res.Commit)
	}
	// Without the CA the certificate is refused, and the error is clear.
	_, err = mk(nil).Poll(ctx)
	var re *RepoError
	if !errors.Is(err, ErrCertificate) || !errors.As(err, &re) {
		t.Fatalf("untrusted certificate: err = %v", err)
	}
	assertNoSecret(t, err, testPassword)
	t.Log(err)
}
