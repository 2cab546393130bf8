//! The HTTPS client of the Passthru cloud, shared by `passthru-agent register` and
//! `passthru-cloud admin`: the administrator's sign-in through the cloud's token endpoint
//! (password grant of the first-party admin client), JSON calls to the admin API, and errors
//! that say what to do (unreachable cloud, untrusted certificate, refused sign-in, API refusal).
//!
//! TLS is rustls with the ring provider; the cloud's certificate is verified against the
//! system's roots plus a CA file when one is given, never skipped. The client reaches the
//! cloud directly, through the environment's proxy, or through a given HTTP CONNECT proxy
//! ([`Route`]); TLS to the cloud always runs end to end. Both binaries also take
//! systemd's service notifications from here ([`service_notify`]).

mod cloud_client;
mod credentials;
mod error;
pub mod service_notify;
pub mod tls;

pub use cloud_client::{CloudClient, ProxyRoute, Route, CONNECT_TIMEOUT, REQUEST_TIMEOUT};
pub use credentials::{admin_credentials_from_env_or_prompt, ADMIN_PASSWORD_ENV, ADMIN_UPN_ENV};
pub use error::{untrusted_certificate_reason, ClientError};
