"""The municipal window's pages in headless Chromium (tests/tests/window_web.rs runs it, one
phase at a time, between its own checks of the card, the CA and the register).

    window_flow.py PHASE STATE_FILE [ARGS...]

Environment: JPKI_WINDOW_URL (https://127.0.0.1:PORT), JPKI_WINDOW_CERT (the window's PEM, for
the SPKI pin), JPKI_CLERK_ID, JPKI_CLERK_PASSPHRASE, JPKI_AXE_JS, JPKI_ARTEFACTS.
The browser's cookies are kept in STATE_FILE between phases. Each phase prints one JSON line.
Every interaction of the issuance flow is made with the keyboard (Tab, typing, Space, Enter).
"""
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import browser  # noqa: E402
from playwright.sync_api import sync_playwright  # noqa: E402

URL = os.environ["JPKI_WINDOW_URL"]
PIN = browser.spki_pin(os.environ["JPKI_WINDOW_CERT"])
LOADS = []
AXE = {}


def check(cond, what):
    if not cond:
        raise SystemExit(f"FAILED: {what}")


def visit(page, path, name=None):
    page.goto(URL + path)
    loaded(page, name)


def submit(page, act, name=None):
    """Does `act` (a key press or click that submits a form) and waits for the next page."""
    with page.expect_navigation():
        act()
    loaded(page, name)


def loaded(page, name=None):
    page.wait_for_load_state("load")
    LOADS.append(browser.load_ms(page))
    if name:
        browser.shot(page, f"window-{name}")
        AXE[name] = browser.axe(page)
        check(not AXE[name], f"axe on {name}: {AXE[name]}")


def focus(page, selector):
    """Moves the keyboard focus to `selector` with Tab alone (at most 60 presses)."""
    for _ in range(60):
        page.keyboard.press("Tab")
        if page.evaluate("(s) => document.activeElement === document.querySelector(s)", selector):
            return
    raise SystemExit(f"FAILED: Tab never reached {selector}")


def type_into(page, selector, text):
    focus(page, selector)
    page.keyboard.type(text)


def sign_in(page, clerk, passphrase):
    visit(page, "/signin", "signin")
    page.fill("input[name=clerk]", clerk)
    page.fill("input[name=passphrase]", passphrase)
    submit(page, lambda: page.keyboard.press("Enter"))


def find(page, code):
    visit(page, "/")
    page.fill("input[name=resident_code]", code)
    submit(page, lambda: page.keyboard.press("Enter"))


def wait_job(page, timeout=60):
    """Waits for the job page to finish; returns (state, code, steps seen while running)."""
    seen = []
    deadline = time.time() + timeout
    while time.time() < deadline:
        # One read of the fragment: the steps done and the state as htmx last swapped them in.
        done, state, code = page.evaluate(
            "() => { const s = document.querySelector('#state');"
            " return [[...document.querySelectorAll('ol.progress li.done')].map(e => e.dataset.step),"
            " s && s.dataset.state, s && (s.dataset.code || null)]; }")
        for s in done:
            if s not in seen:
                seen.append(s)
        if state and state != "running":
            return state, code, seen
        time.sleep(0.05)
    raise SystemExit("FAILED: the job did not finish")


def issue_with_keyboard(page, mode, auth_pin, sign_pin, no_signature=False):
    """Fills the card form of the resident's page with the keyboard alone and submits it."""
    # A radio group is one Tab stop; the arrow keys choose within it.
    focus(page, "input[name=mode]:checked")
    for _ in range(4):
        if page.is_checked(f"input[name=mode][value={mode}]"):
            break
        page.keyboard.press("ArrowDown")
    check(page.is_checked(f"input[name=mode][value={mode}]"), f"could not choose {mode} with the keyboard")
    type_into(page, "input[name=auth_pin]", auth_pin)
    if sign_pin is not None:
        type_into(page, "input[name=sign_pin]", sign_pin)
    checked = page.is_checked("input[name=no_signature]")
    if checked != no_signature:
        focus(page, "input[name=no_signature]")
        page.keyboard.press("Space")
    focus(page, "form[action='/card/issue'] button[type=submit]")
    submit(page, lambda: page.keyboard.press("Enter"))
    check("/card/jobs/" in page.url, f"no job page: {page.url} {page.inner_text('main')[:300]}")


def register(page, name, dob, shot):
    """Registers a resident through the form; returns the code the page shows."""
    visit(page, "/residents/new", shot)
    page.fill("input[name=name]", name)
    page.fill("input[name=date_of_birth]", dob)
    page.select_option("select[name=sex]", "2")
    page.fill("input[name=address]", "東京都千代田区千代田1-1")
    submit(page, lambda: page.click("form[action='/residents/register'] button[type=submit]"),
           "resident" if shot else None)
    check("住民を登録しました" in page.content(), f"registration failed: {page.inner_text('main')[:300]}")
    code = page.eval_on_selector("dl.record dd", "e => e.textContent").strip()
    check(len(code) == 11 and code.isdigit(), f"no resident code on the page: {code}")
    check(code not in page.url, "the resident code is in the URL")
    return code


