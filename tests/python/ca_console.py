"""The CA operators' console in headless Debian Chromium (driven by tests/tests/ca_console.rs).

Signs in with the operator's client certificate, opens every console page (several rounds, for
the page-load timings), takes a screenshot of each and runs axe-core on it (no serious or
critical violations allowed), revokes a certificate by serial with a reason using the keyboard
alone (Tab, arrow keys, typing, Enter), publishes the CRLs from the CRL page, and checks that a
browser presenting a window's client certificate gets the 403 page.

Arguments: URL SERIAL. Environment: JPKI_CONSOLE_OP_CERT / _OP_KEY, JPKI_CONSOLE_WINDOW_CERT /
_WINDOW_KEY (PEM files), JPKI_CONSOLE_KEY_PASSPHRASE (the key files' passphrase if they are
encrypted; never argv),
NODE_EXTRA_CA_CERTS (the network CA, for Playwright's client-certificate proxy), JPKI_AXE_JS,
JPKI_ARTEFACTS. Prints `load_ms PATH MS` lines and the p50/p99 to stderr, and a JSON summary to
stdout. Exits non-zero on the first failed check.
"""
import json
import os
import sys

from browser import axe, launch, load_ms, percentile, shot, sync_playwright

# (path, heading, screenshot name, text the page must show given what the Rust side set up:
# sign-root re-keyed under its name and pending, a validator enrolled, a clean audit trail).
PAGES = [
    ("/console", "概要・CA世代", "overview", "NewWithOld（新しい鍵を旧鍵が認証）"),
    ("/console/crl", "CRL", "crl", "CRLを公開する"),
    ("/console/responders", "OCSP応答者証明書", "responders", "OCSP応答者証明書（有効期限の遅い順）"),
    ("/console/certificates", "証明書検索", "certificates", "シリアル番号（16進）"),
    ("/console/audit", "監査証跡の検証", "audit", "検証に成功しました。"),
    ("/console/rotation", "ローテーション", "rotation", "g2：完了（5 / 5 手順"),
]
ROUNDS = 5
REASON = "affiliation-changed"
CAUSE = "記載事項の変更の届出（ブラウザ試験）"


def fail(msg):
    print(f"FAIL: {msg}", file=sys.stderr)
    sys.exit(1)


def h1(page):
    return page.locator("h1").inner_text().strip()


def check_axe(page, name, found):
    v = axe(page)
    if v:
        found[name] = v


