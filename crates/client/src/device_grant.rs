//! The administrator's sign-in through a browser (the device authorization grant, RFC 8628)
//! and the refresh token grant, both for the first-party admin client: what lets an
//! administrator who must prove a second factor use `passthru-agent register` and
//! `passthru-cloud admin`, which the password grant cannot (AADSTS50076).

use std::future::Future;
use std::time::{Duration, Instant};

use passthru_proto::admin::{ADMIN_CLIENT_ID, ADMIN_SCOPE};
use serde::Deserialize;
use zeroize::Zeroizing;

use crate::cloud_client::{check_tenant, excerpt, rejected, TokenErrorAnswer};
use crate::error::ClientError;
use crate::CloudClient;

/// The grant type of a device's poll of the token endpoint.
const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";
/// Added to the polling interval at each `slow_down` (RFC 8628, section 3.5).
pub const SLOW_DOWN_STEP: Duration = Duration::from_secs(5);
/// The interval when the cloud gives none (RFC 8628's default).
const DEFAULT_INTERVAL: Duration = Duration::from_secs(5);
/// Bounds on what a cloud may ask for: no busy loop, no wait of hours.
const MIN_INTERVAL: Duration = Duration::from_secs(1);
const MAX_INTERVAL: Duration = Duration::from_secs(60);
const MAX_LIFETIME: Duration = Duration::from_secs(3600);

/// Whether a sign-in also asks for a refresh token (`offline_access`): the admin CLI keeps
/// one in its token cache; `register` signs in once and needs none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refresh {
    /// Ask for a refresh token too.
    Wanted,
    /// The access token alone.
    NotWanted,
}

impl Refresh {
    fn scope(self) -> String {
        match self {
            Refresh::Wanted => format!("{ADMIN_SCOPE} offline_access"),
            Refresh::NotWanted => ADMIN_SCOPE.to_string(),
        }
    }
}

/// The tokens of an administrator's sign-in. Zeroized when dropped; `Debug` shows no token.
pub struct AdminTokens {
    /// The access token for the admin API.
    pub access_token: Zeroizing<String>,
    /// Seconds the access token is valid for, from when it was issued.
    pub expires_in: u64,
    /// The refresh token, when `offline_access` was asked for and granted.
    pub refresh_token: Option<Zeroizing<String>>,
}

impl std::fmt::Debug for AdminTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminTokens")
            .field("expires_in", &self.expires_in)
            .field("refresh_token", &self.refresh_token.is_some())
            .finish_non_exhaustive()
    }
}

/// The token endpoint's success answer, as [`AdminTokens`] reads it.
#[derive(Deserialize)]
struct TokenSet {
    access_token: Zeroizing<String>,
    #[serde(default)]
    expires_in: Option<u64>,
    #[serde(default)]
    refresh_token: Option<Zeroizing<String>>,
}

/// A device code the cloud handed out: what to show the administrator, and what to poll with.
pub struct DeviceCode {
    device_code: Zeroizing<String>,
    /// The code to type at [`DeviceCode::verification_uri`].
    pub user_code: String,
    /// The page where the administrator signs in.
    pub verification_uri: String,
    /// The cloud's sentence for the administrator (the page and the code).
    pub message: String,
    /// How long the code may be used (at most an hour, whatever the cloud says).
    pub expires_in: Duration,
    /// How long to wait between polls (1 to 60 s, whatever the cloud says).
    pub interval: Duration,
}

impl std::fmt::Debug for DeviceCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceCode")
            .field("user_code", &self.user_code)
            .field("verification_uri", &self.verification_uri)
            .field("expires_in", &self.expires_in)
            .field("interval", &self.interval)
            .finish_non_exhaustive()
    }
}

/// The device code endpoint's answer.
#[derive(Deserialize)]
struct DeviceAnswer {
    device_code: Zeroizing<String>,
    user_code: String,
    verification_uri: String,
    #[serde(default)]
    message: Option<String>,
    expires_in: u64,
    #[serde(default)]
    interval: Option<u64>,
}

/// The clock of the polling loop: the real one sleeps; tests' one moves a fake time, so that
/// the waits and the expiry are tested without waiting.
pub trait PollClock {
    /// Time since a fixed start.
    fn now(&self) -> Duration;
    /// Waits `d`.
    fn sleep(&mut self, d: Duration) -> impl Future<Output = ()> + Send;
}

/// The real clock: `tokio::time::sleep`.
#[derive(Debug)]
pub struct RealClock {
    start: Instant,
}

impl RealClock {
    /// A clock starting now.
    pub fn new() -> RealClock {
        RealClock {
            start: Instant::now(),
        }
    }
}

impl Default for RealClock {
    fn default() -> Self {
        RealClock::new()
    }
}

