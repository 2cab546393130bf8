"""An OpenID Connect relying party that signs people in through a Passthru cloud with a real
headless Chromium.

Authlib builds the authorization request (response_type=code, PKCE S256, state, nonce),
exchanges the code at the token endpoint and checks the ID token: its ES256 signature against
the JWKS named by the discovery document, then iss, aud, exp, iat, nonce (and at_hash when present). Selenium
drives Chromium through chromedriver over the cloud's own sign-in pages: the username page, then
the password page. A small HTTP server on 127.0.0.1 is the redirect URI.

Chromium trusts the cloud's TLS certificate through --ignore-certificate-errors-spki-list
with the SHA-256 of the server certificate's public key: a chain holding that key is accepted,
any other certificate is still checked as usual (no blanket --ignore-certificate-errors). Python's side of TLS (discovery, JWKS, token) verifies against the
cloud's CA file.

Protocol (stdin and stdout, one JSON object per line):
  1. on start it prints {"redirect_uri": "http://127.0.0.1:PORT/callback"} (register it);
  2. then, for every spec line read on stdin, it signs in each case of the spec and prints one
     result line; it ends at the end of stdin.

A spec: {"authority": "https://HOST:PORT/TENANT", "client_id", "ca_file", "server_cert",
"screenshot_dir", "chromium", "chromedriver", "cases": [{"name", "username", "password",
"expect": "success" | "error", "response_mode": optional, "query" or "form_post",
"pkce": optional, "wrong_verifier" to redeem the code with another verifier}]}.

A result: {"results": [...]}, one per case: "name", "outcome" ("callback", "error_page",
"blocked" (a Content Security Policy violation; the console is included) or "stuck"), the
screenshot's path, the page's visible text, the #error sentence, and on success what the token
exchange and the ID-token checks found (claims, header, negative checks).
Diagnostics go to stderr.
"""
import base64
import hashlib
import http.server
import json
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.parse

# requests lets these override `verify`: the RP must trust only the cloud's CA.
os.environ.pop("REQUESTS_CA_BUNDLE", None)
os.environ.pop("CURL_CA_BUNDLE", None)

import requests  # noqa: E402
from authlib.common.security import generate_token  # noqa: E402
from authlib.integrations.requests_client import OAuth2Session  # noqa: E402
from authlib.oidc.core import CodeIDToken  # noqa: E402
from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import serialization  # noqa: E402
from joserfc import jwt  # noqa: E402  (Authlib's JOSE implementation, a dependency of Authlib)
from joserfc.jwk import KeySet  # noqa: E402
from joserfc.jws import JWSRegistry  # noqa: E402
from selenium import webdriver  # noqa: E402
from selenium.common.exceptions import TimeoutException  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

STEP_TIMEOUT = 40  # seconds for one page to answer (a pass-through check included)
SCOPE = "openid profile email offline_access"


def log(*args):
    print("browser_rp:", *args, file=sys.stderr, flush=True)


class Callbacks:
    """The redirect URI: every request to /callback is queued, with its full URL."""

    def __init__(self):
        self.queue = queue.Queue()
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's naming)
                url = urllib.parse.urlsplit(self.path)
                if url.path != "/callback":
                    self.send_error(404)
                    return
                owner.queue.put("http://127.0.0.1:%d%s" % (owner.port, self.path))
                self._answer("code" in urllib.parse.parse_qs(url.query))

            def do_POST(self):  # noqa: N802 (response_mode=form_post)
                length = int(self.headers.get("Content-Length") or 0)
                form = self.rfile.read(length).decode()
                url = urllib.parse.urlsplit(self.path)
                if url.path != "/callback":
                    self.send_error(404)
                    return
                # Queued as a URL, so that both response modes are read the same way.
                owner.queue.put("http://127.0.0.1:%d/callback?%s" % (owner.port, form))
                self._answer("code" in urllib.parse.parse_qs(form))

            def _answer(self, ok):
                body = (
                    "<!doctype html><html lang=en><head><meta charset=utf-8><title>RP</title></head>"
                    "<body><h1 id=rp>%s</h1><p>Back at the relying party.</p></body></html>"
                    % ("Signed in" if ok else "Sign-in failed")
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, fmt, *args):
                log("callback:", (fmt % args).split("?")[0])  # not the code

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.redirect_uri = "http://127.0.0.1:%d/callback" % self.port
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def drain(self):
        while not self.queue.empty():
            log("stray callback:", self.queue.get_nowait())

    def get(self, timeout):
        try:
            return self.queue.get(timeout=timeout)
        except queue.Empty:
            return None


