//! Multi-factor authentication: the step between a checked password and a finished sign-in.
//!
//! Every path that has just checked a password goes through here: the sign-in page
//! ([`continue_sign_in`]), the password grant ([`password_grant_allowed`]) and self-service
//! password reset ([`has_second_factor`], [`verify_second_factor`]).
//!
//! - [`crate::model::mfa_policy`]: who is asked (the tenant's `mfa` setting, a user's own
//!   policy);
//! - [`totp`]: RFC 6238 codes (totp-rs), [`recovery`]: one-time recovery codes;
//! - [`crate::secret_box`]: TOTP secrets sealed at rest (ChaCha20-Poly1305, `mfa.key`);
//! - [`verify`]: checking a typed code once, with the wrong-code lock;
//! - [`flow`]: the pages' handlers (code, enrolment at sign-in, `/mfa/setup`), [`pages`]
//!   their HTML, [`qr`] the QR code.

use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use passthru_proto::Aadsts;
use uuid::Uuid;

use crate::model::mfa_policy as policy;
use crate::oauth_error::OAuthError;
use crate::state::Shared;
use crate::store::mfa::MfaRecord;
use crate::store::{AuthzRequest, StoreError, Tenant, User};

pub mod flow;
pub mod pages;
pub mod qr;
pub mod recovery;
pub mod totp;
pub mod verify;

/// The second-factor routes, merged into the server's router.
pub fn routes() -> Router<Shared> {
    Router::new()
        .route("/{tenant}/login/mfa", post(flow::code))
        .route("/{tenant}/login/mfa/enrol", post(flow::enrol))
        .route(
            "/{tenant}/login/mfa/continue",
            post(flow::after_recovery_codes),
        )
        .route(
            "/{tenant}/mfa/setup",
            get(flow::setup).post(flow::setup_confirm),
        )
}

/// After a successful password check on the sign-in page: asks for (or enrols) the second
/// factor when the user's policy says so, then finishes the sign-in.
pub(crate) async fn continue_sign_in(
    state: &Shared,
    t: &Tenant,
    req: &AuthzRequest,
    user: &User,
    corr: Uuid,
) -> Response {
    flow::after_password(state, t, req, user, corr).await
}

/// The password grant cannot ask for a second factor: a user who needs one gets 50076.
/// `known`: the user's MFA row if the password check read it along.
pub(crate) async fn password_grant_allowed(
    state: &Shared,
    t: &Tenant,
    user: &User,
    known: Option<MfaRecord>,
    corr: Uuid,
) -> Result<(), OAuthError> {
    let rec = match known {
        Some(rec) => rec,
        None => state
            .store
            .mfa(t.id, user.id)
            .await
            .map_err(|e| OAuthError::fault(corr, e))?,
    };
    let effective = policy::effective(t.settings.mfa, rec.policy);
    if !policy::password_grant_refused(effective, rec.enrolled) {
        return Ok(());
    }
    verify::log(state, t, &user.upn, None, None, Aadsts::MfaRequired, corr).await;
    Err(OAuthError::new(Aadsts::MfaRequired, corr).with_detail(
        "This user must prove a second factor, which the password grant cannot ask for: sign in through the browser (authorization code or device code flow).",
    ))
}

/// Whether the user has a second factor to prove (self-service reset requires one): a
/// confirmed authenticator, whatever the policy.
pub(crate) async fn has_second_factor(
    state: &Shared,
    t: &Tenant,
    user: &User,
) -> Result<bool, StoreError> {
    Ok(state.store.mfa(t.id, user.id).await?.enrolled)
}

/// Checks a code (TOTP or recovery code) of the user's second factor; a code is accepted
/// once. Wrong codes count toward the second factor's lock (per user, whatever the flow).
pub(crate) async fn verify_second_factor(
    state: &Shared,
    t: &Tenant,
    user: &User,
    code: &str,
    now: i64,
) -> Result<verify::Verdict, StoreError> {
    verify::check(state, t, user, code, now).await
}

#[cfg(test)]
mod tests;
