"""NIST PKITS through `jpki verify cert`.

Certificates and CRLs: PyPI cryptography-vectors (x509/PKITS_data). Expected results and
per-case inputs: pyhanko-certvalidator's tests/fixtures/nist_pkits/pkits.json (246 cases).
Every case runs at 2022-05-01 (as pyhanko's suite does), with the trust anchor
TrustAnchorRootCertificate, the case's other certificates as intermediates, and every CRL the
case names plus the trust anchor's CRL. A case passes when the exit status is 0 for an
expected-valid case and 1 for an expected error. Prints pass counts per section and every
failure; exits 0 (a report, not a gate: the note lists the known failures).

usage: pkits.py JPKI DATA_DIR PKITS_JSON [--gate N]   (--gate: fail if fewer than N pass)
"""
import collections
import json
import os
import subprocess
import sys

SECTIONS = {
    "4.1": "signature verification", "4.2": "validity periods", "4.3": "name chaining",
    "4.4": "basic certificate revocation", "4.5": "self-issued certificates",
    "4.6": "verifying basic constraints", "4.7": "key usage", "4.8": "certificate policies",
    "4.9": "require explicit policy", "4.10": "policy mappings", "4.11": "inhibit policy mapping",
    "4.12": "inhibit any policy", "4.13": "name constraints", "4.14": "distribution points",
    "4.15": "delta-CRLs", "4.16": "private certificate extensions",
}


def main():
    jpki, data, spec = sys.argv[1:4]
    gate = int(sys.argv[5]) if len(sys.argv) > 5 and sys.argv[4] == "--gate" else None
    certs, crls = os.path.join(data, "certs"), os.path.join(data, "crls")
    cases = json.load(open(spec))
    per = collections.defaultdict(lambda: [0, 0])
    failures = []
    for c in cases:
        sec = f"{c['id'][0]}.{int(c['id'][1:3])}"
        args = [jpki, "verify", "cert", os.path.join(certs, c["cert"]),
                "--anchor", os.path.join(certs, "TrustAnchorRootCertificate.crt"),
                "--at", "2022-05-01T00:00:00Z",
                "--crl", os.path.join(crls, "TrustAnchorRootCRL.crl")]
        for o in c.get("path_intermediates", c.get("other_certs", [])):
            args += ["--intermediate", os.path.join(certs, o)]
        for r in c.get("crls", []):
            args += ["--crl", os.path.join(crls, r)]
        p = c.get("params", {})
        for pol in p.get("user_initial_policy_set", []):
            args += ["--policy", pol]
        if p.get("initial_explicit_policy"):
            args.append("--explicit-policy")
        if p.get("initial_policy_mapping_inhibit"):
            args.append("--inhibit-policy-mapping")
        if p.get("initial_any_policy_inhibit"):
            args.append("--inhibit-any-policy")
        r = subprocess.run(args, capture_output=True, text=True)
        want = 1 if "error" in c else 0
        per[sec][1] += 1
        if r.returncode == want:
            per[sec][0] += 1
        else:
            why = (r.stdout + r.stderr).strip().replace("\n", " ")[:200]
            failures.append(f"{c['id']} {c['name']}: expected {'invalid' if want else 'valid'}, got exit {r.returncode}: {why}")
    total = sum(v[0] for v in per.values())
    print("| PKITS section | passed | cases |")
    print("|---|---:|---:|")
    for sec in sorted(per, key=lambda s: [int(x) for x in s.split(".")]):
        ok, n = per[sec]
        print(f"| {sec} {SECTIONS.get(sec, '')} | {ok} | {n} |")
    print(f"| total | {total} | {len(cases)} |")
    if failures:
        print("\nfailures:")
        for f in failures:
            print("  " + f)
    if gate is not None and total < gate:
        print(f"\nPKITS gate: {total} passed, at least {gate} required")
        return 1
    return 0


sys.exit(main())
