//! The HTTPS client of the Passthru cloud, shared by `passthru-agent register` and
//! `passthru-cloud admin`: the administrator's sign-in through the cloud's token endpoint
//! (the password grant of the first-party admin client, or its device authorization grant for
//! administrators who must prove a second factor, and the refresh token grant), JSON calls to
//! the admin API, and errors that say what to do (unreachable cloud, untrusted certificate,
//! refused sign-in, expired sign-in code, API refusal).
//!
//! TLS is rustls with the ring provider; the cloud's certificate is verified against the
//! system's roots plus a CA file when one is given, never skipped. The client reaches the
//! cloud directly, through the environment's proxy, or through a given HTTP CONNECT proxy
//! ([`Route`]); TLS to the cloud always runs end to end. Both binaries also take
//! systemd's service notifications from here ([`service_notify`]).

mod cloud_client;
mod credentials;
mod device_grant;
mod error;
pub mod service_notify;
pub mod tls;

pub use cloud_client::{
    normalize_base as normalize_base_url, CloudClient, ProxyRoute, Route, CONNECT_TIMEOUT,
    REQUEST_TIMEOUT,
};
pub use credentials::{
    admin_credentials_from_env_or_prompt, admin_credentials_in_env, ADMIN_PASSWORD_ENV,
    ADMIN_UPN_ENV,
};
pub use device_grant::{AdminTokens, DeviceCode, PollClock, RealClock, Refresh, SLOW_DOWN_STEP};
pub use error::{untrusted_certificate_reason, ClientError};
