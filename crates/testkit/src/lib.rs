//! Test bed: the fixtures the end-to-end tests (`crates/e2e`), the benchmarks (`crates/bench`)
//! and the directory crate's tests build on, and the tools made of them (`passthru-testbed`,
//! `passthru-scan`, `passthru-demo`, `passthru-connect-proxy`).
//!
//! - [`forest`]: throwaway Samba AD forests (provision, start, stop) on loopback addresses;
//! - [`second_dc`]: a second DC joined to a forest, for failover tests;
//! - [`users`]: test users in every account state, created over LDAPS;
//! - [`bed`]: the test bed as tests see it (`testbed.json`, `PASSTHRU_TESTBED`);
//! - [`procs`]: the cloud and agents as real processes;
//! - [`device_code`]: a command signing in with `--device-code`, its user code read from its
//!   standard error;
//! - [`fixture`]: a tenant with a managed domain, an app, an agent and PTA on, step by step;
//! - [`browser`]: a browser-like client for the sign-in pages (no redirects, cookies per origin);
//! - [`http`]: an HTTPS client for tests and a sign-in client;
//! - [`load`]: steady sign-in load for the fault tests, its figures and checks;
//! - [`scan`]: the password scan;
//! - [`slapd`]: a throwaway OpenLDAP slapd over LDAPS (for the relay benchmark);
//! - [`agent_drive`]: the cloud's side of one real agent's connection (the agent benchmark);
//! - [`scripted_agent`]: an agent connection the test scripts, with a registered agent's
//!   certificate, against the real cloud;
//! - [`connect_proxy`]: a real HTTP CONNECT proxy (`passthru-connect-proxy`), tunnelling or
//!   TLS-inspecting;
//! - [`netblock`]: one user's traffic to one port rejected (iptables), for route tests.

pub mod agent_drive;
pub mod bed;
pub mod browser;
pub mod cluster;
pub mod connect_proxy;
pub mod device_code;
pub mod dns;
pub mod fixture;
pub mod forest;
pub mod http;
pub mod load;
pub mod netblock;
pub mod procs;
pub mod scan;
pub mod scripted_agent;
pub mod second_dc;
pub mod slapd;
pub mod tls;
pub mod users;

pub use bed::{secret, BedForest, Testbed};
pub use forest::{Forest, ForestSpec};
pub use users::{AccountState, TestUser};
