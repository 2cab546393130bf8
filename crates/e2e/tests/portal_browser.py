"""Drives the administration portal in headless Chromium (the Browser of browser_rp.py: the
cloud's TLS key pinned with --ignore-certificate-errors-spki-list, no blanket bypass).

Reads one JSON spec on stdin: {"portal": "https://HOST:PORT/TENANT/portal", "server_cert",
"screenshot_dir", "chromedriver", "axe" (the path of axe-core's axe.min.js), "admin":
{"username", "password"}, "none_user": {...}, "setting": {"key", "bad", "good"}}. Every page
it sees (the sign-in pages, each portal page, the pages of a change) is checked with axe-core;
its serious and critical violations are reported under "axe". Signs in as the admin through the sign-in pages, visits
every page at 1280 and at 390 px wide (screenshot + visible text), changes a setting through
its form (a refused value first), signs out and visits the dashboard again, then signs in as
a user without a role. Prints one JSON line with everything seen. Diagnostics go to stderr.
"""
import json
import os
import sys
import tempfile
import shutil

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from browser_rp import Browser, log  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402

PAGES = ["", "users", "domains", "apps", "agents", "sync", "settings", "signins", "audit"]
WIDTHS = [1280, 390]


def text(driver):
    return driver.find_element(By.TAG_NAME, "body").text


def width(driver, w):
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": w, "height": 900, "deviceScaleFactor": 1, "mobile": w < 600},
    )


def sign_in(browser, portal, who, out=None):
    d = browser.driver
    d.get(portal + "/")
    browser.wait(lambda x: x.find_elements(By.ID, "username"), "the username page")
    if out is not None:
        axe(d, out, "sign-in: username")
    d.find_element(By.ID, "username").send_keys(who["username"])
    d.find_element(By.ID, "next").click()
    browser.wait(lambda x: x.find_elements(By.ID, "password"), "the password page")
    if out is not None:
        axe(d, out, "sign-in: password")
    d.find_element(By.ID, "password").send_keys(who["password"])
    d.find_element(By.ID, "signin").click()
    browser.wait(
        lambda x: x.find_elements(By.ID, "signout") and "/callback" not in x.current_url,
        "a portal page",
    )


AXE_RUN = """
const done = arguments[arguments.length - 1];
axe.run(document, {resultTypes: ['violations']}).then(r => done(r.violations.map(v => ({
  id: v.id, impact: v.impact, help: v.help,
  nodes: v.nodes.slice(0, 3).map(n => n.target.join(' '))
})))).catch(e => done([{id: 'axe-error', impact: 'critical', help: String(e), nodes: []}]));
"""


def axe(d, out, what):
    """Runs axe-core on the page shown; records its serious and critical violations."""
    d.execute_script(AXE_SOURCE[0])
    d.set_script_timeout(30)
    found = d.execute_async_script(AXE_RUN)
    out["axe_pages"].append(what)
    for v in found:
        if v.get("impact") in ("serious", "critical"):
            out["axe"].append({"page": what, **v})


AXE_SOURCE = [""]


def shot(d, shots, name):
    path = os.path.join(shots, name + ".png")
    d.save_screenshot(path)
    return path


