"""A single-page app (crates/e2e/js/spa: MSAL Browser's PublicClientApplication) in headless
Chromium, signing a user in through a Passthru cloud.

A small static HTTP server on http://localhost:PORT (the app's origin, another origin than the
cloud's) serves the page, its script, MSAL Browser's browser bundle from node_modules
(lib/msal-browser.min.js, as published) and /config.json (the spec's app settings). Selenium
opens the page; the page calls loginRedirect; on the cloud's pages Selenium types the username
and the password as a person would; the cloud sends the browser back with the code in the
fragment; the page's handleRedirectPromise redeems it from its own origin (CORS), then
acquireTokenSilent with forceRefresh redeems the refresh token; the page writes the outcome
into #result, which this script reads.

Chromium trusts the cloud's TLS certificate through --ignore-certificate-errors-spki-list
(the SHA-256 of the server certificate's public key), as browser_rp.py does.

Protocol (stdin and stdout, one JSON object per line): on start it prints {"redirect_uri":
"http://localhost:PORT/"} (register it); then it reads one spec: {"authority",
"known_authority", "client_id", "scopes", "username", "password", "server_cert",
"screenshot_dir", "chromium", "chromedriver"}, and prints the page's result plus
"chromium", "final_url", "screenshot" and, when a step fails, "error" and the console; then
"cors": what a page could read with fetch from discovery and the token endpoint, from the
SPA's registered origin and from an origin no app registered ("read STATUS" or "blocked ...").
Diagnostics go to stderr.
"""
import base64
import hashlib
import http.server
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

STEP_TIMEOUT = 40  # seconds for one page to answer (a pass-through check included)
JS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "js")
FILES = {
    "/": ("spa/index.html", "text/html; charset=utf-8"),
    "/index.html": ("spa/index.html", "text/html; charset=utf-8"),
    "/app.js": ("spa/app.js", "text/javascript; charset=utf-8"),
    "/probe.html": ("spa/probe.html", "text/html; charset=utf-8"),
    "/msal-browser.min.js": (
        "node_modules/@azure/msal-browser/lib/msal-browser.min.js",
        "text/javascript; charset=utf-8",
    ),
}


def log(*args):
    print("spa_browser:", *args, file=sys.stderr, flush=True)


class App:
    """The SPA's origin: static files and /config.json."""

    def __init__(self):
        self.config = {}
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's naming)
                path = self.path.split("?")[0].split("#")[0]
                if path == "/config.json":
                    body = json.dumps(owner.config).encode()
                    kind = "application/json"
                elif path in FILES:
                    name, kind = FILES[path]
                    with open(os.path.join(JS_DIR, name), "rb") as f:
                        body = f.read()
                else:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, fmt, *args):
                log("app:", (fmt % args).split("?")[0])

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.redirect_uri = "http://localhost:%d/" % self.port
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def spki_sha256(pem_path):
    """base64(SHA-256(SubjectPublicKeyInfo)) of the first certificate of a PEM file."""
    with open(pem_path, "rb") as f:
        cert = x509.load_pem_x509_certificate(f.read())
    spki = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(hashlib.sha256(spki).digest()).decode()


def chromium(spec, profile_dir):
    opts = webdriver.ChromeOptions()
    opts.binary_location = spec.get("chromium", "/usr/bin/chromium")
    for flag in [
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-extensions",
        "--window-size=1024,768",
        "--lang=en-US",
        # Chromium honours the SPKI list only with an explicit profile directory.
        "--user-data-dir=" + profile_dir,
        "--ignore-certificate-errors-spki-list=" + spki_sha256(spec["server_cert"]),
    ]:
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    opts.add_experimental_option("prefs", {
        "credentials_enable_service": False,
        "profile.password_manager_enabled": False,
        "autofill.profile_enabled": False,
    })
    # No chromedriver log: it would record the typed password.
    service = Service(
        executable_path=spec.get("chromedriver", "/usr/bin/chromedriver"),
        log_output=subprocess.DEVNULL,
    )
    driver = webdriver.Chrome(service=service, options=opts)
    driver.set_page_load_timeout(STEP_TIMEOUT)
    return driver


def wait(driver, cond, what):
    try:
        return WebDriverWait(driver, STEP_TIMEOUT, poll_frequency=0.1).until(cond)
    except TimeoutException:
        raise RuntimeError("timed out waiting for %s at %s" % (what, driver.current_url))


def result_text(driver):
    try:
        els = driver.find_elements(By.ID, "result")
        return els[0].text if els and els[0].text.strip() else None
    except Exception:  # noqa: BLE001 (a navigation in progress)
        return None


