// A generic OpenID Connect relying party against a Passthru cloud, with nothing
// Microsoft-specific: openid-client (discovery, the code flow with PKCE S256, state and nonce,
// ID token checks, with non-repudiation checks on: the ID token's signature against the JWKS;
// openid-client expects RS256 unless told otherwise), its refresh token grant, and then the
// checks an oauth2-proxy-style reverse proxy makes of the ID token with jose: signature from
// the JWKS (RS256 only), iss, aud, exp, and an email with email_verified = true.
//
// Spec (JSON on standard input): {"issuer": "https://HOST:PORT/TENANT_ID/v2.0", "client_id",
// "client_secret", "redirect_uri", "user": {"username", "password"}}. Prints {"results": [...]}
// with the cases "openid-client" and "oauth2-proxy-style".

import * as client from "openid-client";
import { createRemoteJWKSet, jwtVerify } from "jose";

import { finish, peek, readSpec, runCase, signInThroughPages } from "./lib.mjs";

const spec = await readSpec();
const results = [];
let idToken = null;
let config = null;

await runCase(results, "openid-client", async (out) => {
  // As a generic OpenID Connect client is set up: RS256 ID tokens (the default of OpenID Connect
  // Dynamic Client Registration), their signatures checked against the JWKS.
  const metadata = { client_secret: spec.client_secret, id_token_signed_response_alg: "RS256" };
  config = await client.discovery(new URL(spec.issuer), spec.client_id, metadata, undefined, {
    execute: [client.enableNonRepudiationChecks],
  });
  const meta = config.serverMetadata();
  out.discovery = {
    issuer: meta.issuer,
    id_token_signing_alg_values_supported: meta.id_token_signing_alg_values_supported,
    code_challenge_methods_supported: meta.code_challenge_methods_supported ?? null,
  };
  const verifier = client.randomPKCECodeVerifier();
  const state = client.randomState();
  const nonce = client.randomNonce();
  const url = client.buildAuthorizationUrl(config, {
    redirect_uri: spec.redirect_uri,
    scope: "openid profile email offline_access",
    code_challenge: await client.calculatePKCECodeChallenge(verifier),
    code_challenge_method: "S256",
    state,
    nonce,
  });
  const back = await signInThroughPages(url.href, spec.user, spec.redirect_uri);
  const tokens = await client.authorizationCodeGrant(config, new URL(back), {
    pkceCodeVerifier: verifier,
    expectedState: state,
    expectedNonce: nonce,
    idTokenExpected: true,
  });
  idToken = tokens.id_token;
  out.id = peek(tokens.id_token);
  out.claims = tokens.claims();
  out.has_refresh_token = Boolean(tokens.refresh_token);
  const refreshed = await client.refreshTokenGrant(config, tokens.refresh_token);
  out.refreshed = { id: peek(refreshed.id_token), has_access_token: Boolean(refreshed.access_token) };
});

await runCase(results, "oauth2-proxy-style", async (out) => {
  if (!idToken || !config) throw new Error("no ID token: the openid-client case failed");
  const meta = config.serverMetadata();
  const jwks = createRemoteJWKSet(new URL(meta.jwks_uri));
  const { payload, protectedHeader } = await jwtVerify(idToken, jwks, {
    issuer: meta.issuer,
    audience: spec.client_id,
    algorithms: ["RS256"],
    requiredClaims: ["exp", "iat", "sub"],
  });
  out.alg = protectedHeader.alg;
  if (typeof payload.email !== "string" || !payload.email.includes("@")) throw new Error(`no email claim: ${JSON.stringify(payload)}`);
  if (payload.email_verified !== true) throw new Error(`email_verified is ${JSON.stringify(payload.email_verified)}, not true`);
  out.email = payload.email;
  // Not vacuous: the same checks refuse another audience and an ES256-only policy.
  const refused = async (options) => {
    try {
      await jwtVerify(idToken, jwks, { issuer: meta.issuer, audience: spec.client_id, algorithms: ["RS256"], ...options });
      return false;
    } catch (e) {
      return e.code ?? e.name;
    }
  };
  out.other_audience_refused = await refused({ audience: "another-client" });
  out.other_issuer_refused = await refused({ issuer: meta.issuer + "x" });
});

finish({ results });
