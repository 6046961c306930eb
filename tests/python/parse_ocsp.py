"""Python `cryptography` parses OCSP responses: prints one line per DER file given,
"<file>: <response status> [<certificate status>]"; exits 1 if any does not parse."""
import sys

from cryptography.x509 import ocsp

bad = 0
for path in sys.argv[1:]:
    try:
        r = ocsp.load_der_ocsp_response(open(path, "rb").read())
        line = f"{path}: {r.response_status.name}"
        if r.response_status == ocsp.OCSPResponseStatus.SUCCESSFUL:
            line += f" {r.certificate_status.name} serial={r.serial_number:x}"
        print(line)
    except Exception as e:  # noqa: BLE001 - any failure is the finding
        print(f"{path}: does not parse: {e}")
        bad = 1
sys.exit(bad)