def run(spec, app, driver):
    app.config = {
        "client_id": spec["client_id"],
        "authority": spec["authority"],
        "known_authority": spec["known_authority"],
        "redirect_uri": app.redirect_uri,
        "scopes": spec["scopes"],
    }
    r = {}
    started = time.monotonic()
    try:
        driver.get(app.redirect_uri)
        # The page sends the browser to the cloud, or fails on its way (#result).
        found = wait(
            driver,
            lambda d: d.find_elements(By.ID, "username") or result_text(d),
            "the cloud's username page",
        )
        if isinstance(found, str):
            r.update(json.loads(found))
            r.setdefault("error", "the page failed before reaching the cloud")
            return r
        r["authorize_url"] = driver.current_url.split("?")[0]
        driver.find_element(By.ID, "username").send_keys(spec["username"])
        driver.find_element(By.ID, "next").click()
        wait(
            driver,
            lambda d: d.find_elements(By.ID, "password") or d.find_elements(By.ID, "error"),
            "the password page",
        )
        if not driver.find_elements(By.ID, "password"):
            raise RuntimeError("the username page said: %s" % driver.find_element(By.ID, "error").text)
        driver.find_element(By.ID, "password").send_keys(spec["password"])
        driver.find_element(By.ID, "signin").click()
        text = wait(driver, result_text, "the app's #result after the sign-in")
        r.update(json.loads(text))
    except Exception as e:  # noqa: BLE001 (reported to the test)
        r["ok"] = False
        r["error"] = r.get("error") or "%s: %s" % (type(e).__name__, e)
        try:
            r["page_text"] = driver.find_element(By.TAG_NAME, "body").text[:2000]
        except Exception:  # noqa: BLE001
            pass
    finally:
        r["seconds"] = round(time.monotonic() - started, 2)
        try:
            r["final_url"] = driver.current_url.split("#")[0]
            os.makedirs(spec["screenshot_dir"], exist_ok=True)
            path = os.path.join(spec["screenshot_dir"], "spa.png")
            driver.save_screenshot(path)
            r["screenshot"] = path
            r["browser_console"] = [e.get("message") for e in driver.get_log("browser")][-40:]
        except Exception as e:  # noqa: BLE001
            log("after the run:", e)
    return r


PROBE = """
const done = arguments[arguments.length - 1];
const [url, method] = [arguments[0], arguments[1]];
const init = method === "POST"
  ? {method, body: new URLSearchParams({grant_type: "refresh_token", refresh_token: "x", client_id: "x"})}
  : {};
fetch(url, init).then((r) => done("read " + r.status), (e) => done("blocked " + e));
"""


def cors_probes(spec, app, driver):
    """What a page may read from the cloud with fetch: from the SPA's registered origin
    (http://localhost:PORT), and from an origin no app registered (http://127.0.0.1:PORT, the
    same server under another name): discovery (GET) and the token endpoint (POST)."""
    base = spec["authority"].rstrip("/")
    targets = {
        "discovery": (base + "/v2.0/.well-known/openid-configuration", "GET"),
        "token": (base + "/oauth2/v2.0/token", "POST"),
    }
    out = {}
    for origin_name, origin in [
        ("registered", "http://localhost:%d" % app.port),
        ("unregistered", "http://127.0.0.1:%d" % app.port),
    ]:
        driver.get(origin + "/probe.html")
        for name, (url, method) in targets.items():
            try:
                out["%s %s" % (origin_name, name)] = driver.execute_async_script(PROBE, url, method)
            except Exception as e:  # noqa: BLE001
                out["%s %s" % (origin_name, name)] = "error %s" % e
    return out


def main():
    app = App()
    print(json.dumps({"redirect_uri": app.redirect_uri}), flush=True)
    line = sys.stdin.readline()
    if not line.strip():
        return
    spec = json.loads(line)
    profile = tempfile.mkdtemp(prefix="spa-profile-")
    driver = None
    try:
        driver = chromium(spec, profile)
        r = run(spec, app, driver)
        r["chromium"] = driver.capabilities.get("browserVersion", "?")
        try:
            driver.set_script_timeout(STEP_TIMEOUT)
            r["cors"] = cors_probes(spec, app, driver)
        except Exception as e:  # noqa: BLE001
            r["cors_error"] = "%s: %s" % (type(e).__name__, e)
    except Exception as e:  # noqa: BLE001
        r = {"ok": False, "error": "%s: %s" % (type(e).__name__, e)}
    finally:
        if driver:
            try:
                driver.quit()
            except Exception as e:  # noqa: BLE001
                log("quit:", e)
        app.server.shutdown()
        shutil.rmtree(profile, ignore_errors=True)
    print(json.dumps(r), flush=True)


if __name__ == "__main__":
    main()
