//! Messages on the agent's one outbound connection (a WebSocket over mutually authenticated
//! TLS, path `/{tenant_id}/agent/v1/connect`). Each message is one JSON text frame.
//! Liveness uses WebSocket ping/pong frames in both directions.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::codes::{Aadsts, Win32};
use crate::seal::SealedRequest;
use crate::sync::{SyncBatch, SyncDone, SyncFailed, SyncForest, SyncRun};

/// Version of this protocol; the cloud refuses agents that speak another major version.
pub const PROTOCOL_VERSION: u32 = 1;

/// Path an agent dials, relative to the cloud URL.
pub fn connect_path(tenant_id: Uuid) -> String {
    format!("/{tenant_id}/agent/v1/connect")
}

/// Path of a release's package, which an agent downloads over HTTPS with its client
/// certificate (authenticated as the agent WebSocket is), relative to the cloud URL.
pub fn release_package_path(tenant_id: Uuid, version: &str) -> String {
    format!("/{tenant_id}/agent/v1/releases/{version}/package")
}

/// Cloud -> agent.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum CloudToAgent {
    /// First message after the upgrade: who the cloud thinks the agent is, and its clock.
    Welcome {
        agent_id: Uuid,
        tenant_id: Uuid,
        /// The cloud's clock, Unix milliseconds (the agent compares it with its own).
        server_time_ms: u64,
        /// How often each side pings the other, seconds.
        heartbeat_seconds: u64,
    },
    /// Validate a password (the envelope is sealed to this agent's HPKE key).
    Validate(SealedRequest),
    /// Stop taking work; the cloud is shutting down or has revoked the agent.
    Goodbye { reason: String },
    /// Read a forest for directory sync (sent only to the forest's lease holder).
    SyncRun(SyncRun),
    /// The user's password was just changed or reset through the cloud (by any agent):
    /// forget the wrong passwords remembered for them, or the new password, if the user
    /// had tried it before it was set, would be answered 1326 from memory.
    PasswordChanged { user: String },
    /// The answer to [`AgentToCloud::RenewCertificate`]: the new client certificate (PEM),
    /// issued for the key of the request's CSR. Until the agent connects with it, its current
    /// certificate and HPKE key stay valid; the first connection made with it retires them.
    CertificateRenewed {
        certificate_pem: String,
        /// The new certificate's notAfter, Unix seconds.
        not_after: i64,
    },
    /// [`AgentToCloud::RenewCertificate`] was refused; the current certificate stays valid.
    RenewalRefused { reason: String },
    /// The answer to [`AgentToCloud::UpdateCheck`]: a release for this agent, as its signed
    /// manifest (a [`crate::release::SignedManifest`] document, as the publisher signed it).
    /// The agent verifies it with its pinned publisher key before it trusts any of it, then
    /// downloads the package from [`release_package_path`].
    UpdateOffer { signed_manifest: String },
    /// The answer to [`AgentToCloud::UpdateCheck`] when there is nothing to offer; `reason`
    /// says why (for the agent's log).
    NoUpdate { reason: String },
}

