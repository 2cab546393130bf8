//! The Passthru cloud identity service: the STS (OpenID Connect, Microsoft identity platform
//! v2.0 paths), the agent gateway and dispatcher, the admin API, and their store.

pub(crate) mod admin_api;
pub(crate) mod agent_auth;
pub(crate) mod agent_releases;
pub(crate) mod agent_renewal;
pub(crate) mod agent_ws;
#[cfg(test)]
mod app_developers_tests;
pub(crate) mod authorize;
pub mod backup;
pub(crate) mod browser_policy;
pub(crate) mod browser_session;
pub(crate) mod client_auth;
pub(crate) mod clock;
pub mod cluster;
pub(crate) mod cors;
pub(crate) mod device;
pub(crate) mod dirsync;
pub(crate) mod dispatcher;
pub(crate) mod domain_proof;
pub mod federation;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzz_entry;
pub(crate) mod gateway;
pub(crate) mod health;
pub mod http;
pub mod i18n;
#[cfg(test)]
pub(crate) mod in_process;
pub mod init;
pub(crate) mod issue;
pub mod limits;
pub(crate) mod lockout_gate;
pub(crate) mod look;
pub(crate) mod metrics;
pub(crate) mod mfa;
pub mod migrate;
pub(crate) mod model;
pub(crate) mod oauth_error;
pub(crate) mod pages;
pub(crate) mod password_change;
pub(crate) mod password_change_page;
pub(crate) mod password_reset;
pub(crate) mod passwords;
pub mod pki;
pub(crate) mod portal;
pub(crate) mod public_addr;
pub(crate) mod resource;
pub(crate) mod secret_box;
pub mod server;
pub mod server_cert;
pub(crate) mod signin;
pub(crate) mod state;
pub(crate) mod store;
pub mod sts;
pub(crate) mod sync_leases;
#[cfg(test)]
mod test_app;
#[cfg(test)]
pub(crate) mod test_state;
pub(crate) mod token;
pub(crate) mod tokens;
pub(crate) mod writeback;
