//! The Passthru cloud identity service: the STS (OpenID Connect, Microsoft identity platform
//! v2.0 paths), the agent gateway and dispatcher, the admin API, and their store.

pub mod admin_api;
pub mod admin_cli;
pub mod agent_ws;
pub mod authorize;
pub mod browser_policy;
pub mod browser_session;
pub mod clock;
pub mod device;
pub mod dirsync;
pub mod dispatcher;
pub mod domain_proof;
pub mod federation;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzz_entry;
pub mod gateway;
pub mod http;
#[cfg(test)]
pub(crate) mod in_process;
pub mod init;
pub mod issue;
pub mod limits;
pub(crate) mod lockout_gate;
pub mod metrics;
pub mod mfa;
pub mod model;
pub mod oauth_error;
pub mod pages;
pub mod password_change;
pub mod password_change_page;
pub mod password_reset;
pub mod passwords;
pub mod pki;
pub mod portal;
pub(crate) mod public_addr;
pub mod secret_box;
pub mod server;
pub mod signin;
pub mod state;
pub mod store;
pub mod sts;
pub mod sync_leases;
#[cfg(test)]
mod test_app;
#[cfg(test)]
pub(crate) mod test_state;
pub mod token;
pub mod tokens;
pub mod writeback;