/// Agent -> cloud.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum AgentToCloud {
    /// First message from the agent.
    Hello {
        protocol: u32,
        version: String,
        host: String,
        /// UPN suffixes of the forests this agent serves (lower case).
        upn_suffixes: Vec<String>,
        /// The agent's clock, Unix milliseconds.
        agent_time_ms: u64,
        /// The forests this agent can sync (those with a service account).
        #[serde(default)]
        sync_forests: Vec<SyncForest>,
        /// The agent opens envelopes sealed in sessions ([`crate::session_seal`]); absent
        /// from older agents, which get an HPKE context per envelope.
        #[serde(default)]
        sealed_sessions: bool,
    },
    /// The answer to a [`CloudToAgent::Validate`].
    Result {
        request_id: Uuid,
        outcome: Outcome,
        /// Time spent in the agent, microseconds (for latency reports).
        agent_micros: u64,
        /// A wrong password the user tried recently, answered from the agent's memory without
        /// a bind: the cloud's smart lockout does not count it again.
        #[serde(default)]
        repeated: bool,
        /// HMAC-SHA256 (base64) over the request id, `repeated` and the outcome, keyed from
        /// the HPKE context that opened the envelope ([`crate::answer`]): only the holder of
        /// the agent's private key can answer. Absent only on refusals made before opening.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        mac: Option<String>,
    },
    /// The agent is draining: send it no new work.
    Draining,
    /// The agent's own counters, cumulative since the agent process started, sent every
    /// heartbeat (the agent listens on nothing, so its metrics travel on this stream).
    Stats(AgentStatsReport),
    /// Objects read in a sync run.
    SyncBatch(SyncBatch),
    /// A sync run ended; all its batches were sent before.
    SyncDone(SyncDone),
    /// A sync run failed.
    SyncFailed(SyncFailed),
    /// Renew this agent's credentials (sent on its live connection, so authenticated by its
    /// current client certificate): a CSR for a new TLS key pair and a new HPKE public key.
    RenewCertificate {
        /// PKCS#10 request (PEM) for the new client certificate; only its key is used.
        csr_pem: String,
        /// The new X25519 public key requests will be sealed to, base64 (32 bytes).
        hpke_public_key: String,
    },
    /// Is there a release for this agent? Answered with [`CloudToAgent::UpdateOffer`] or
    /// [`CloudToAgent::NoUpdate`].
    UpdateCheck {
        /// The version the agent runs.
        version: String,
        /// The platform it runs on ([`crate::release::this_target`]).
        target: String,
    },
}

/// An agent's own counters, cumulative since its process started (they restart from zero
/// when the agent restarts, like any Prometheus counter).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AgentStatsReport {
    /// Validations that ended in success.
    #[serde(default)]
    pub success: u64,
    /// Validations the directory refused, by Win32 code in decimal (`"1326"`). Text keys:
    /// integer keys do not survive serde's buffering of internally tagged enums.
    #[serde(default)]
    pub denied: BTreeMap<String, u64>,
    /// Validations that ended in an error, by [`AgentError`] name (`directory_unreachable`,
    /// `decrypt_failed`, ...). The `directory_*` ones are the domain controller errors.
    #[serde(default)]
    pub errors: BTreeMap<String, u64>,
    /// Time spent asking the directory (LDAP bind and search), seconds, summed.
    #[serde(default)]
    pub directory_seconds_sum: f64,
    /// How many directory round trips `directory_seconds_sum` covers.
    #[serde(default)]
    pub directory_count: u64,
    /// Validations running in the agent when the report was made.
    #[serde(default)]
    pub in_flight: u64,
    /// The health of each domain controller the agent uses.
    #[serde(default)]
    pub domain_controllers: Vec<DcStatus>,
}

/// One domain controller as an agent sees it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DcStatus {
    /// The forest's name in the agent's configuration.
    pub forest: String,
    /// `ldaps://host:port`.
    pub url: String,
    /// Used (true), or skipped and probed in the background (false).
    pub up: bool,
    /// Since when it is in this state, Unix seconds.
    pub since: i64,
    /// Transport failures since it last answered.
    #[serde(default)]
    pub consecutive_failures: u32,
}

/// What an agent learned about a password.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Outcome {
    /// The directory accepted the password.
    Success(DirectoryUser),
    /// The directory refused it; the Win32 code says why. A wrong password is an outcome.
    Denied { win32: Win32 },
    /// The agent could not get an answer from the directory, or refused the request.
    Error { error: AgentError },
    /// Password writeback: AD refused the new password under its password policy (Win32
    /// 1325); `refusal` says which rule, so the user is told what to do.
    PolicyRefused { refusal: PasswordRefusal },
}

