// Command certgen writes a self-signed CA and a serving certificate signed by
// it, for the admission webhook of the local development cluster:
//
//	certgen --dir .kwok/certs [--hosts 127.0.0.1,localhost] [--days 365]
//
// It writes ca.crt, tls.crt and tls.key (the names controller-runtime's
// webhook server reads from its --cert-dir). When the three files already
// exist, parse, match each other, cover every requested host and stay valid
// for at least another day, it leaves them alone, so running it on every
// dev-up keeps the caBundle registered with the apiserver stable.
//
// Standard library only: no openssl on the machine is needed.
package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"
)

const (
	caFile   = "ca.crt"
	certFile = "tls.crt"
	keyFile  = "tls.key"
)

func main() {
	dir := flag.String("dir", ".kwok/certs", "directory to write ca.crt, tls.crt and tls.key into")
	hosts := flag.String("hosts", "127.0.0.1,localhost", "comma-separated IP addresses and DNS names the serving certificate is valid for")
	days := flag.Int("days", 365, "validity of newly generated certificates, in days")
	force := flag.Bool("force", false, "regenerate even when valid files exist")
	flag.Parse()

	hostList := splitHosts(*hosts)
	if len(hostList) == 0 {
		fatalf("--hosts is empty")
	}
	if *days < 2 {
		fatalf("--days must be at least 2")
	}

	if !*force {
		if err := checkExisting(*dir, hostList, time.Now().Add(24*time.Hour)); err == nil {
			fmt.Printf("certgen: %s: existing certificates are valid, keeping them\n", *dir)
			return
		} else if !errors.Is(err, os.ErrNotExist) {
			fmt.Printf("certgen: %s: regenerating: %v\n", *dir, err)
		}
	}

	caPEM, certPEM, keyPEM, err := generate(hostList, time.Now(), time.Duration(*days)*24*time.Hour)
	if err != nil {
		fatalf("generate: %v", err)
	}
	if err := os.MkdirAll(*dir, 0o755); err != nil {
		fatalf("%v", err)
	}
	// The key first and the CA last: a reader that sees a new ca.crt also
	// sees the matching serving pair.
	for _, f := range []struct {
		name string
		data []byte
		mode os.FileMode
	}{
		{keyFile, keyPEM, 0o600},
		{certFile, certPEM, 0o644},
		{caFile, caPEM, 0o644},
	} {
		if err := writeFileAtomic(filepath.Join(*dir, f.name), f.data, f.mode); err != nil {
			fatalf("%v", err)
		}
	}
	fmt.Printf("certgen: wrote %s, %s, %s to %s for %s\n", caFile, certFile, keyFile, *dir, strings.Join(hostList, ","))
}

func fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "certgen: "+format+"\n", args...)
	os.Exit(1)
}

func splitHosts(s string) []string {
	var out []string
	for _, h := range strings.Split(s, ",") {
		if h = strings.TrimSpace(h); h != "" {
			out = append(out, h)
		}
	}
	return out
}

// checkExisting returns nil when dir holds a CA, a serving certificate signed
// by it that covers every host and is valid until at least notAfter, and the
// serving certificate's private key. An error wrapping os.ErrNotExist means
// some file is missing.
func checkExisting(dir string, hosts []string, notAfter time.Time) error {
	caPEM, err := os.ReadFile(filepath.Join(dir, caFile))
	if err != nil {
		return err
	}
	certPEM, err := os.ReadFile(filepath.Join(dir, certFile))
	if err != nil {
		return err
	}
	keyPEM, err := os.ReadFile(filepath.Join(dir, keyFile))
	if err != nil {
		return err
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return fmt.Errorf("%s/%s: %w", certFile, keyFile, err)
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return fmt.Errorf("%s: %w", certFile, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return fmt.Errorf("%s: no certificate", caFile)
	}
	block, _ := pem.Decode(caPEM)
	ca, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return fmt.Errorf("%s: %w", caFile, err)
	}
	for _, c := range []*x509.Certificate{ca, leaf} {
		if time.Now().Before(c.NotBefore) || notAfter.After(c.NotAfter) {
			return fmt.Errorf("%q expires %s", c.Subject.CommonName, c.NotAfter.Format(time.RFC3339))
		}
	}
	for _, h := range hosts {
		if _, err := leaf.Verify(x509.VerifyOptions{
			DNSName:   h,
			Roots:     pool,
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		}); err != nil {
			return fmt.Errorf("%s for %s: %w", certFile, h, err)
		}
	}
	return nil
}

// generate returns PEM encoded CA certificate, serving certificate and
// serving key.
func generate(hosts []string, now time.Time, validity time.Duration) (caPEM, certPEM, keyPEM []byte, err error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, err
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "sluice-dev-ca", Organization: []string{"sluice development"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(validity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, nil, nil, err
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, nil, nil, err
	}

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: hosts[0], Organization: []string{"sluice development"}},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(validity),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, nil, nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, nil, err
	}
	return pemBytes("CERTIFICATE", caDER), pemBytes("CERTIFICATE", der), pemBytes("PRIVATE KEY", keyDER), nil
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		fatalf("serial: %v", err)
	}
	return n
}

func pemBytes(typ string, der []byte) []byte {
	var b bytes.Buffer
	_ = pem.Encode(&b, &pem.Block{Type: typ, Bytes: der})
	return b.Bytes()
}

func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