impl PollClock for RealClock {
    fn now(&self) -> Duration {
        self.start.elapsed()
    }

    fn sleep(&mut self, d: Duration) -> impl Future<Output = ()> + Send {
        tokio::time::sleep(d)
    }
}

/// What one poll of the token endpoint said.
enum Poll {
    Tokens(AdminTokens),
    Pending,
    SlowDown,
}

/// `text` without control characters: what the cloud says goes to a terminal, where escape
/// sequences would act.
fn printable(text: &str) -> String {
    text.chars().filter(|c| !c.is_control()).collect()
}

/// Whole minutes of `d`, at least one, for messages.
fn minutes(d: Duration) -> u64 {
    d.as_secs().div_ceil(60).max(1)
}

/// Reads a token endpoint's success answer.
fn token_set(status: u16, body: &str) -> Result<AdminTokens, ClientError> {
    let set: TokenSet =
        serde_json::from_str(body).map_err(|e| ClientError::UnexpectedResponse {
            status,
            detail: format!("the token answer has no access_token ({e})"),
        })?;
    Ok(AdminTokens {
        access_token: set.access_token,
        expires_in: set.expires_in.unwrap_or(0),
        refresh_token: set.refresh_token.filter(|t| !t.is_empty()),
    })
}

/// Reads the answer to one poll.
fn poll_answer(status: u16, body: &str, lifetime: Duration) -> Result<Poll, ClientError> {
    if (200..300).contains(&status) {
        return token_set(status, body).map(Poll::Tokens);
    }
    let Ok(err) = serde_json::from_str::<TokenErrorAnswer>(body) else {
        return Err(ClientError::UnexpectedResponse {
            status,
            detail: excerpt(body),
        });
    };
    match err.error.as_str() {
        "authorization_pending" => Ok(Poll::Pending),
        "slow_down" => Ok(Poll::SlowDown),
        "expired_token" => Err(ClientError::DeviceCodeExpired {
            minutes: minutes(lifetime),
        }),
        "access_denied" | "authorization_declined" => Err(ClientError::SignInDeclined),
        _ => Err(rejected(err)),
    }
}

impl CloudClient {
    /// Starts the administrator's sign-in through a browser: asks the cloud for a device code
    /// for the admin client. Show [`DeviceCode::message`], then
    /// [`CloudClient::admin_device_token`].
    pub async fn admin_device_code(
        &self,
        tenant: &str,
        refresh: Refresh,
    ) -> Result<DeviceCode, ClientError> {
        check_tenant(tenant)?;
        let form = Zeroizing::new(
            url::form_urlencoded::Serializer::new(String::new())
                .append_pair("client_id", ADMIN_CLIENT_ID)
                .append_pair("scope", &refresh.scope())
                .finish(),
        );
        let (status, body) = self
            .post_form(&format!("/{tenant}/oauth2/v2.0/devicecode"), &form)
            .await?;
        if !(200..300).contains(&status) {
            return Err(crate::cloud_client::token_error(status, &body));
        }
        let answer: DeviceAnswer =
            serde_json::from_str(&body).map_err(|e| ClientError::UnexpectedResponse {
                status,
                detail: format!("the device code answer is not what RFC 8628 describes ({e})"),
            })?;
        let user_code = printable(&answer.user_code);
        let verification_uri = printable(&answer.verification_uri);
        let message = answer
            .message
            .map(|m| printable(&m))
            .filter(|m| !m.trim().is_empty())
            .unwrap_or_else(|| {
                format!(
                    "To sign in, use a web browser to open the page {verification_uri} and enter the code {user_code} to authenticate."
                )
            });
        Ok(DeviceCode {
            device_code: answer.device_code,
            user_code,
            verification_uri,
            message,
            expires_in: Duration::from_secs(answer.expires_in).min(MAX_LIFETIME),
            interval: answer
                .interval
                .map_or(DEFAULT_INTERVAL, Duration::from_secs)
                .clamp(MIN_INTERVAL, MAX_INTERVAL),
        })
    }