def main():
    spec = json.loads(sys.stdin.readline())
    shots = spec["screenshot_dir"]
    os.makedirs(shots, exist_ok=True)
    portal = spec["portal"]
    profile = tempfile.mkdtemp(prefix="portal-profile-")
    out = {"pages": [], "errors": [], "axe": [], "axe_pages": []}
    with open(spec["axe"], encoding="utf-8") as f:
        AXE_SOURCE[0] = f.read()
    browser = Browser(spec, profile)
    d = browser.driver
    try:
        browser.fresh_session()
        sign_in(browser, portal, spec["admin"], out)
        for w in WIDTHS:
            width(d, w)
            for p in PAGES:
                d.get("%s/%s" % (portal, p))
                browser.wait(lambda x: x.find_elements(By.TAG_NAME, "main"), "page " + p)
                name = "%s-%d" % (p or "dashboard", w)
                if w == WIDTHS[0]:
                    axe(d, out, "portal: " + (p or "dashboard"))
                out["pages"].append({
                    "page": p or "dashboard", "width": w, "title": d.title,
                    "text": text(d), "screenshot": shot(d, shots, name),
                    "scroll_width": d.execute_script("return document.documentElement.scrollWidth"),
                })
        width(d, 1280)
        # A refused value, then a good one, through the settings form.
        s = spec["setting"]
        for value, label in [(s["bad"], "bad"), (s["good"], "good")]:
            d.get(portal + "/settings")
            field = d.find_element(By.ID, "input-" + s["key"])
            field.clear()
            field.send_keys(value)
            d.find_element(By.ID, "save-" + s["key"]).click()
            browser.wait(
                lambda x: x.find_elements(By.ID, "error") or x.find_elements(By.ID, "notice"),
                "the settings answer",
            )
            out["setting_" + label] = text(d)
            shot(d, shots, "setting-" + label)
        # The change made through the form is in the audit log, marked portal.
        d.get(portal + "/audit")
        browser.wait(lambda x: x.find_elements(By.TAG_NAME, "main"), "the audit log")
        out["audit_after_setting"] = text(d)
        shot(d, shots, "audit-after-setting")
        # A sign-in's own page, from the log's first line.
        d.get(portal + "/signins")
        d.find_element(By.CSS_SELECTOR, "#signins tbody tr a").click()
        browser.wait(lambda x: x.find_elements(By.ID, "signin-detail"), "a sign-in's page")
        out["signin_detail"] = text(d)
        shot(d, shots, "signin-detail")
        axe(d, out, "portal: sign-in detail")
        # A user's page, and the question a destructive change asks first.
        d.get(portal + "/users")
        d.find_element(By.CSS_SELECTOR, "#users tbody tr a").click()
        browser.wait(lambda x: x.find_elements(By.ID, "user-actions"), "a user's page")
        out["user_page"] = text(d)
        shot(d, shots, "user")
        axe(d, out, "portal: user")
        d.find_element(By.ID, "reset-mfa").click()
        browser.wait(lambda x: x.find_elements(By.ID, "confirm"), "the confirmation page")
        out["confirm_page"] = text(d)
        shot(d, shots, "confirm")
        axe(d, out, "portal: confirmation")
        d.find_element(By.ID, "cancel").click()
        # The self-service pages an account may need.
        base = portal.rsplit("/portal", 1)[0]
        for path, what in [("/password/help", "password help"), ("/password/reset", "password reset"),
                           ("/devicelogin", "device code")]:
            d.get(base + path)
            browser.wait(lambda x: x.find_elements(By.TAG_NAME, "h1"), what)
            axe(d, out, "sign-in: " + what)
        # The CSV link carries the filters.
        d.get(portal + "/signins?result=failure&since=24h")
        out["signins_failure"] = text(d)
        out["csv_href"] = d.find_element(By.ID, "csv").get_attribute("href")
        # Sign out, then the dashboard asks for the password again.
        d.find_element(By.ID, "signout").click()
        browser.wait(lambda x: "signed out" in x.title.lower(), "the signed-out page")
        out["signed_out"] = text(d)
        d.get(portal + "/")
        browser.wait(lambda x: x.find_elements(By.ID, "username"), "the username page")
        out["after_signout_url"] = d.current_url
        out["after_signout"] = text(d)
        shot(d, shots, "after-signout")
        # A user without a role.
        browser.fresh_session()
        sign_in(browser, portal, spec["none_user"])
        out["none_user"] = text(d)
        out["none_user_title"] = d.title
        shot(d, shots, "none-user")
    except Exception as e:  # noqa: BLE001 (reported to the test)
        import traceback
        log(traceback.format_exc())
        out["errors"].append("%s: %s at %s" % (type(e).__name__, e, d.current_url))
        try:
            out["errors"].append(text(d))
            shot(d, shots, "exception")
        except Exception:  # noqa: BLE001
            pass
    finally:
        browser.quit()
        shutil.rmtree(profile, ignore_errors=True)
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
