// MSAL Node (@azure/msal-node), unchanged, against a Passthru cloud: the calls a Node web app,
// daemon or CLI makes, configured as for Entra except for the authority and knownAuthorities.
//
// Spec (JSON on standard input): {"authority": "https://HOST:PORT/TENANT", "known_authority":
// "HOST:PORT", "user": {"username", "password"}, "cases": [CASE...]}, a CASE being one of
//   {"name", "kind": "auth_code", "client_id", CREDENTIAL, "redirect_uri", "scopes": [...],
//    "refresh": bool, "authority": optional (instead of the spec's)}
//    ConfidentialClientApplication: getAuthCodeUrl (PKCE S256), the cloud's sign-in pages walked
//    as a browser would, acquireTokenByCode, then (refresh) acquireTokenSilent with forceRefresh
//    (the refresh token);
//   {"name", "kind": "client_credentials", "client_id", CREDENTIAL, "scopes": ["API/.default"]}
//    acquireTokenByClientCredential;
//   {"name", "kind": "device_code", "client_id", "scopes": [...]}  PublicClientApplication
//    acquireTokenByDeviceCode, the code entered on the cloud's /devicelogin pages meanwhile;
// CREDENTIAL being "secret": "..." or "certificate": {"cert_pem", "private_key_pem",
// "thumbprint": "sha256" (MSAL's thumbprintSha256: a PS256 assertion with x5t#S256) or "sha1"
// (thumbprint: RS256 with x5t)}.
//
// Prints {"msal_node": VERSION, "results": [{"name", "ok", "error"?, ...}]}: for each token
// the raw token and its decoded header and claims, for the Rust test to check.

import { X509Certificate } from "node:crypto";

import * as msal from "@azure/msal-node";

import { callbackParams, completeDeviceCode, finish, log, peek, readSpec, runCase, signInThroughPages } from "./lib.mjs";

function system() {
  return {
    loggerOptions: {
      logLevel: msal.LogLevel.Info,
      piiLoggingEnabled: false,
      loggerCallback: (_level, message) => log(message),
    },
  };
}

function auth(spec, c) {
  const a = {
    clientId: c.client_id,
    authority: c.authority ?? spec.authority,
    knownAuthorities: [spec.known_authority],
  };
  if (c.secret) a.clientSecret = c.secret;
  if (c.certificate) {
    // The thumbprint as the developer copies it from `openssl x509 -fingerprint`: hex.
    const cert = new X509Certificate(c.certificate.cert_pem);
    const hex = (f) => f.replaceAll(":", "").toLowerCase();
    a.clientCertificate = { privateKey: c.certificate.private_key_pem };
    if (c.certificate.thumbprint === "sha256") a.clientCertificate.thumbprintSha256 = hex(cert.fingerprint256);
    else a.clientCertificate.thumbprint = hex(cert.fingerprint);
  }
  return a;
}

/** What the Rust test checks of one MSAL result. */
function tokens(r) {
  return {
    access_token: r.accessToken,
    access: peek(r.accessToken),
    id_token: r.idToken || null,
    id: peek(r.idToken),
    scopes: r.scopes,
    token_type: r.tokenType,
    from_cache: r.fromCache,
    expires_on: r.expiresOn ? Math.floor(new Date(r.expiresOn).getTime() / 1000) : null,
    account: r.account
      ? {
          username: r.account.username,
          home_account_id: r.account.homeAccountId,
          tenant_id: r.account.tenantId,
          local_account_id: r.account.localAccountId,
          name: r.account.name,
        }
      : null,
    correlation_id: r.correlationId,
  };
}

async function authCode(spec, c, out) {
  const app = new msal.ConfidentialClientApplication({ auth: auth(spec, c), system: system() });
  const crypto = new msal.CryptoProvider();
  const { verifier, challenge } = await crypto.generatePkceCodes();
  const state = crypto.createNewGuid();
  const url = await app.getAuthCodeUrl({
    scopes: c.scopes,
    redirectUri: c.redirect_uri,
    codeChallenge: challenge,
    codeChallengeMethod: "S256",
    state,
    responseMode: msal.ResponseMode.QUERY,
  });
  const sent = new URL(url).searchParams;
  out.request = {
    response_type: sent.get("response_type"),
    code_challenge_method: sent.get("code_challenge_method"),
    scope: sent.get("scope"),
  };
  const back = await signInThroughPages(url, spec.user, c.redirect_uri);
  const params = callbackParams(back);
  if (params.get("error")) throw new Error(`the cloud answered ${params.get("error")}: ${params.get("error_description")}`);
  out.state_matches = params.get("state") === state;
  const first = await app.acquireTokenByCode(
    { code: params.get("code"), scopes: c.scopes, redirectUri: c.redirect_uri, codeVerifier: verifier, state },
    { code: params.get("code"), state: params.get("state") ?? undefined },
  );
  out.code = tokens(first);
  if (c.refresh) {
    const again = await app.acquireTokenSilent({ account: first.account, scopes: c.scopes, forceRefresh: true });
    out.refreshed = tokens(again);
  }
}

async function clientCredentials(spec, c, out) {
  const app = new msal.ConfidentialClientApplication({ auth: auth(spec, c), system: system() });
  const r = await app.acquireTokenByClientCredential({ scopes: c.scopes });
  out.app = tokens(r);
}

async function deviceCode(spec, c, out) {
  const app = new msal.PublicClientApplication({
    auth: { clientId: c.client_id, authority: spec.authority, knownAuthorities: [spec.known_authority] },
    system: system(),
  });
  let entered = null;
  const r = await app.acquireTokenByDeviceCode({
    scopes: c.scopes,
    deviceCodeCallback: (resp) => {
      out.prompt = { user_code: resp.userCode, verification_uri: resp.verificationUri, message: resp.message, interval: resp.interval };
      // The person at the browser, meanwhile.
      entered = completeDeviceCode(resp.verificationUri, resp.userCode, spec.user).then(
        (text) => (out.device_page = text),
        (e) => {
          out.device_page_error = String(e?.message ?? e);
        },
      );
    },
  });
  await entered;
  out.device = tokens(r);
}

const KINDS = { auth_code: authCode, client_credentials: clientCredentials, device_code: deviceCode };

const spec = await readSpec();
const results = [];
for (const c of spec.cases) {
  await runCase(results, c.name, async (out) => {
    const run = KINDS[c.kind];
    if (!run) throw new Error(`unknown case kind ${c.kind}`);
    await run(spec, c, out);
  });
}
finish({ msal_node: msal.version ?? null, results });