/// Which password rule AD applied when it refused a new password. AD itself says only
/// "constraint violation, 0000052D"; the agent finds the rule from the policy in force for
/// the user (domain policy or fine-grained policy) and, on Samba, from the DC's own text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "rule", rename_all = "snake_case")]
#[non_exhaustive]
pub enum PasswordRefusal {
    /// Shorter than the minimum length.
    TooShort { min_length: u32 },
    /// Fails the complexity rule (3 of 4 character kinds, no account or full name parts).
    NotComplex,
    /// Changed too recently (minimum password age; a reset is not subject to it).
    TooYoung { min_age_seconds: u64 },
    /// One of the user's last `history_length` passwords.
    InHistory { history_length: u32 },
    /// Refused by a rule the agent could not name (a password filter, say).
    Other,
}

/// The on-premises identity of a user who signed in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectoryUser {
    /// objectGUID, as a UUID in AD's mixed-endian display form.
    pub object_guid: Uuid,
    pub user_principal_name: String,
    #[serde(default)]
    pub sam_account_name: Option<String>,
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default)]
    pub mail: Option<String>,
    /// ms-DS-ConsistencyGuid, when set: then the source anchor instead of objectGUID.
    #[serde(default)]
    pub consistency_guid: Option<Uuid>,
}

impl DirectoryUser {
    /// The source anchor: ms-DS-ConsistencyGuid when set, else objectGUID.
    pub fn anchor(&self) -> Uuid {
        self.consistency_guid.unwrap_or(self.object_guid)
    }
}

/// Why an agent could not validate a request. Each variant maps to one AADSTS code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum AgentError {
    /// No domain controller of the user's forest answered (80001).
    DirectoryUnreachable,
    /// Domain controllers answered too slowly (80002).
    DirectoryTimeout,
    /// The directory answered with something other than a bind result (80007).
    DirectoryError,
    /// The user's UPN suffix matches no forest of this agent (80004).
    NotRoutable,
    /// The envelope did not open with this agent's key (80010).
    DecryptFailed,
    /// The envelope was sealed to a key this agent does not hold (80011).
    NoKey,
    /// The cloud's and the agent's clocks differ beyond tolerance (80013).
    ClockSkew,
    /// The request's deadline had passed when it arrived (80002).
    Expired,
    /// The request id was seen before: a replay (80010: treated as a bad envelope).
    Replayed,
    /// Password writeback is not possible here: the forest has no service account on this
    /// agent, or the account lacks the right to change or reset the user's password (80007).
    WritebackNotPermitted,
    /// Password writeback refused by the agent's configuration: the user is a protected
    /// account (`adminCount=1`) and the forest does not set
    /// `writeback_protected_accounts = true` (80007).
    WritebackProtectedAccount,
    /// Password writeback refused by the agent's configuration: the user is not under the
    /// forest's `writeback_base_dn` (80007).
    WritebackOutsideScope,
}

impl AgentError {
    /// The AADSTS code a client receives.
    pub fn aadsts(self) -> Aadsts {
        match self {
            AgentError::DirectoryUnreachable => Aadsts::AgentUnavailable,
            AgentError::DirectoryTimeout | AgentError::Expired => Aadsts::AgentTimeout,
            AgentError::DirectoryError
            | AgentError::WritebackNotPermitted
            | AgentError::WritebackProtectedAccount
            | AgentError::WritebackOutsideScope => Aadsts::DirectoryCommunication,
            AgentError::NotRoutable => Aadsts::InvalidUsernameForAgent,
            AgentError::DecryptFailed | AgentError::Replayed => Aadsts::AgentDecryptFailed,
            AgentError::NoKey => Aadsts::AgentNoKey,
            AgentError::ClockSkew => Aadsts::ClockSkew,
        }
    }

