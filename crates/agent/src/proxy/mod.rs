//! The outbound HTTP CONNECT proxy the agent may have to reach the cloud through: which one
//! ([`settings`]: `[cloud] proxy` with `proxy_auth_file`, else `HTTPS_PROXY` and `NO_PROXY`)
//! and the tunnel through it ([`tunnel`]: `CONNECT host:port`, then the agent's own TLS to the
//! cloud runs end to end inside). `register`, `run` (every connection, renewals included) and
//! `doctor` use these.

pub mod settings;
pub mod tunnel;

pub use settings::{
    BasicCredentials, ProxyAddress, ProxyConfig, ProxyError, ProxySettings, ProxySource,
};
pub use tunnel::{open_tunnel, MAX_ANSWER_BYTES, PROXY_ANSWER_TIMEOUT, PROXY_CONNECT_TIMEOUT};
