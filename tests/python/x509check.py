"""An independent verifier for the e2e tests: pyca/cryptography (its wheel's own OpenSSL), run
with the pinned virtual environment that `cargo xtask oracles` installs (target/oracles/venv).

    x509check.py cert ISSUER CERT              CERT's signature checks with ISSUER's key
    x509check.py chain ROOT INT LEAF UNIXTIME  path validation LEAF -> INT -> anchor ROOT
    x509check.py crl ISSUER CRL [SERIAL_HEX]   the CRL's signature; SERIAL listed if given
    x509check.py ocsp-fetch URL ISSUER CERT OUT   POSTs an OCSP request (SHA-1 CertID), saves
                                                  the response DER to OUT
    x509check.py ocsp ISSUER RESPONSE          the response: successful, signed by a responder
                                               certificate it carries, which ISSUER issued for
                                               id-kp-OCSPSigning; prints the certificate status

Files are DER or PEM. Prints one line starting with "OK" and exits 0, or "FAIL: ..." and 1.
"""

import datetime
import sys
import urllib.request

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID
from cryptography.x509.verification import Criticality, ExtensionPolicy, PolicyBuilder, Store


def read(path):
    with open(path, "rb") as f:
        return f.read()


def cert(path):
    b = read(path)
    return x509.load_pem_x509_certificate(b) if b.startswith(b"-----") else x509.load_der_x509_certificate(b)


def main(a):
    mode = a[0]
    if mode == "cert":
        issuer, c = cert(a[1]), cert(a[2])
        c.verify_directly_issued_by(issuer)
        print("OK", c.signature_algorithm_oid._name, c.subject.rfc4514_string())
    elif mode == "chain":
        root, inter, leaf = cert(a[1]), cert(a[2]), cert(a[3])
        at = datetime.datetime.fromtimestamp(int(a[4]), datetime.timezone.utc)
        # The JPKI end-entity profiles mark certificatePolicies critical (jpki.md §1.2), which
        # the Web PKI defaults do not account for; everything else is the default policy.
        ee = ExtensionPolicy.permit_all().may_be_present(x509.CertificatePolicies, Criticality.AGNOSTIC, None)
        verifier = (
            PolicyBuilder()
            .store(Store([root]))
            .time(at)
            .extension_policies(ca_policy=ExtensionPolicy.webpki_defaults_ca(), ee_policy=ee)
            .build_client_verifier()
        )
        chain = verifier.verify(leaf, [inter]).chain
        print("OK", len(chain), "certificates,", inter.signature_algorithm_oid._name)
    elif mode == "crl":
        issuer, b = cert(a[1]), read(a[2])
        crl = x509.load_pem_x509_crl(b) if b.startswith(b"-----") else x509.load_der_x509_crl(b)
        if not crl.is_signature_valid(issuer.public_key()):
            raise ValueError("the CRL signature does not verify")
        line = f"OK {crl.signature_algorithm_oid._name} entries {len(crl)}"
        if len(a) > 3:
            if crl.get_revoked_certificate_by_serial_number(int(a[3], 16)) is None:
                raise ValueError(f"serial {a[3]} is not on the CRL")
            line += f", {a[3]} revoked"
        print(line)
    elif mode == "ocsp-fetch":
        url, issuer, c, out = a[1], cert(a[2]), cert(a[3]), a[4]
        req = ocsp.OCSPRequestBuilder().add_certificate(c, issuer, hashes.SHA1()).build()
        http = urllib.request.Request(
            url, data=req.public_bytes(serialization.Encoding.DER),
            headers={"Content-Type": "application/ocsp-request"},
        )
        with urllib.request.urlopen(http, timeout=10) as r, open(out, "wb") as f:
            f.write(r.read())
        print("OK fetched", out)
    elif mode == "ocsp":
        issuer, resp = cert(a[1]), ocsp.load_der_ocsp_response(read(a[2]))
        if resp.response_status != ocsp.OCSPResponseStatus.SUCCESSFUL:
            raise ValueError(f"response status {resp.response_status}")
        responder = next(c for c in resp.certificates)
        responder.verify_directly_issued_by(issuer)
        eku = responder.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        if ExtendedKeyUsageOID.OCSP_SIGNING not in eku:
            raise ValueError("the responder certificate lacks id-kp-OCSPSigning")
        responder.public_key().verify(resp.signature, resp.tbs_response_bytes)
        print("OK", resp.signature_algorithm_oid._name, "status", resp.certificate_status.name)
    else:
        raise ValueError(f"unknown mode {mode}")


if __name__ == "__main__":
    try:
        main(sys.argv[1:])
    except Exception as e:  # an oracle's verdict: any failure is a rejection
        print(f"FAIL: {type(e).__name__}: {e}")
        sys.exit(1)