    /// Short text for logs.
    pub fn describe(self) -> &'static str {
        match self {
            AgentError::DirectoryUnreachable => "no domain controller of the forest answered",
            AgentError::DirectoryTimeout => "domain controllers answered too slowly",
            AgentError::DirectoryError => "the directory returned an unexpected error",
            AgentError::NotRoutable => "the user's UPN suffix matches no configured forest",
            AgentError::DecryptFailed => "the request could not be decrypted",
            AgentError::NoKey => "the request was sealed to a key this agent does not hold",
            AgentError::ClockSkew => "the agent's clock differs from the cloud's beyond tolerance",
            AgentError::Expired => "the request had expired when it arrived",
            AgentError::Replayed => "the request id was already seen (replay)",
            AgentError::WritebackNotPermitted => "password writeback is not possible: the forest has no service account on this agent, or the account lacks the right to change or reset passwords",
            AgentError::WritebackProtectedAccount => "the user is a protected account (adminCount=1): the agent's forest configuration does not allow writing its password (writeback_protected_accounts)",
            AgentError::WritebackOutsideScope => "the user is outside the agent's writeback_base_dn for the forest: its password is not written",
        }
    }

    /// The value written as `Reason` in the agent's trace log.
    pub fn trace_reason(self) -> String {
        format!("{}", self.aadsts().code())
    }
}

impl Outcome {
    /// The AADSTS code for a failed outcome; `None` for success.
    pub fn aadsts(&self) -> Option<Aadsts> {
        match self {
            Outcome::Success(_) => None,
            Outcome::Denied { win32 } => Some(win32.aadsts()),
            Outcome::Error { error } => Some(error.aadsts()),
            Outcome::PolicyRefused { .. } => Some(Win32::PasswordRestriction.aadsts()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcome_json_shape() {
        let o = Outcome::Denied {
            win32: Win32::AccountLockedOut,
        };
        let j = serde_json::to_string(&o).unwrap_or_default();
        assert_eq!(j, r#"{"kind":"denied","win32":1909}"#);
        let back: Outcome = serde_json::from_str(&j).unwrap_or(Outcome::Error {
            error: AgentError::DirectoryError,
        });
        assert_eq!(back, o);
        assert_eq!(back.aadsts(), Some(Aadsts::AccountLocked));
    }

    #[test]
    fn unknown_message_is_an_error_not_a_panic() {
        assert!(serde_json::from_str::<CloudToAgent>(r#"{"type":"nope"}"#).is_err());
        assert!(serde_json::from_str::<AgentToCloud>("not json").is_err());
    }

    #[test]
    fn update_messages_round_trip() {
        let check = AgentToCloud::UpdateCheck {
            version: "0.1.0".into(),
            target: "x86_64-linux".into(),
        };
        let j = serde_json::to_string(&check).unwrap_or_default();
        assert_eq!(
            j,
            r#"{"type":"update_check","version":"0.1.0","target":"x86_64-linux"}"#
        );
        let offer = serde_json::from_str::<CloudToAgent>(
            r#"{"type":"update_offer","signed_manifest":"{}"}"#,
        );
        assert!(
            matches!(offer, Ok(CloudToAgent::UpdateOffer { signed_manifest }) if signed_manifest == "{}")
        );
        let none = serde_json::from_str::<CloudToAgent>(r#"{"type":"no_update","reason":"off"}"#);
        assert!(matches!(none, Ok(CloudToAgent::NoUpdate { .. })));
        assert_eq!(
            release_package_path(Uuid::nil(), "0.2.0"),
            "/00000000-0000-0000-0000-000000000000/agent/v1/releases/0.2.0/package"
        );
    }

    #[test]
    fn stats_round_trip() {
        let mut r = AgentStatsReport {
            success: 2,
            ..Default::default()
        };
        r.denied.insert("1326".into(), 3);
        r.errors.insert("directory_timeout".into(), 1);
        let j = serde_json::to_string(&AgentToCloud::Stats(r.clone())).unwrap_or_default();
        assert!(j.contains(r#""type":"stats""#), "{j}");
        assert!(j.contains(r#""1326":3"#), "{j}");
        let back = serde_json::from_str::<AgentToCloud>(&j);
        assert!(matches!(back, Ok(AgentToCloud::Stats(b)) if b == r));
    }
}
