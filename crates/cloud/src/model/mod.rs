//! Plain types of the cloud's domain, with their parsing and rules: no I/O, no store, no
//! HTTP. Everything else may import them; they import nothing of the crate.

pub mod mfa_policy;
pub mod records;
pub mod settings;
