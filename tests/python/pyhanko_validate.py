"""Independent check of our PKI with pyhanko-certvalidator: validate LEAF to the trust anchor
ROOT (with INTERMEDIATE available), fetching revocation information from the URLs in the
certificates (our validator's OCSP responder and CRLs), in hard-fail mode.

usage: pyhanko_validate.py LEAF INTERMEDIATE ROOT
prints "valid" or "revoked: ..." or "invalid: ..."; exit 0 for valid, 1 otherwise.
"""
import asyncio
import sys

from asn1crypto import pem, x509
from pyhanko_certvalidator import CertificateValidator, ValidationContext
from pyhanko_certvalidator.errors import PathValidationError, RevokedError


def load(path):
    data = open(path, "rb").read()
    if pem.detect(data):
        _, _, data = pem.unarmor(data)
    return x509.Certificate.load(data)


async def main():
    leaf, inter, root = (load(p) for p in sys.argv[1:4])
    ctx = ValidationContext(
        trust_roots=[root], other_certs=[inter], allow_fetching=True, revocation_mode="hard-fail"
    )
    try:
        path = await CertificateValidator(leaf, validation_context=ctx).async_validate_usage(set())
    except RevokedError as e:
        print(f"revoked: {e}")
        return 1
    except PathValidationError as e:
        print(f"invalid: {e}")
        return 1
    print(f"valid: path of {len(path)} certificates, OCSP responses used: {len(ctx.retrieve_ocsps(leaf, inter)) if hasattr(ctx, 'retrieve_ocsps') else 'n/a'}")
    return 0


sys.exit(asyncio.run(main()))