def main():
    phase, state_file = sys.argv[1], sys.argv[2]
    args = sys.argv[3:]
    out = {}
    with sync_playwright() as pw:
        saved = state_file if os.path.exists(state_file) else None
        b, ctx = browser.launch(pw, pins=[PIN], storage_state=saved, with_axe=(phase != "timing"))
        page = ctx.new_page()
        violations = browser.csp_violations(page)
        clerk, passphrase = os.environ["JPKI_CLERK_ID"], os.environ["JPKI_CLERK_PASSPHRASE"]

        if phase == "signin-register":
            other_clerk = args[0]
            # A page without a session goes to the sign-in page.
            page.goto(URL + "/")
            check(page.url.endswith("/signin"), f"not sent to sign-in: {page.url}")
            # A wrong passphrase: refused, with the tries left.
            sign_in(page, clerk, "not-the-passphrase")
            check("あと4回" in page.content(), f"wrong passphrase not refused with tries left: {page.inner_text('body')[:500]}")
            # A clerk of another municipality cannot sign in at this window.
            sign_in(page, other_clerk, passphrase)
            check("当窓口の市区町村の職員のものではありません" in page.content(), "other municipality's clerk admitted")
            sign_in(page, clerk, passphrase)
            check(page.url == URL + "/", f"sign-in failed: {page.url} {page.content()[:400]}")
            visit(page, "/", "home")
            cookies = ctx.cookies()
            s = [c for c in cookies if c["name"] == "__Host-jpki-session"]
            check(len(s) == 1 and s[0]["secure"] and s[0]["httpOnly"] and s[0]["sameSite"] == "Strict",
                  f"session cookie: {cookies}")
            # A form post without the CSRF token is refused, and so is a cross-site one.
            r = page.request.post(URL + "/residents/find", form={"resident_code": "12345678901"})
            check(r.status == 403, f"post without CSRF token: {r.status}")
            token = page.get_attribute("input[name=csrf]", "value")
            r = page.request.post(URL + "/residents/find", form={"csrf": token, "resident_code": "12345678901"},
                                  headers={"Origin": "https://evil.example"})
            check(r.status == 403, f"cross-site post: {r.status}")
            # The CSP forbids inline code: the page has none and says so in its header.
            r = page.request.get(URL + "/")
            csp = r.headers.get("content-security-policy", "")
            check("script-src 'self'" in csp and "unsafe" not in csp, f"CSP: {csp}")
            out["resident"] = register(page, args[1], args[2], "register")

        elif phase == "register":
            out["resident"] = register(page, args[0], args[1], None)

        elif phase == "issue":
            code, auth_pin, sign_pin = args[0], args[1], args[2]
            find(page, code)
            check(code not in page.url, "the resident code is in the URL")
            mode = args[3] if len(args) > 3 else "issue"
            no_signature = len(args) > 4 and args[4] == "nosig"
            issue_with_keyboard(page, mode, auth_pin, None if no_signature else sign_pin, no_signature)
            state, err, seen = wait_job(page)
            browser.shot(page, f"window-job-{state}")
            out.update(state=state, code=err, steps=seen, text=page.inner_text("#state"))
            if state == "done":
                AXE["job"] = browser.axe(page)
                check(not AXE["job"], f"axe on the job page: {AXE['job']}")

        elif phase == "renew-wrong-pin":
            code = args[0]
            results = []
            for _ in range(3):
                find(page, code)
                issue_with_keyboard(page, "renew", "9999", None)
                state, err, _ = wait_job(page)
                results.append([state, err, page.inner_text("#state")])
            browser.shot(page, "window-pin-blocked")
            out["attempts"] = results

        elif phase == "pin-reset":
            code, which, new = args[0], args[1], args[2]
            find(page, code)
            page.click("details:has(form[action='/card/pin-reset']) summary")
            page.select_option("select[name=pin]", which)
            page.fill("input[name=new_pin]", new)
            submit(page, lambda: page.click("form[action='/card/pin-reset'] button[type=submit]"))
            state, err, _ = wait_job(page)
            out.update(state=state, code=err, text=page.inner_text("#state"))

        elif phase == "card-status":
            visit(page, "/card/status", "card-status")
            el = page.query_selector("[data-lifecycle]")
            out["lifecycle"] = el.get_attribute("data-lifecycle") if el else None
            out["text"] = page.inner_text("main")

        elif phase == "move-out":
            code, dest = args[0], args[1]
            find(page, code)
            page.click("details:has(input[value=move_out]) summary")
            page.fill("input[name=destination]", dest)
            submit(page, lambda: page.click("form:has(input[value=move_out]) button[type=submit]"), "moved-out")
            out["text"] = page.inner_text("main")
            # Moved out, the resident is no longer this window's: the disclosure is refused.
            submit(page, lambda: page.click("form[action='/residents/disclosure'] button[type=submit]"))
            out["disclosure_after"] = page.inner_text("main")

        elif phase == "disclosure":
            find(page, args[0])
            submit(page, lambda: page.click("form[action='/residents/disclosure'] button[type=submit]"), "disclosure")
            out["rows"] = page.eval_on_selector_all("tbody tr", "rs => rs.length")

        elif phase == "timing":
            # Page loads without axe-core in the page: each page ten times, after one warm-up.
            LOADS.clear()
            code = args[0]
            for i in range(11):
                for path in ["/", "/residents/new", "/residents/move-in", "/card/queue"]:
                    visit(page, path)
                find(page, code)
                if i == 0:
                    LOADS.clear()

        elif phase == "signout":
            visit(page, "/")
            submit(page, lambda: page.click("form.signout button"))
            check(page.url.endswith("/signin"), f"not signed out: {page.url}")
            page.goto(URL + "/")
            check(page.url.endswith("/signin"), "the session still works after sign-out")

        else:
            raise SystemExit(f"unknown phase {phase}")

        check(not violations, f"content security policy violations: {violations}")
        ctx.storage_state(path=state_file)
        b.close()
    out["loads_ms"] = LOADS
    print(json.dumps(out, ensure_ascii=False))


if __name__ == "__main__":
    main()
