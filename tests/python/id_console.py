"""The identity operator console (issue 12) in headless Debian Chromium, driven by Playwright.
Run by tests/tests/id_console.rs against a real national node that has halted a source.

With the operator's client certificate: opens every console page (ten rounds, timing each
load), screenshots each, runs axe-core (no serious or critical violation), then resumes the
halted source with the keyboard alone (Tab to its 再開 button, Enter) and waits until 連携状況
shows it running. With an agency's certificate: the 403 page. Prints one JSON line with the
page-load times (ms) last.

Environment: JPKI_CONSOLE_URL, JPKI_HALTED_SOURCE, JPKI_OP_CERT/KEY, JPKI_AGENCY_CERT/KEY,
NODE_EXTRA_CA_CERTS (the network CA), JPKI_AXE_JS, JPKI_ARTEFACTS.
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import browser  # noqa: E402
from browser import sync_playwright  # noqa: E402

URL = os.environ["JPKI_CONSOLE_URL"]
SOURCE = os.environ["JPKI_HALTED_SOURCE"]
PAGES = [
    ("/console/", "連携状況", "id-console-heads"),
    ("/console/halted", "停止中の送信元", "id-console-halted"),
    ("/console/lag", "遅延", "id-console-lag"),
    ("/console/pools", "コードプール", "id-console-pools"),
    ("/console/statistics", "提供統計", "id-console-statistics"),
]


def credential(cert, key):
    """(cert, key, passphrase) for Playwright: the key is an unencrypted copy in the test's
    temporary directory (our key files use scrypt beyond Node's default memory limit)."""
    return (cert, key, None)


def check(cond, what):
    if not cond:
        raise SystemExit(f"FAILED: {what}")


def axe_page(b, cred):
    """A page in a second context of browser `b` presenting `cred`, with axe-core added by the
    browser (an init script; the pages' CSP stays in force). The pages themselves are loaded,
    timed and driven in a context without it."""
    cert, key, passphrase = cred
    c = {"origin": URL, "certPath": cert, "keyPath": key}
    if passphrase:
        c["passphrase"] = passphrase
    ctx = b.new_context(locale="ja-JP", viewport={"width": 1200, "height": 900}, client_certificates=[c])
    ctx.add_init_script(path=browser.axe_path())
    return ctx.new_page()


def axe_check(apage, path):
    r = apage.goto(URL + path)
    check(r is not None, f"{path}: loaded for axe")
    bad = browser.axe(apage)
    check(not bad, f"{path}: axe violations {bad}")


def operator_pages(pw, times):
    cred = credential(os.environ["JPKI_OP_CERT"], os.environ["JPKI_OP_KEY"])
    b, ctx = browser.launch(pw, client_cert=cred, origin=URL, with_axe=False)
    page = ctx.new_page()
    violations = browser.csp_violations(page)
    apage = axe_page(b, cred)
    for rnd in range(10):
        for path, title, name in PAGES:
            r = page.goto(URL + path)
            check(r is not None and r.status == 200, f"{path}: status {r and r.status}")
            check(page.locator("h1").inner_text().startswith(title), f"{path}: heading {title}")
            check("default-src 'none'" in r.headers.get("content-security-policy", ""), f"{path}: CSP")
            times.append((path, browser.load_ms(page)))
            if rnd == 0:
                browser.shot(page, name)
                axe_check(apage, path)

    # The halted source, with its divergence.
    page.goto(URL + "/console/halted")
    row = page.locator("tbody tr", has=page.locator(f"th:text-is('{SOURCE}')"))
    check(row.count() == 1, f"{SOURCE} listed as halted")
    check("prev_hash" in row.inner_text(), "the divergence's reason shown")

    # Keyboard only: Tab until the source's 再開 button has the focus, then Enter.
    label = f"送信元 {SOURCE} を再開"
    for _ in range(60):
        page.keyboard.press("Tab")
        focused = page.evaluate("() => document.activeElement ? document.activeElement.textContent : ''")
        if focused.strip() == label:
            break
    else:
        raise SystemExit(f"FAILED: Tab never reached the button {label!r}")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    check(page.url.endswith(f"/console/halted?resumed={SOURCE}"), f"redirected after the resume: {page.url}")
    check(f"送信元 {SOURCE} の停止を解除しました" in page.locator("main").inner_text(), "the resume confirmed")
    browser.shot(page, "id-console-resumed")
    axe_check(apage, f"/console/halted?resumed={SOURCE}")

    # 連携状況 shows it running (the node pulls again within its interval).
    for _ in range(100):
        page.goto(URL + "/console/")
        row = page.locator("tbody tr", has=page.locator(f"th:text-is('{SOURCE}')")).first
        if row.count() and "稼働中" in row.inner_text():
            break
        page.wait_for_timeout(200)
    else:
        raise SystemExit(f"FAILED: {SOURCE} never shown running after the resume")
    browser.shot(page, "id-console-running")
    check(not violations, f"CSP violations: {violations}")
    b.close()


def agency_refused(pw):
    cred = credential(os.environ["JPKI_AGENCY_CERT"], os.environ["JPKI_AGENCY_KEY"])
    b, ctx = browser.launch(pw, client_cert=cred, origin=URL, with_axe=False)
    page = ctx.new_page()
    r = page.goto(URL + "/console/")
    check(r is not None and r.status == 403, f"agency: status {r and r.status}")
    check("アクセスできません" in page.locator("main").inner_text(), "agency: the 403 page")
    browser.shot(page, "id-console-refused")
    apage = axe_page(b, cred)
    apage.goto(URL + "/console/")
    bad = browser.axe(apage)
    check(not bad, f"403 page: axe violations {bad}")
    b.close()


def main():
    times = []
    with sync_playwright() as pw:
        operator_pages(pw, times)
        agency_refused(pw)
    ms = [t for _, t in times]
    per_page = {}
    for path, t in times:
        per_page.setdefault(path, []).append(round(t, 1))
    print(json.dumps({
        "loads": len(ms),
        "p50": round(browser.percentile(ms, 50), 1),
        "p99": round(browser.percentile(ms, 99), 1),
        "max": round(max(ms), 1),
        "per_page": per_page,
    }, ensure_ascii=False))


if __name__ == "__main__":
    main()
