"""What every browser test of the project's pages shares: headless Debian Chromium driven by
Playwright for Python (never `playwright install`), trusting exactly the page's certificate
(an SPKI pin) or, for the mutual-TLS consoles, presenting a party's client certificate; axe-core
injected from the pinned npm package (JPKI_AXE_JS, installed by `cargo xtask browser` / `ci`);
screenshots saved as artefacts; page-load timings for the report.

Import it from a test script that sits next to it (tests/python/).
"""
import json
import os
import pathlib
import subprocess

from playwright.sync_api import sync_playwright  # noqa: F401  (re-exported for the tests)

CHROMIUM = "/usr/bin/chromium"
# The workspace (this file is tests/python/browser.py).
ROOT = pathlib.Path(__file__).resolve().parents[2]
# Without the background-networking flags Chromium keeps trying to reach Google's hosts, which
# this machine's closed network refuses.
FLAGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage",
]


def spki_pin(cert_pem_path):
    """base64(SHA-256(SubjectPublicKeyInfo)) of the first certificate in a PEM file, as
    Chromium's --ignore-certificate-errors-spki-list wants it (computed with openssl)."""
    cmd = (f"openssl x509 -in '{cert_pem_path}' -pubkey -noout | openssl pkey -pubin -outform der"
           " | openssl dgst -sha256 -binary | base64")
    out = subprocess.run(cmd, shell=True, check=True, capture_output=True, text=True).stdout.strip()
    assert len(out) == 44, f"no SPKI hash from {cert_pem_path}"
    return out


def launch(pw, pins=(), client_cert=None, origin=None, storage_state=None, with_axe=True):
    """A browser and a fresh context. `pins`: SPKI hashes the browser accepts for the page's
    server certificate (the window's loopback page). `client_cert`: (cert PEM, key PEM,
    passphrase) presented to `origin` (a mutual-TLS console); then set NODE_EXTRA_CA_CERTS to
    the network CA before Playwright starts, since its client-certificate proxy checks the
    server itself. `storage_state`: a file of cookies saved by an earlier context. `with_axe`:
    add axe-core to every page (leave it out to time page loads)."""
    args = list(FLAGS)
    if pins:
        args.append("--ignore-certificate-errors-spki-list=" + ",".join(pins))
    browser = pw.chromium.launch(executable_path=CHROMIUM, args=args)
    opts = {"locale": "ja-JP", "viewport": {"width": 1200, "height": 900}}
    if storage_state:
        opts["storage_state"] = str(storage_state)
    if client_cert:
        cert, key, passphrase = client_cert
        c = {"origin": origin, "certPath": str(cert), "keyPath": str(key)}
        if passphrase:
            c["passphrase"] = passphrase
        opts["client_certificates"] = [c]
    ctx = browser.new_context(**opts)
    # axe-core is added to every document by the browser itself (an init script, which the
    # pages' content security policy does not govern), so the pages keep their strict CSP.
    if with_axe:
        ctx.add_init_script(path=axe_path())
    return browser, ctx


def axe_path():
    """The pinned axe-core script (JPKI_AXE_JS, or where `cargo xtask browser` puts it)."""
    path = os.environ.get("JPKI_AXE_JS", str(ROOT / "target/npm/node_modules/axe-core/axe.min.js"))
    if not os.path.exists(path):
        raise SystemExit(f"axe-core not found at {path}: run `cargo xtask browser`")
    return path


def csp_violations(page):
    """Collects the page's content-security-policy violations (console errors) into a list."""
    seen = []
    page.on("console", lambda m: seen.append(f"{m.text} at {m.location} on {page.url}")
            if "Content Security Policy" in m.text else None)
    return seen


def artefacts():
    """Where screenshots go: JPKI_ARTEFACTS or target/browser-artefacts."""
    d = pathlib.Path(os.environ.get("JPKI_ARTEFACTS", str(ROOT / "target/browser-artefacts")))
    d.mkdir(parents=True, exist_ok=True)
    return d


def shot(page, name):
    """Saves a full-page screenshot `name`.png and returns its path."""
    p = artefacts() / f"{name}.png"
    page.screenshot(path=str(p), full_page=True)
    return p


def axe(page, impacts=("serious", "critical")):
    """Runs axe-core (WCAG 2.x A and AA rules) on the page; returns the violations of the given
    impacts as [(id, impact, help, [targets])]. axe-core is in every page of a context made by
    `launch`."""
    result = page.evaluate(
        "async () => await axe.run(document, {runOnly: {type: 'tag', values: "
        "['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']}})")
    out = []
    for v in result["violations"]:
        if v["impact"] in impacts:
            out.append((v["id"], v["impact"], v["help"], [n["target"] for n in v["nodes"]]))
    return out


def load_ms(page):
    """The last navigation's time from request start to the load event (ms), from the
    browser's Navigation Timing."""
    t = page.evaluate("() => JSON.stringify(performance.getEntriesByType('navigation')[0])")
    t = json.loads(t)
    return t["loadEventEnd"] - t["requestStart"]


def percentile(values, p):
    """The p-th percentile (nearest rank) of a non-empty list."""
    v = sorted(values)
    k = max(0, min(len(v) - 1, int(round(p / 100 * len(v) + 0.5)) - 1))
    return v[k]