def tab_to(page, element_id, limit=40):
    """Presses Tab until the element with `element_id` has the focus."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        if page.evaluate("() => document.activeElement && document.activeElement.id") == element_id:
            return
    fail(f"Tab never reached #{element_id}")


def main():
    url, serial = sys.argv[1], sys.argv[2]
    passphrase = os.environ.get("JPKI_CONSOLE_KEY_PASSPHRASE") or None
    op = (os.environ["JPKI_CONSOLE_OP_CERT"], os.environ["JPKI_CONSOLE_OP_KEY"], passphrase)
    window = (os.environ["JPKI_CONSOLE_WINDOW_CERT"], os.environ["JPKI_CONSOLE_WINDOW_KEY"], passphrase)
    times, violations, shots = [], {}, []
    with sync_playwright() as pw:
        browser, ctx = launch(pw, client_cert=op, origin=url)
        page = ctx.new_page()
        # Every page, several rounds: the first one checked (title, axe) and photographed.
        for rnd in range(ROUNDS):
            search = (f"/console/certificates?serial={serial}", "証明書検索", "search", "有効（失効していません）")
            for path, title, name, shows in PAGES + [search]:
                r = page.goto(url + path, wait_until="load")
                if r is None or r.status != 200:
                    fail(f"{path}: status {r.status if r else None}")
                ms = load_ms(page)
                # The server's share: request start to the first byte of the answer.
                ttfb = page.evaluate(
                    "() => { const t = performance.getEntriesByType('navigation')[0];"
                    " return t.responseStart - t.requestStart; }")
                print(f"load_ms {path} {ms:.1f} (first byte after {ttfb:.1f})", file=sys.stderr)
                if rnd == 0:
                    if h1(page) != title:
                        fail(f"{path}: heading {h1(page)!r}, expected {title!r}")
                    if shows not in page.locator("main").inner_text():
                        fail(f"{path}: does not show {shows!r}")
                    if "urn:jpki:operator:" not in page.locator("header").inner_text():
                        fail(f"{path}: the operator is not shown")
                    check_axe(page, name, violations)
                    shots.append(str(shot(page, f"ca-console-{name}")))
        # Page loads, timed in a context without axe-core in the pages.
        timing, tctx = launch(pw, client_cert=op, origin=url, with_axe=False)
        tpage = tctx.new_page()
        for _ in range(ROUNDS):
            for path, *_ in PAGES + [search]:
                tpage.goto(url + path, wait_until="load")
                times.append(load_ms(tpage))
        timing.close()
        # Keyboard only: search by serial, pick the reason, give the cause, revoke.
        page.goto(url + "/console/certificates")
        tab_to(page, "serial")
        page.keyboard.type(serial)
        with page.expect_navigation():
            page.keyboard.press("Enter")
        if "?serial=" not in page.url:
            fail(f"the search did not run: {page.url}")
        tab_to(page, "reason")
        for _ in range(10):
            if page.evaluate("() => document.activeElement.value") == REASON:
                break
            page.keyboard.press("ArrowDown")
        else:
            fail(f"the arrow keys never selected {REASON}")
        tab_to(page, "cause")
        page.keyboard.type(CAUSE)
        tab_to(page, "revoke")
        with page.expect_navigation():
            page.keyboard.press("Enter")
        text = page.content()
        if h1(page) != "証明書を失効させました" or serial not in text:
            fail(f"no revocation result: {h1(page)!r}")
        if "記載事項の変更（affiliationChanged）" not in text or CAUSE not in text:
            fail("the result does not show the reason and the cause")
        check_axe(page, "revoked", violations)
        shots.append(str(shot(page, "ca-console-revoked")))

        # Publish the CRLs from the CRL page (the button, by keyboard too).
        page.goto(url + "/console/crl")
        page.locator("button", has_text="CRLを公開する").focus()
        with page.expect_navigation():
            page.keyboard.press("Enter")
        if h1(page) != "CRLを公開しました":
            fail(f"no publication result: {h1(page)!r}")
        published = page.locator("tbody tr").count()
        check_axe(page, "crl-published", violations)
        shots.append(str(shot(page, "ca-console-crl-published")))
        browser.close()

        # A window's certificate: the 403 page, nothing else.
        browser, ctx = launch(pw, client_cert=window, origin=url)
        page = ctx.new_page()
        r = page.goto(url + "/console", wait_until="load")
        window_status = r.status if r else None
        if window_status != 403 or "アクセスが拒否されました" not in page.content():
            fail(f"a window got {window_status}: {h1(page)!r}")
        if "CA運用者専用" not in page.content():
            fail("the 403 page does not say who may use the console")
        check_axe(page, "forbidden", violations)
        shots.append(str(shot(page, "ca-console-403")))
        browser.close()

    p50, p99 = percentile(times, 50), percentile(times, 99)
    print(f"load_ms samples={len(times)} p50={p50:.1f} p99={p99:.1f} max={max(times):.1f}", file=sys.stderr)
    if violations:
        for name, v in violations.items():
            for vid, impact, help_, targets in v:
                print(f"axe {name}: {impact} {vid}: {help_} at {targets}", file=sys.stderr)
        fail(f"axe found serious or critical violations on {sorted(violations)}")
    print(json.dumps({
        "load_ms": times, "p50": p50, "p99": p99, "revoked": serial, "reason": REASON,
        "published": published, "window_status": window_status, "screenshots": shots,
    }))


if __name__ == "__main__":
    main()
