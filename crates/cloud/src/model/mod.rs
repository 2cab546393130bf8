//! Plain types of the cloud's domain, with their parsing and rules: no I/O, no store, no
//! HTTP. Everything else may import them; they import nothing of the crate.

pub mod mfa_policy;
pub mod records;
pub mod settings;

/// Client id of the built-in portal client (`crate::portal`). It has no row in `apps`:
/// `/authorize` accepts it with exactly the redirect URI `{base}/{tenant}/portal/callback`,
/// and its codes are redeemed only inside the cloud (the token endpoint does not know it).
pub const PORTAL_CLIENT_ID: &str = "7c1d9e4a-2b6f-4f0e-8a35-d41c6e9b0f12";
