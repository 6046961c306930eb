"""Independent checks of a path across a CA key rollover (issue 11): pyhanko-certvalidator
(RFC 5280 path building and validation, revocation from the CRLs given, hard-fail) and Python
cryptography's verifier (`cryptography.x509.verification`, its own path builder; extension
policies relaxed to "permit all", since it is written for the Web PKI profile, and client
verification without an EKU requirement — it checks chaining, signatures, validity, basic
constraints and name chaining, not revocation; it cannot process the residents' critical
certificatePolicies, so it checks the first intermediate's path, where the rollover is).

usage: rollover_verify.py ANCHOR LEAF AT [INTERMEDIATE...] [--crl CRL...]
  AT: unix seconds of the validation time.
prints one line per tool: "<tool>: valid", "<tool>: revoked: …" or "<tool>: invalid: …";
exit 0 if every tool said valid, 1 otherwise.
"""
import asyncio
import datetime
import sys

from asn1crypto import crl as asn1_crl
from asn1crypto import pem, x509 as asn1_x509
from cryptography import x509
from cryptography.x509 import verification as v
from pyhanko_certvalidator import CertificateValidator, ValidationContext
from pyhanko_certvalidator.errors import PathBuildingError, PathValidationError, RevokedError


def der(path):
    data = open(path, "rb").read()
    if pem.detect(data):
        _, _, data = pem.unarmor(data)
    return data


async def pyhanko(anchor, leaf, inters, crls, at):
    ctx = ValidationContext(
        trust_roots=[asn1_x509.Certificate.load(anchor)],
        other_certs=[asn1_x509.Certificate.load(i) for i in inters],
        crls=[asn1_crl.CertificateList.load(c) for c in crls],
        allow_fetching=False,
        revocation_mode="hard-fail" if crls else "soft-fail",
        moment=at,
    )
    try:
        path = await CertificateValidator(
            asn1_x509.Certificate.load(leaf), validation_context=ctx
        ).async_validate_usage(set())
    except RevokedError as e:
        return False, f"revoked: {e}"
    except (PathValidationError, PathBuildingError) as e:
        return False, f"invalid: {e}"
    return True, f"valid ({len(path)} certificates)"


def pyca(anchor, leaf, inters, at):
    store = v.Store([x509.load_der_x509_certificate(anchor)])
    builder = (
        v.PolicyBuilder()
        .store(store)
        .time(at.replace(tzinfo=None))
        .extension_policies(
            ca_policy=v.ExtensionPolicy.permit_all().require_present(
                x509.BasicConstraints, v.Criticality.AGNOSTIC, None
            ),
            ee_policy=v.ExtensionPolicy.permit_all(),
        )
    )
    verifier = builder.build_client_verifier()
    try:
        chain = verifier.verify(
            x509.load_der_x509_certificate(leaf), [x509.load_der_x509_certificate(i) for i in inters]
        )
    except v.VerificationError as e:
        return False, f"invalid: {e}"
    return True, f"valid ({len(chain.chain)} certificates)"


def main():
    args = sys.argv[1:]
    crls = []
    if "--crl" in args:
        i = args.index("--crl")
        crls = [der(p) for p in args[i + 1 :]]
        args = args[:i]
    anchor, leaf = der(args[0]), der(args[1])
    at = datetime.datetime.fromtimestamp(int(args[2]), tz=datetime.timezone.utc)
    inters = [der(p) for p in args[3:]]
    ok = True
    good, said = asyncio.run(pyhanko(anchor, leaf, inters, crls, at))
    print(f"pyhanko-certvalidator: {said}")
    ok &= good
    # cryptography's verifier cannot process a critical certificatePolicies (JPKI's residents'
    # certificates carry one; its extension policies do not accept that OID): it checks the
    # issuing CA's path instead, which is where the rollover is.
    if inters:
        good, said = pyca(anchor, inters[0], inters[1:], at)
        print(f"cryptography (the issuing CA's path): {said}")
    ok &= good
    return 0 if ok else 1


sys.exit(main())
