// A single-page app as the MSAL.js guides write one, configured for a Passthru cloud: the
// only differences from Entra are the authority and knownAuthorities. On its first load it
// signs in with loginRedirect; when the cloud sends the browser back (the code in the URL's
// fragment), handleRedirectPromise redeems it (PKCE, from this origin: CORS), then
// acquireTokenSilent with forceRefresh redeems the refresh token. The outcome goes to #result
// as JSON for the test to read.

const stage = (s) => {
  document.getElementById("stage").textContent = s;
};
const done = (o) => {
  document.getElementById("result").textContent = JSON.stringify(o);
};

function summary(r) {
  return {
    access_token: r.accessToken,
    id_token: r.idToken,
    id_token_claims: r.idTokenClaims,
    scopes: r.scopes,
    token_type: r.tokenType,
    from_cache: r.fromCache,
    account: r.account && {
      username: r.account.username,
      home_account_id: r.account.homeAccountId,
      tenant_id: r.account.tenantId,
    },
  };
}

const out = { msal_browser: msal.version ?? null, console: [] };
try {
  stage("config");
  const cfg = await (await fetch("/config.json")).json();
  const pca = new msal.PublicClientApplication({
    auth: {
      clientId: cfg.client_id,
      authority: cfg.authority,
      knownAuthorities: [cfg.known_authority],
      redirectUri: cfg.redirect_uri,
    },
    cache: { cacheLocation: "sessionStorage" },
    system: {
      loggerOptions: {
        logLevel: msal.LogLevel.Warning,
        piiLoggingEnabled: false,
        loggerCallback: (_level, message) => out.console.push(message),
      },
    },
  });
  stage("initialize");
  await pca.initialize();
  stage("handleRedirectPromise");
  const back = await pca.handleRedirectPromise();
  if (!back) {
    if (sessionStorage.getItem("passthru-test-started")) {
      throw new Error("back from the cloud without a result");
    }
    sessionStorage.setItem("passthru-test-started", "1");
    stage("loginRedirect");
    await pca.loginRedirect({ scopes: cfg.scopes });
  } else {
    out.login = summary(back);
    stage("acquireTokenSilent");
    const again = await pca.acquireTokenSilent({
      account: back.account,
      scopes: cfg.scopes,
      forceRefresh: true,
    });
    out.silent = summary(again);
    out.ok = true;
    document.getElementById("who").textContent =
      `Signed in as ${back.account.username}; token refreshed silently for ${again.scopes.join(" ")}.`;
    stage("done");
    done(out);
  }
} catch (e) {
  out.ok = false;
  out.stage = document.getElementById("stage").textContent;
  out.error = `${e?.name ?? "Error"}: ${e?.errorCode ?? ""} ${e?.message ?? e}`;
  stage("failed");
  done(out);
}
