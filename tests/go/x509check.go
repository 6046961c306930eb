// x509check: an independent verifier for the e2e tests, built on Go's standard library only
// (crypto/x509, which verifies ML-DSA signatures from Go 1.27). Run with the pinned toolchain
// that `cargo xtask oracles` installs (target/oracles/venv/bin/go), GOPROXY=off.
//
//	x509check cert ISSUER CERT              CERT's signature checks with ISSUER's key
//	x509check chain ROOT INT LEAF UNIXTIME  x509.Verify: LEAF through INT to the anchor ROOT
//	                                        (INT: one file, or several joined by commas)
//	x509check crl ISSUER CRL                the CRL's signature checks with ISSUER's key
//	x509check ocsp RESPONDER RESPONSE       the BasicOCSPResponse's signature (RFC 6960
//	                                        §4.2.1) checks with RESPONDER's key
//
// Files are DER or PEM. Prints one line starting with "OK" and exits 0, or prints the error
// and exits 1.
package main

import (
	"crypto/x509"
	"encoding/asn1"
	"encoding/pem"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

func read(path string) []byte {
	b, err := os.ReadFile(path)
	if err != nil {
		fail(err)
	}
	if p, _ := pem.Decode(b); p != nil {
		return p.Bytes
	}
	return b
}

func cert(path string) *x509.Certificate {
	c, err := x509.ParseCertificate(read(path))
	if err != nil {
		fail(fmt.Errorf("%s: %w", path, err))
	}
	return c
}

func fail(err error) {
	fmt.Println("FAIL:", err)
	os.Exit(1)
}

// The parts of an OCSPResponse (RFC 6960 §4.2.1) that carry the signature.
type ocspResponse struct {
	Status asn1.Enumerated
	Bytes  struct {
		Type     asn1.ObjectIdentifier
		Response []byte
	} `asn1:"explicit,tag:0"`
}

type basicResponse struct {
	TBS       asn1.RawValue
	Algorithm struct {
		Algorithm  asn1.ObjectIdentifier
		Parameters asn1.RawValue `asn1:"optional"`
	}
	Signature asn1.BitString
	Certs     asn1.RawValue `asn1:"explicit,tag:0,optional"`
}

var oidMLDSA65 = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 3, 18}

func main() {
	a := os.Args[1:]
	if len(a) < 3 {
		fail(fmt.Errorf("usage: x509check cert|chain|crl|ocsp FILES"))
	}
	switch a[0] {
	case "cert":
		issuer, c := cert(a[1]), cert(a[2])
		if err := c.CheckSignatureFrom(issuer); err != nil {
			fail(err)
		}
		fmt.Println("OK", c.SignatureAlgorithm, c.Subject)
	case "chain":
		if len(a) != 5 {
			fail(fmt.Errorf("chain ROOT INT LEAF UNIXTIME"))
		}
		roots, ints := x509.NewCertPool(), x509.NewCertPool()
		roots.AddCert(cert(a[1]))
		for _, p := range strings.Split(a[2], ",") {
			ints.AddCert(cert(p))
		}
		at, err := strconv.ParseInt(a[4], 10, 64)
		if err != nil {
			fail(err)
		}
		chains, err := cert(a[3]).Verify(x509.VerifyOptions{
			Roots: roots, Intermediates: ints, CurrentTime: time.Unix(at, 0),
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
		})
		if err != nil {
			fail(err)
		}
		fmt.Println("OK", len(chains[0]), "certificates,", chains[0][1].SignatureAlgorithm)
	case "crl":
		issuer := cert(a[1])
		crl, err := x509.ParseRevocationList(read(a[2]))
		if err != nil {
			fail(err)
		}
		if err := crl.CheckSignatureFrom(issuer); err != nil {
			fail(err)
		}
		fmt.Println("OK", crl.SignatureAlgorithm, "entries", len(crl.RevokedCertificateEntries))
	case "ocsp":
		responder := cert(a[1])
		var r ocspResponse
		if _, err := asn1.Unmarshal(read(a[2]), &r); err != nil {
			fail(fmt.Errorf("OCSPResponse: %w", err))
		}
		var b basicResponse
		if _, err := asn1.Unmarshal(r.Bytes.Response, &b); err != nil {
			fail(fmt.Errorf("BasicOCSPResponse: %w", err))
		}
		if !b.Algorithm.Algorithm.Equal(oidMLDSA65) || len(b.Algorithm.Parameters.FullBytes) != 0 {
			fail(fmt.Errorf("signatureAlgorithm %v is not id-ml-dsa-65 without parameters", b.Algorithm.Algorithm))
		}
		if err := responder.CheckSignature(x509.MLDSA65, b.TBS.FullBytes, b.Signature.RightAlign()); err != nil {
			fail(err)
		}
		fmt.Println("OK", x509.MLDSA65, "response signed by", responder.Subject)
	default:
		fail(fmt.Errorf("unknown mode %q", a[0]))
	}
}