    /// Polls the token endpoint until the administrator has signed in with `code` (then the
    /// tokens), every [`DeviceCode::interval`] (5 s longer at each `slow_down`), and gives up
    /// when the code expires ([`ClientError::DeviceCodeExpired`]). A sign-in declined in the
    /// browser is [`ClientError::SignInDeclined`]; any other refusal
    /// [`ClientError::Rejected`].
    pub async fn admin_device_token(
        &self,
        tenant: &str,
        code: &DeviceCode,
        clock: &mut impl PollClock,
    ) -> Result<AdminTokens, ClientError> {
        check_tenant(tenant)?;
        let form = Zeroizing::new(
            url::form_urlencoded::Serializer::new(String::new())
                .append_pair("grant_type", DEVICE_GRANT)
                .append_pair("client_id", ADMIN_CLIENT_ID)
                .append_pair("device_code", &code.device_code)
                .finish(),
        );
        let path = format!("/{tenant}/oauth2/v2.0/token");
        let deadline = clock.now() + code.expires_in;
        let expired = || ClientError::DeviceCodeExpired {
            minutes: minutes(code.expires_in),
        };
        let mut interval = code.interval;
        loop {
            // Never sleep past the code's end: stop there instead.
            let left = deadline.saturating_sub(clock.now());
            if left < interval {
                clock.sleep(left).await;
                return Err(expired());
            }
            clock.sleep(interval).await;
            let (status, body) = self.post_form(&path, &form).await?;
            match poll_answer(status, &body, code.expires_in)? {
                Poll::Tokens(tokens) => return Ok(tokens),
                Poll::Pending => {}
                Poll::SlowDown => interval = (interval + SLOW_DOWN_STEP).min(MAX_INTERVAL),
            }
        }
    }

    /// Redeems a refresh token of the admin client for new tokens (the cloud rotates it: keep
    /// the new one). An expired, revoked or already used one is [`ClientError::Rejected`]
    /// (AADSTS70008): sign in again.
    pub async fn admin_refresh(
        &self,
        tenant: &str,
        refresh_token: &str,
    ) -> Result<AdminTokens, ClientError> {
        check_tenant(tenant)?;
        let form = Zeroizing::new(
            url::form_urlencoded::Serializer::new(String::new())
                .append_pair("grant_type", "refresh_token")
                .append_pair("client_id", ADMIN_CLIENT_ID)
                .append_pair("scope", &Refresh::Wanted.scope())
                .append_pair("refresh_token", refresh_token)
                .finish(),
        );
        let (status, body) = self
            .post_form(&format!("/{tenant}/oauth2/v2.0/token"), &form)
            .await?;
        if (200..300).contains(&status) {
            token_set(status, &body)
        } else {
            Err(crate::cloud_client::token_error(status, &body))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    #[test]
    fn poll_answers() -> Result<(), String> {
        let pending = r#"{"error":"authorization_pending","error_description":"AADSTS70016: OAuth 2.0 device flow error. Authorization is pending.","error_codes":[70016]}"#;
        assert!(matches!(poll_answer(400, pending, HOUR), Ok(Poll::Pending)));
        let slow =
            r#"{"error":"slow_down","error_description":"AADSTS70016: ...","error_codes":[70016]}"#;
        assert!(matches!(poll_answer(400, slow, HOUR), Ok(Poll::SlowDown)));
        let expired = r#"{"error":"expired_token","error_description":"AADSTS70019: ...","error_codes":[70019]}"#;
        let err = poll_answer(400, expired, Duration::from_secs(900)).err();
        assert!(
            matches!(err, Some(ClientError::DeviceCodeExpired { minutes: 15 })),
            "{err:?}"
        );
        let declined =
            r#"{"error":"authorization_declined","error_description":"AADSTS70000: ..."}"#;
        assert!(matches!(
            poll_answer(400, declined, HOUR),
            Err(ClientError::SignInDeclined)
        ));
        let used = r#"{"error":"invalid_grant","error_description":"AADSTS70008: The provided authorization code or refresh token has expired.","error_codes":[70008]}"#;
        assert!(matches!(
            poll_answer(400, used, HOUR),
            Err(ClientError::Rejected { code: 70008, .. })
        ));
        assert!(matches!(
            poll_answer(502, "<html>", HOUR),
            Err(ClientError::UnexpectedResponse { status: 502, .. })
        ));
        let ok =
            r#"{"access_token":"a","expires_in":3600,"refresh_token":"r","token_type":"Bearer"}"#;
        let Ok(Poll::Tokens(t)) = poll_answer(200, ok, HOUR) else {
            return Err("tokens expected".into());
        };
        assert_eq!(
            (
                t.access_token.as_str(),
                t.expires_in,
                t.refresh_token.as_deref().map(String::as_str)
            ),
            ("a", 3600, Some("r"))
        );
        // Debug never shows a token.
        assert!(!format!("{t:?}").contains('"'), "{t:?}");
        Ok(())
    }

    #[test]
    fn what_the_cloud_says_is_printed_without_control_characters() {
        assert_eq!(
            printable("open \u{1b}[2Jhttps://x\r\n and enter BCDF-GHJK"),
            "open [2Jhttps://x and enter BCDF-GHJK"
        );
    }

    #[test]
    fn minutes_round_up() {
        assert_eq!(minutes(Duration::from_secs(900)), 15);
        assert_eq!(minutes(Duration::from_secs(61)), 2);
        assert_eq!(minutes(Duration::ZERO), 1);
    }
}
