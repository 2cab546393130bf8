// What the test programs of this directory share: reading the spec the Rust test sends,
// running each case so that one failure does not hide the next, and a small browser-like
// client that walks the cloud's sign-in pages (plain HTML forms) as a person would: it reads
// each page's form, keeps its hidden fields (req, csrf), types what the form asks for
// (user code, username, password) and follows redirects by hand, keeping cookies per origin.
//
// TLS: Node trusts the cloud's CA through NODE_EXTRA_CA_CERTS (set by the Rust test), as an
// app developer would; nothing here turns certificate checks off.

import { decodeJwt, decodeProtectedHeader } from "jose";

/** The spec: JSON from the first argument, or else from standard input. */
export async function readSpec() {
  if (process.argv[2]) return JSON.parse(process.argv[2]);
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  return JSON.parse(Buffer.concat(chunks).toString("utf8"));
}

/** Diagnostics go to standard error; standard output carries the one JSON result. */
export function log(...args) {
  console.error(`[${process.argv[1]?.split("/").pop()}]`, ...args);
}

/** Prints the result and ends the process (MSAL's caches and keep-alive sockets would keep
 * it running). */
export function finish(result) {
  process.stdout.write(JSON.stringify(result) + "\n", () => process.exit(0));
}

/** An error as one line: MSAL's code and sub-error when it has them. */
export function describe(e) {
  if (!(e instanceof Error)) {
    if (e && typeof e === "object") {
      try {
        return JSON.stringify(e);
      } catch {
        // fall through
      }
    }
    return String(e);
  }
  const parts = [e.name];
  for (const k of ["errorCode", "subError", "code"]) {
    if (e[k] && typeof e[k] === "string") parts.push(`[${e[k]}]`);
  }
  parts.push(e.message || e.errorMessage || "");
  if (e.cause) parts.push(`(cause: ${describe(e.cause)})`);
  return parts.join(" ");
}

/** Runs `fn` as the case `name` and records its outcome in `results`: {name, ok, ms,
 * ...what fn returned} or {name, ok: false, error, ...partial}. `fn` gets an object it may
 * fill as it goes, so that a failure still reports the steps that worked. */
export async function runCase(results, name, fn) {
  const started = Date.now();
  const partial = {};
  try {
    const detail = (await fn(partial)) ?? {};
    results.push({ name, ok: true, ms: Date.now() - started, ...partial, ...detail });
  } catch (e) {
    log(`${name}:`, e?.stack ?? e);
    results.push({ name, ok: false, ms: Date.now() - started, ...partial, error: describe(e) });
  }
}

/** The claims and header of a JWT, without checking anything (for the Rust test to check). */
export function peek(jwt) {
  if (!jwt) return null;
  try {
    return { header: decodeProtectedHeader(jwt), claims: decodeJwt(jwt) };
  } catch (e) {
    return { error: describe(e) };
  }
}

const ENTITIES = { amp: "&", lt: "<", gt: ">", quot: '"', apos: "'", "#39": "'", "#x27": "'" };

function unescapeHtml(s) {
  return s.replace(/&(#x[0-9a-f]+|#[0-9]+|[a-z]+);/gi, (m, e) => {
    const k = e.toLowerCase();
    if (k in ENTITIES) return ENTITIES[k];
    if (k.startsWith("#x")) return String.fromCodePoint(parseInt(k.slice(2), 16));
    if (k.startsWith("#")) return String.fromCodePoint(parseInt(k.slice(1), 10));
    return m;
  });
}

function attributes(s) {
  const a = {};
  const re = /([a-zA-Z_:][-a-zA-Z0-9_:.]*)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]+)))?/g;
  for (const m of s.matchAll(re)) a[m[1].toLowerCase()] = unescapeHtml(m[2] ?? m[3] ?? m[4] ?? "");
  return a;
}

/** The forms of an HTML page: action (absolute), method, and their input and button tags. */
export function forms(html, base) {
  const out = [];
  for (const m of html.matchAll(/<form\b([^>]*)>([\s\S]*?)<\/form>/gi)) {
    const attrs = attributes(m[1]);
    const inputs = [...m[2].matchAll(/<(input|button|textarea|select)\b([^>]*)>/gi)].map((x) => ({
      tag: x[1].toLowerCase(),
      ...attributes(x[2]),
    }));
    out.push({
      action: new URL(attrs.action ?? "", base).href,
      method: (attrs.method ?? "get").toLowerCase(),
      inputs,
    });
  }
  return out;
}

/** The visible text of a page, roughly (for error messages). */
export function pageText(html) {
  return unescapeHtml(
    html
      .replace(/<(script|style)\b[\s\S]*?<\/\1>/gi, " ")
      .replace(/<[^>]+>/g, " ")
      .replace(/\s+/g, " ")
      .trim(),
  );
}

/** The text of the element with id `id` (the cloud's pages say what went wrong in #error). */
export function elementText(html, id) {
  const m = html.match(new RegExp(`<(\\w+)[^>]*\\bid="${id}"[^>]*>([\\s\\S]*?)</\\1>`, "i"));
  return m ? pageText(m[2]) : null;
}

