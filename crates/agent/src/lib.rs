//! The Passthru authentication agent: registers with the cloud, then keeps one outbound,
//! mutually authenticated WebSocket to it, opens each HPKE-sealed password, checks it against
//! Active Directory over LDAPS, and answers with the outcome. It never listens on a port.
//!
//! Modules, in the order a request meets them: [`connect`] and [`session`] (the link),
//! [`admission`] and [`replay`] (checks), [`validation`] with [`validator`] and
//! [`directory_validator`] (the directory), [`trace_log`] (failures). Around them: [`cli`],
//! [`config`], [`state_dir`], [`lock`], [`register`], [`run`], [`failover`], [`backoff`],
//! [`helpmsg`], [`status`], [`proxy`] (the way out through an HTTP proxy), [`update`] (signed
//! auto-update and the publisher's tools); systemd's notifications
//! (`passthru_client::service_notify`).

pub mod admin_log;
pub mod admission;
pub mod backoff;
pub mod cli;
pub mod clock;
pub mod collect_logs;
pub mod config;
pub mod connect;
pub mod directory_validator;
pub mod doctor;
pub mod failover;
pub mod helpmsg;
pub mod host;
pub mod link_error;
pub mod lock;
pub mod log_file;
pub mod proxy;
pub mod register;
pub mod renewal;
pub mod replay;
pub mod run;
pub mod session;
pub mod session_log;
pub mod state_dir;
pub mod stats;
pub mod status;
pub mod tls_config;
pub mod trace_log;
pub mod update;
pub mod validation;
pub mod validator;
pub mod wrong_passwords;

#[cfg(test)]
mod test_support;