def spki_sha256(pem_path):
    """base64(SHA-256(SubjectPublicKeyInfo)) of the first certificate of a PEM file."""
    with open(pem_path, "rb") as f:
        cert = x509.load_pem_x509_certificate(f.read())
    spki = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(hashlib.sha256(spki).digest()).decode()


class Browser:
    def __init__(self, spec, profile_dir):
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
            "--force-device-scale-factor=1",
            "--lang=en-US",
            # Chromium honours the SPKI list only with an explicit profile directory.
            "--user-data-dir=" + profile_dir,
            "--ignore-certificate-errors-spki-list=" + spki_sha256(spec["server_cert"]),
        ]:
            opts.add_argument(flag)
        # The console (CSP violations, blocked navigations) for cases that go wrong.
        opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        # No password manager or autofill: nothing typed is kept in the profile.
        opts.add_experimental_option("prefs", {
            "credentials_enable_service": False,
            "profile.password_manager_enabled": False,
            "autofill.profile_enabled": False,
        })
        # No chromedriver log: it records every command, typed passwords included, and the
        # test's run dir is scanned for passwords.
        service = Service(
            executable_path=spec.get("chromedriver", "/usr/bin/chromedriver"),
            log_output=subprocess.DEVNULL,
        )
        self.driver = webdriver.Chrome(service=service, options=opts)
        self.driver.set_page_load_timeout(STEP_TIMEOUT)
        self.messages = []
        caps = self.driver.capabilities
        self.version = caps.get("browserVersion", "?")
        log("Chromium", self.version)

    def fresh_session(self):
        """No cookie of an earlier case (the cloud's SSO session) may carry over."""
        self.driver.execute_cdp_cmd("Network.clearBrowserCookies", {})
        self.console()
        self.messages = []

    def wait(self, cond, what):
        try:
            return WebDriverWait(self.driver, STEP_TIMEOUT, poll_frequency=0.1).until(cond)
        except TimeoutException:
            raise RuntimeError("timed out waiting for %s at %s" % (what, self.driver.current_url))

    def console(self):
        """The console messages so far (Chromium hands each out once; they are kept)."""
        try:
            self.messages += [e.get("message") for e in self.driver.get_log("browser")]
        except Exception as e:  # noqa: BLE001
            self.messages.append("(no console log: %s)" % e)
        return self.messages

    def blocked(self):
        """A Content Security Policy violation: the page will not move on."""
        return any("Content Security Policy" in m for m in self.console())

    def quit(self):
        try:
            self.driver.quit()
        except Exception as e:  # noqa: BLE001
            log("quit:", e)


def discover(authority, ca_file):
    url = authority.rstrip("/") + "/v2.0/.well-known/openid-configuration"
    meta = requests.get(url, verify=ca_file, timeout=15)
    meta.raise_for_status()
    meta = meta.json()
    jwks = requests.get(meta["jwks_uri"], verify=ca_file, timeout=15)
    jwks.raise_for_status()
    return meta, jwks.json()


def validate_id_token(id_token, jwks, meta, client_id, nonce, access_token):
    """Authlib's OpenID checks, as its OpenIDMixin.parse_id_token does them: the signature
    against the JWKS (ES256 only), then the claims (iss, aud, exp, iat, nonce, at_hash)."""
    key_set = KeySet.import_key_set(jwks)
    token = jwt.decode(id_token, key=key_set, registry=JWSRegistry(algorithms=["ES256"]))
    options = {
        "iss": {"essential": True, "value": meta["issuer"]},
        "aud": {"essential": True, "value": client_id},
        "exp": {"essential": True},
        "iat": {"essential": True},
        "nonce": {"essential": True, "value": nonce},
    }
    params = {"nonce": nonce, "client_id": client_id, "access_token": access_token}
    claims = CodeIDToken(token.claims, token.header, options, params)
    claims.validate(leeway=60)
    return dict(claims), dict(token.header)


def rejected(fn):
    """True when fn raises (a check that must fail does)."""
    try:
        fn()
    except Exception as e:  # noqa: BLE001
        return type(e).__name__
    return False


