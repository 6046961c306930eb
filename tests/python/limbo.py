"""x509-limbo through `jpki verify cert`: the rfc5280, pathlen, crl, pathological and cve
namespaces. A case's trusted certificates are the anchors, its untrusted intermediates the
intermediates, its CRLs (when it has any) the revocation source (--no-revocation otherwise),
its validation time the time of interest. Expected SUCCESS = exit 0, FAILURE = exit 1. Peer
names, EKU and key-usage expectations are TLS-verifier checks that `jpki verify cert` (a path
validator) does not make; cases that fail only for that reason still count as failures and
are listed. Prints the pass rate per namespace and every mismatch.

usage: limbo.py JPKI LIMBO_JSON [--gate N]
"""
import ast
import collections
import json
import os
import subprocess
import sys
import tempfile

NAMESPACES = ("rfc5280", "pathlen", "crl", "pathological", "cve")


def pems(v):
    if isinstance(v, str):
        v = ast.literal_eval(v) if v.startswith("[") else [v]
    return list(v)


def main():
    jpki, spec = sys.argv[1:3]
    gate = int(sys.argv[4]) if len(sys.argv) > 4 and sys.argv[3] == "--gate" else None
    cases = [c for c in json.load(open(spec))["testcases"] if c["id"].split("::")[0] in NAMESPACES]
    per = collections.defaultdict(lambda: [0, 0])
    mismatches = []
    with tempfile.TemporaryDirectory() as d:
        for i, c in enumerate(cases):
            def write(name, blocks):
                p = os.path.join(d, f"{i}-{name}.pem")
                open(p, "w").write("\n".join(blocks))
                return p
            args = [jpki, "verify", "cert", write("peer", pems(c["peer_certificate"]))]
            args += ["--anchor", write("anchors", pems(c["trusted_certs"]))]
            inter = pems(c.get("untrusted_intermediates") or [])
            if inter:
                args += ["--intermediate", write("intermediates", inter)]
            crls = pems(c.get("crls") or [])
            if crls:
                for k, crl in enumerate(crls):
                    args += ["--crl", write(f"crl{k}", [crl])]
            else:
                args.append("--no-revocation")
            if c.get("validation_time"):
                args += ["--at", c["validation_time"].replace("+00:00", "Z")]
            r = subprocess.run(args, capture_output=True, text=True)
            want = 0 if c["expected_result"] == "SUCCESS" else 1
            ns = c["id"].split("::")[0]
            per[ns][1] += 1
            if r.returncode == want:
                per[ns][0] += 1
            else:
                why = (r.stdout + r.stderr).strip().replace("\n", " ")[:160]
                mismatches.append(f"{c['id']}: expected {c['expected_result']}, got exit {r.returncode}: {why}")
    total = sum(v[0] for v in per.values())
    n = sum(v[1] for v in per.values())
    print("| x509-limbo namespace | passed | cases |")
    print("|---|---:|---:|")
    for ns in NAMESPACES:
        print(f"| {ns} | {per[ns][0]} | {per[ns][1]} |")
    print(f"| total | {total} ({100.0 * total / max(n, 1):.1f}%) | {n} |")
    if mismatches:
        print("\nmismatches:")
        for m in mismatches:
            print("  " + m)
    if gate is not None and total < gate:
        print(f"\nx509-limbo gate: {total} passed, at least {gate} required")
        return 1
    return 0


sys.exit(main())
