"""A headless Chromium driven step by step by a Rust test (mfa.rs), for pages whose next step
depends on what the test computes (a TOTP code from the secret shown on a page).

The Browser of browser_rp.py (the cloud's TLS key pinned with
--ignore-certificate-errors-spki-list, no blanket bypass) and its redirect-URI server.

On start it reads one JSON spec line ({"server_cert", "chromedriver", "screenshot_dir"}) and
prints {"redirect_uri": "http://127.0.0.1:PORT/callback"}. Then, for every command line read
on stdin, it prints one answer line:

  {"op": "get", "url"}                       -> {}
  {"op": "type", "id", "text"}               -> {}   (clears the field first)
  {"op": "click", "id"}                      -> {}   (waits for the next page)
  {"op": "wait", "ids": [...]}               -> {"found": id}   (the first present)
  {"op": "texts", "css"}                     -> {"texts": [...]} (matching elements' text)
  {"op": "page"}                             -> {"url", "title", "text", "html"}
  {"op": "shot", "name", "id": optional}     -> {"path"}  (the page, or one element)
  {"op": "callback"}                         -> {"url"}   (the next request to the RP, or null)
  {"op": "clear_cookies"}                    -> {}

Any failure answers {"error": "..."} (with a screenshot); the script ends at the end of stdin.
Nothing typed is logged (codes and passwords go to the page only).
"""
import json
import os
import shutil
import sys
import tempfile
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from browser_rp import Browser, Callbacks, log  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.common.exceptions import StaleElementReferenceException, WebDriverException  # noqa: E402


def answer(obj):
    print(json.dumps(obj), flush=True)


def gone(el):
    """Whether an element's page was replaced. Chromium reports a node of a replaced
    document either as stale or, during the swap, as not belonging to the document."""
    try:
        el.is_enabled()
        return False
    except (StaleElementReferenceException, WebDriverException):
        return True


def run(browser, callbacks, shots, cmd):
    d = browser.driver
    op = cmd["op"]
    if op == "get":
        d.get(cmd["url"])
        return {}
    if op == "type":
        el = d.find_element(By.ID, cmd["id"])
        el.clear()
        el.send_keys(cmd["text"])
        return {}
    if op == "click":
        # A form's button: wait until the page it was on is gone (the answer loaded), so that
        # an error element of the old page is never mistaken for the answer's.
        el = d.find_element(By.ID, cmd["id"])
        el.click()
        browser.wait(lambda _: gone(el), "the answer to " + cmd["id"])
        return {}
    if op == "wait":
        ids = cmd["ids"]
        found = browser.wait(
            lambda x: next((i for i in ids if x.find_elements(By.ID, i)), None),
            "one of " + ", ".join(ids),
        )
        return {"found": found}
    if op == "texts":
        return {"texts": [e.text for e in d.find_elements(By.CSS_SELECTOR, cmd["css"])]}
    if op == "page":
        return {
            "url": d.current_url,
            "title": d.title,
            "text": d.find_element(By.TAG_NAME, "body").text,
            "html": d.page_source,
        }
    if op == "shot":
        path = os.path.join(shots, cmd["name"] + ".png")
        if cmd.get("id"):
            d.find_element(By.ID, cmd["id"]).screenshot(path)
        else:
            d.save_screenshot(path)
        return {"path": path}
    if op == "callback":
        return {"url": callbacks.get(timeout=10)}
    if op == "clear_cookies":
        browser.fresh_session()
        callbacks.drain()
        return {}
    raise ValueError("unknown op " + op)


def main():
    spec = json.loads(sys.stdin.readline())
    shots = spec["screenshot_dir"]
    os.makedirs(shots, exist_ok=True)
    callbacks = Callbacks()
    profile = tempfile.mkdtemp(prefix="mfa-profile-")
    browser = Browser(spec, profile)
    answer({"redirect_uri": callbacks.redirect_uri})
    n = 0
    try:
        for line in sys.stdin:
            if not line.strip():
                continue
            cmd = json.loads(line)
            n += 1
            try:
                answer(run(browser, callbacks, shots, cmd))
            except Exception as e:  # noqa: BLE001 (reported to the test)
                log(traceback.format_exc())
                try:
                    browser.driver.save_screenshot(os.path.join(shots, "error-%d.png" % n))
                except Exception:  # noqa: BLE001
                    pass
                answer({"error": "%s: %s at %s" % (type(e).__name__, e, browser.driver.current_url)})
    finally:
        browser.quit()
        shutil.rmtree(profile, ignore_errors=True)


if __name__ == "__main__":
    main()