def negative_checks(id_token, jwks, meta, client_id, nonce, access_token):
    """The same checks must refuse a wrong nonce, a wrong audience, a wrong issuer, a changed
    payload and a key set without the signing key: they are not vacuous."""
    header_b64, payload_b64, sig_b64 = id_token.split(".")
    payload = json.loads(base64.urlsafe_b64decode(payload_b64 + "=" * (-len(payload_b64) % 4)))
    payload["preferred_username"] = "mallory@corp.example.test"
    forged_payload = (
        base64.urlsafe_b64encode(json.dumps(payload).encode()).rstrip(b"=").decode()
    )
    forged = ".".join([header_b64, forged_payload, sig_b64])
    other_meta = dict(meta, issuer=meta["issuer"] + "x")
    no_keys = {"keys": []}
    return {
        "wrong_nonce": rejected(
            lambda: validate_id_token(id_token, jwks, meta, client_id, nonce + "x", access_token)
        ),
        "wrong_audience": rejected(
            lambda: validate_id_token(id_token, jwks, meta, client_id + "x", nonce, access_token)
        ),
        "wrong_issuer": rejected(
            lambda: validate_id_token(id_token, jwks, other_meta, client_id, nonce, access_token)
        ),
        "changed_payload": rejected(
            lambda: validate_id_token(forged, jwks, meta, client_id, nonce, access_token)
        ),
        "unknown_key": rejected(
            lambda: validate_id_token(id_token, no_keys, meta, client_id, nonce, access_token)
        ),
    }


def visible(driver, by, value):
    els = driver.find_elements(by, value)
    return els[0].text if els else None


def sign_in(browser, callbacks, spec, meta, jwks, case, shots):
    driver = browser.driver
    client_id = spec["client_id"]
    ca_file = spec["ca_file"]
    name = case["name"]
    r = {"name": name, "username": case["username"]}

    session = OAuth2Session(
        client_id,
        scope=SCOPE,
        redirect_uri=callbacks.redirect_uri,
        code_challenge_method="S256",
        token_endpoint_auth_method="none",
    )
    session.verify = ca_file
    code_verifier = generate_token(64)
    nonce = generate_token(32)
    extra = {}
    if case.get("response_mode"):
        extra["response_mode"] = case["response_mode"]
    auth_url, state = session.create_authorization_url(
        meta["authorization_endpoint"], code_verifier=code_verifier, nonce=nonce, **extra
    )
    q = urllib.parse.parse_qs(urllib.parse.urlsplit(auth_url).query)
    r["request"] = {k: q.get(k, [None])[0] for k in
                    ["response_type", "code_challenge_method", "scope", "redirect_uri",
                     "response_mode"]}
    r["request"]["has_code_challenge"] = bool(q.get("code_challenge"))
    r["request"]["nonce_sent"] = q.get("nonce", [None])[0] == nonce
    r["request"]["state_sent"] = q.get("state", [None])[0] == state

    browser.fresh_session()
    callbacks.drain()
    started = time.monotonic()
    driver.get(auth_url)
    browser.wait(lambda d: d.find_elements(By.ID, "username"), "the username page")
    driver.find_element(By.ID, "username").send_keys(case["username"])
    driver.find_element(By.ID, "next").click()
    browser.wait(
        lambda d: d.find_elements(By.ID, "password") or d.find_elements(By.ID, "error"),
        "the password page",
    )
    if not driver.find_elements(By.ID, "password"):
        r["outcome"] = "error_page"
        r["stage"] = "username"
    else:
        r["who"] = visible(driver, By.ID, "who")
        field = driver.find_element(By.ID, "password")
        field.send_keys(case["password"])
        driver.find_element(By.ID, "signin").click()
        # Either the browser lands on the redirect URI, or (response_mode=form_post) on the
        # cloud's "Continue" form that posts there, or the password page comes back with an
        # error (the old #password is then stale; the new page has #error).
        deadline = time.monotonic() + STEP_TIMEOUT
        callback = None
        polls = 0
        while time.monotonic() < deadline:
            callback = callbacks.get(timeout=0.1)
            if callback:
                break
            polls += 1
            try:
                if driver.find_elements(By.ID, "error"):
                    break
                if polls % 10 == 0 and browser.blocked():
                    time.sleep(1)  # a callback that got through after all
                    callback = callbacks.get(timeout=0.1)
                    break
                if driver.find_elements(By.ID, "continue") and "form_post_page" not in r:
                    r["form_post_page"] = driver.title
                    driver.find_element(By.ID, "continue").click()
            except Exception:  # noqa: BLE001 (a navigation in progress)
                pass
        r["stage"] = "password"
        if callback:
            r["outcome"] = "callback"
        elif driver.find_elements(By.ID, "error"):
            r["outcome"] = "error_page"
        else:
            r["outcome"] = "blocked" if browser.blocked() else "stuck"
            r["console"] = browser.console()
    r["seconds"] = round(time.monotonic() - started, 2)
    r["final_url"] = driver.current_url
    r["title"] = driver.title

    if r["outcome"] == "callback":
        browser.wait(lambda d: d.find_elements(By.ID, "rp"), "the relying party's page")
        cb = urllib.parse.parse_qs(urllib.parse.urlsplit(callback).query)
        r["callback_params"] = sorted(cb)
        r["state_matches"] = cb.get("state", [None])[0] == state
        if case.get("pkce") == "wrong_verifier":
            # The code with another verifier than the challenge's: PKCE must refuse it.
            wrong = requests.post(
                meta["token_endpoint"],
                data={
                    "grant_type": "authorization_code",
                    "code": cb["code"][0],
                    "redirect_uri": callbacks.redirect_uri,
                    "code_verifier": generate_token(64),
                    "client_id": client_id,
                },
                verify=ca_file,
                timeout=15,
            )
            r["wrong_verifier"] = {"status": wrong.status_code, "body": wrong.json()}
            r["text"] = driver.find_element(By.TAG_NAME, "body").text
            path = os.path.join(shots, "%s.png" % name)
            r["screenshot_saved"] = driver.save_screenshot(path)
            r["screenshot"] = path
            return r
        try:
            token = session.fetch_token(
                meta["token_endpoint"],
                authorization_response=callback,
                state=state,
                code_verifier=code_verifier,
                verify=ca_file,
            )
            r["token_type"] = token.get("token_type")
            r["has_access_token"] = bool(token.get("access_token"))
            r["has_refresh_token"] = bool(token.get("refresh_token"))
            r["scope"] = token.get("scope")
            claims, header = validate_id_token(
                token["id_token"], jwks, meta, client_id, nonce, token["access_token"]
            )
            r["id_token_valid"] = True
            r["claims"] = claims
            r["header"] = header
            r["nonce_matches"] = claims.get("nonce") == nonce
            r["at_hash_checked"] = "at_hash" in claims
            r["negative_checks"] = negative_checks(
                token["id_token"], jwks, meta, client_id, nonce, token["access_token"]
            )
            # The same code cannot be redeemed twice.
            again = requests.post(
                meta["token_endpoint"],
                data={
                    "grant_type": "authorization_code",
                    "code": cb["code"][0],
                    "redirect_uri": callbacks.redirect_uri,
                    "code_verifier": code_verifier,
                    "client_id": client_id,
                },
                verify=ca_file,
                timeout=15,
            )
            r["code_replay"] = {"status": again.status_code, "body": again.json()}
        except Exception as e:  # noqa: BLE001
            r["id_token_valid"] = False
            r["exchange_error"] = "%s: %s" % (type(e).__name__, e)
            log(traceback.format_exc())
    else:
        r["error_sentence"] = visible(driver, By.ID, "error")
        r["meta_text"] = [e.text for e in driver.find_elements(By.CSS_SELECTOR, "p.meta")]
    r["text"] = driver.find_element(By.TAG_NAME, "body").text
    path = os.path.join(shots, "%s.png" % name)
    r["screenshot_saved"] = driver.save_screenshot(path)
    r["screenshot"] = path
    return r


