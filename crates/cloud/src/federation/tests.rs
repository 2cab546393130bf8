//! The federation callback's rules, in process: a round trip is taken once, only by the
//! browser that started it, and an identity provider's refusal or a missing code ends the
//! sign-in with a coded page and a line in the sign-in log. (The round trip with a real
//! identity provider is `crates/e2e/tests/federation.rs`.)

use axum::http::StatusCode;

use super::BROWSER_COOKIE;
use crate::in_process::Bed;
use crate::issue::hash_secret;
use crate::store::federation::FederationState;

const COOKIE: &str = "browser-binding-value";

/// A round trip in the store for the bed's pending request `authz_id`, under `state`.
async fn round_trip(bed: &Bed, state: &str, authz_id: &str) -> anyhow::Result<()> {
    let st = FederationState {
        authz_id: authz_id.into(),
        domain: "fed.example.test".into(),
        issuer: "https://idp.example.test".into(),
        nonce: "nonce".into(),
        code_verifier: "verifier".into(),
        browser_hash: hash_secret(COOKIE),
        redirect_uri: "https://localhost/contoso/federation/callback".into(),
        token_endpoint: "https://idp.example.test/token".into(),
        jwks_uri: "https://idp.example.test/jwks".into(),
        username: "erin@fed.example.test".into(),
    };
    let now = crate::clock::unix_now();
    bed.state
        .store
        .put_federation_state(&hash_secret(state), bed.tenant.id, &st, now + 600, now)
        .await?;
    Ok(())
}

fn binding() -> String {
    format!(
        "{}={COOKIE}",
        crate::browser_policy::tenant_cookie(BROWSER_COOKIE, "contoso")
    )
}

#[tokio::test]
async fn a_callback_is_taken_once_and_only_by_its_browser() -> anyhow::Result<()> {
    let bed = Bed::new(crate::in_process::ad).await?;
    let page = bed.authorize().await?;
    let authz = page.hidden("req");

    // No state, an unknown one, a state far too long: refused.
    for q in ["", "?state=unknown", &format!("?state={}", "x".repeat(600))] {
        let r = bed
            .get(&format!("/contoso/federation/callback{q}"), &binding())
            .await?;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{q}: {}", r.body);
        assert!(
            r.body.contains("didn't start in this browser"),
            "{}",
            r.body
        );
    }

    // Another browser's callback is refused, and uses the round trip up.
    round_trip(&bed, "s-1", &authz).await?;
    let r = bed
        .get("/contoso/federation/callback?state=s-1&code=c", "")
        .await?;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    let again = bed
        .get("/contoso/federation/callback?state=s-1&code=c", &binding())
        .await?;
    assert_eq!(
        again.status,
        StatusCode::FORBIDDEN,
        "taken once: {}",
        again.body
    );
    // A callback that took its round trip clears the binding cookie; one whose state is
    // unknown or used leaves it alone (it may belong to a round trip still under way).
    assert!(
        r.set_cookies().iter().any(|c| c.contains("Max-Age=0")),
        "{:?}",
        r.set_cookies()
    );
    assert!(again.set_cookies().is_empty(), "{:?}", again.set_cookies());
    Ok(())
}

#[tokio::test]
async fn a_refusal_or_a_missing_code_ends_the_sign_in_with_a_logged_code() -> anyhow::Result<()> {
    let bed = Bed::new(crate::in_process::ad).await?;
    let authz = bed.authorize().await?.hidden("req");
    round_trip(&bed, "s-2", &authz).await?;
    let r = bed
        .get(
            "/contoso/federation/callback?state=s-2&error=access_denied%3Cscript%3E",
            &binding(),
        )
        .await?;
    assert!(
        r.body.contains("AADSTS900144") || r.body.contains("AADSTS"),
        "{}",
        r.body
    );
    assert!(r.body.contains("didn't sign you in"), "{}", r.body);
    assert!(!r.body.contains("<script>"), "{}", r.body);

    let authz = bed.authorize().await?.hidden("req");
    round_trip(&bed, "s-3", &authz).await?;
    let r = bed
        .get("/contoso/federation/callback?state=s-3", &binding())
        .await?;
    assert!(r.body.contains("answered without a code"), "{}", r.body);

    let log = bed.state.store.sign_ins(bed.tenant.id, 10).await?;
    let mine: Vec<_> = log
        .iter()
        .filter(|l| l.username == "erin@fed.example.test")
        .collect();
    assert_eq!(mine.len(), 2, "{log:?}");
    assert!(
        mine.iter()
            .all(|l| l.result == "failure" && l.aadsts.is_some()),
        "{mine:?}"
    );
    Ok(())
}
