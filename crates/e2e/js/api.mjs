// A web API protected by Passthru's access tokens, written as a Node developer writes one for
// Entra: jose's createRemoteJWKSet + jwtVerify check the signature against the cloud's JWKS,
// the issuer, the audience (the API's client id or its App ID URI) and the lifetime; then each
// route checks what it needs: `scp` (delegated permissions) or `roles` (app roles).
//
//   GET /me     a delegated token with the scope `read_scope`: 200 {oid, tid, scp, roles}
//   GET /admin  a delegated token whose user holds the role `admin_role`
//   GET /jobs   an app-only token (no scp) whose app holds the role `app_role`
// 401 when the token is not valid for this API, 403 when it lacks the scope or role.
//
// Spec (JSON on standard input): {"issuer", "jwks_uri", "audiences": [API client id, App ID
// URI], "read_scope", "admin_role", "app_role", "calls": [{"name", "route", "token"}]}. The
// API listens on 127.0.0.1 (a free port), makes each call to itself over HTTP, and prints
// {"results": [{"name", "status", "body"}]}; the Rust test compares each status with what it
// expects. A call with "tamper": true sends the token with its payload changed (signature
// kept).

import http from "node:http";

import { createRemoteJWKSet, errors, jwtVerify } from "jose";

import { finish, log, readSpec } from "./lib.mjs";

const spec = await readSpec();
const jwks = createRemoteJWKSet(new URL(spec.jwks_uri));

function bearer(req) {
  const h = req.headers.authorization ?? "";
  return h.startsWith("Bearer ") ? h.slice(7) : null;
}

async function authenticate(req) {
  const token = bearer(req);
  if (!token) return { status: 401, error: "no bearer token" };
  try {
    const { payload, protectedHeader } = await jwtVerify(token, jwks, {
      issuer: spec.issuer,
      audience: spec.audiences,
      algorithms: ["RS256", "ES256"],
      requiredClaims: ["exp", "iat", "tid", "oid"],
      clockTolerance: 60,
    });
    return { payload, alg: protectedHeader.alg };
  } catch (e) {
    const kind = e instanceof errors.JOSEError ? e.code : e.name;
    return { status: 401, error: `${kind}: ${e.message}` };
  }
}

const scopes = (p) => (typeof p.scp === "string" ? p.scp.split(" ").filter(Boolean) : []);
const roles = (p) => (Array.isArray(p.roles) ? p.roles : []);

async function handle(req) {
  const auth = await authenticate(req);
  if (auth.status) return [auth.status, { error: auth.error }];
  const p = auth.payload;
  const who = { oid: p.oid, tid: p.tid, scp: p.scp ?? null, roles: roles(p), aud: p.aud, azp: p.azp ?? null, alg: auth.alg };
  const url = new URL(req.url, "http://api");
  switch (url.pathname) {
    case "/me":
      if (!scopes(p).includes(spec.read_scope)) return [403, { error: `the token lacks the scope ${spec.read_scope}`, ...who }];
      return [200, who];
    case "/admin":
      if (!p.scp) return [403, { error: "a user's token is needed", ...who }];
      if (!roles(p).includes(spec.admin_role)) return [403, { error: `the user lacks the role ${spec.admin_role}`, ...who }];
      return [200, who];
    case "/jobs":
      if (p.scp) return [403, { error: "an app-only token is needed", ...who }];
      if (!roles(p).includes(spec.app_role)) return [403, { error: `the app lacks the role ${spec.app_role}`, ...who }];
      return [200, who];
    default:
      return [404, { error: "no such route" }];
  }
}

const server = http.createServer((req, res) => {
  handle(req).then(
    ([status, body]) => {
      res.writeHead(status, { "content-type": "application/json" });
      res.end(JSON.stringify(body));
    },
    (e) => {
      log("API error:", e);
      res.writeHead(500);
      res.end();
    },
  );
});
await new Promise((ok) => server.listen(0, "127.0.0.1", ok));
const base = `http://127.0.0.1:${server.address().port}`;

/** The token with one claim of its payload changed, its signature kept. */
function tampered(token) {
  const [h, p, s] = token.split(".");
  const payload = JSON.parse(Buffer.from(p, "base64url").toString());
  payload.oid = "00000000-0000-0000-0000-000000000000";
  return [h, Buffer.from(JSON.stringify(payload)).toString("base64url"), s].join(".");
}

const results = [];
for (const call of spec.calls) {
  try {
    if (!call.token) {
      results.push({ name: call.name, status: null, error: "no token to send (an earlier step failed)" });
      continue;
    }
    const token = call.tamper ? tampered(call.token) : call.token;
    const res = await fetch(base + call.route, { headers: { authorization: `Bearer ${token}` } });
    results.push({ name: call.name, status: res.status, body: await res.json() });
  } catch (e) {
    results.push({ name: call.name, status: null, error: String(e?.message ?? e) });
  }
}
server.close();
finish({ results });