def run(spec, browser, callbacks):
    shots = spec["screenshot_dir"]
    os.makedirs(shots, exist_ok=True)
    meta, jwks = discover(spec["authority"], spec["ca_file"])
    results = []
    for case in spec["cases"]:
        try:
            r = sign_in(browser, callbacks, spec, meta, jwks, case, shots)
        except Exception as e:  # noqa: BLE001 (reported, the next case still runs)
            log(traceback.format_exc())
            r = {"name": case["name"], "outcome": "exception", "exception": "%s: %s" % (type(e).__name__, e)}
            try:
                r["final_url"] = browser.driver.current_url
                r["text"] = browser.driver.find_element(By.TAG_NAME, "body").text
                path = os.path.join(shots, "%s-exception.png" % case["name"])
                browser.driver.save_screenshot(path)
                r["screenshot"] = path
            except Exception:  # noqa: BLE001
                pass
        log(case["name"], "->", r.get("outcome"), "in", r.get("seconds"), "s")
        results.append(r)
    return {
        "chromium": browser.version,
        "issuer": meta["issuer"],
        "jwks_kids": [k.get("kid") for k in jwks.get("keys", [])],
        "results": results,
    }


def main():
    callbacks = Callbacks()
    print(json.dumps({"redirect_uri": callbacks.redirect_uri}), flush=True)
    browser = None
    profile = tempfile.mkdtemp(prefix="browser-rp-profile-")
    try:
        for line in sys.stdin:
            if not line.strip():
                continue
            spec = json.loads(line)
            if browser is None:
                browser = Browser(spec, profile)
            print(json.dumps(run(spec, browser, callbacks)), flush=True)
    finally:
        if browser:
            browser.quit()
        callbacks.server.shutdown()
        shutil.rmtree(profile, ignore_errors=True)


if __name__ == "__main__":
    main()