/** A browser-like HTTP client: no automatic redirects, cookies kept per origin. */
export class FormBrowser {
  constructor() {
    this.jar = new Map();
  }

  cookieHeader(url) {
    const c = this.jar.get(new URL(url).origin);
    if (!c || c.size === 0) return null;
    return [...c].map(([k, v]) => `${k}=${v}`).join("; ");
  }

  keep(url, res) {
    const origin = new URL(url).origin;
    if (!this.jar.has(origin)) this.jar.set(origin, new Map());
    const c = this.jar.get(origin);
    for (const line of res.headers.getSetCookie()) {
      const [kv] = line.split(";");
      const i = kv.indexOf("=");
      if (i < 0) continue;
      const k = kv.slice(0, i).trim();
      const v = kv.slice(i + 1).trim();
      if (!v || /max-age=0/i.test(line)) c.delete(k);
      else c.set(k, v);
    }
  }

  async request(url, method = "GET", form = null) {
    const headers = { accept: "text/html" };
    const cookie = this.cookieHeader(url);
    if (cookie) headers.cookie = cookie;
    let body;
    if (form) {
      body = new URLSearchParams(form).toString();
      headers["content-type"] = "application/x-www-form-urlencoded";
    }
    const res = await fetch(url, { method, headers, body, redirect: "manual" });
    this.keep(url, res);
    const location = res.headers.get("location");
    return {
      url,
      status: res.status,
      location: location ? new URL(location, url).href : null,
      body: await res.text(),
    };
  }

  get(url) {
    return this.request(url);
  }

  post(url, form) {
    return this.request(url, "POST", form);
  }

  /**
   * Walks pages from `page` (an answer of this browser): follows redirects, and on each page
   * fills the first form that asks for one of `values`' names (hidden fields kept as
   * given), until a redirect reaches `stopAt` (a URL prefix: returns that URL) or a page has
   * no such form (returns {page}). A page that shows an error (#error) ends the walk with an
   * exception carrying its sentence.
   */
  async walk(page, values, stopAt = null) {
    for (let step = 0; step < 12; step++) {
      if (page.location) {
        if (stopAt && page.location.startsWith(stopAt)) return { redirect: page.location };
        page = await this.get(page.location);
        continue;
      }
      const error = elementText(page.body, "error");
      if (error) throw new Error(`the page at ${page.url} says: ${error}`);
      if (page.status !== 200) {
        throw new Error(`${page.url} answered ${page.status}: ${pageText(page.body).slice(0, 300)}`);
      }
      const form = forms(page.body, page.url).find(
        (f) => f.method === "post" && f.inputs.some((i) => i.name && i.name in values),
      );
      if (!form) {
        // The form_post answer: a form that posts the code to the app itself.
        const post = forms(page.body, page.url).find((f) => stopAt && f.action.startsWith(stopAt));
        if (post) {
          const fields = Object.fromEntries(post.inputs.filter((i) => i.name).map((i) => [i.name, i.value ?? ""]));
          return { form_post: fields };
        }
        return { page };
      }
      const fields = {};
      for (const i of form.inputs) {
        if (!i.name) continue;
        if (i.name in values) fields[i.name] = values[i.name];
        else if (i.type === "hidden") fields[i.name] = i.value ?? "";
      }
      page = await this.post(form.action, fields);
    }
    throw new Error("the sign-in pages went on for more than 12 steps");
  }
}

/**
 * Signs `user` ({username, password}) in through the cloud's pages from an authorization URL
 * and returns the URL the cloud sent the browser back to (redirect URI + code, in the query or
 * the fragment).
 */
export async function signInThroughPages(authUrl, user, redirectUri, browser = new FormBrowser()) {
  const first = await browser.get(authUrl);
  const out = await browser.walk(first, { username: user.username, password: user.password }, redirectUri);
  if (out.redirect) return out.redirect;
  if (out.form_post) throw new Error("the cloud answered with a form post; expected a redirect");
  throw new Error(`the sign-in ended on a page without a way back to the app: ${pageText(out.page.body).slice(0, 300)}`);
}

/** The query (or fragment) parameters of a redirect back to the app. */
export function callbackParams(url) {
  const u = new URL(url);
  const params = new URLSearchParams(u.search);
  if (u.hash.length > 1) for (const [k, v] of new URLSearchParams(u.hash.slice(1))) params.set(k, v);
  return params;
}

/**
 * Completes a device code sign-in as the person at a browser would: the code page, then the
 * sign-in pages. Returns the text of the page it ends on (which names the app).
 */
export async function completeDeviceCode(verificationUri, userCode, user) {
  const browser = new FormBrowser();
  const entry = await browser.get(verificationUri);
  const out = await browser.walk(entry, {
    user_code: userCode,
    username: user.username,
    password: user.password,
  });
  if (!out.page) throw new Error("the device code pages redirected away");
  return pageText(out.page.body);
}
