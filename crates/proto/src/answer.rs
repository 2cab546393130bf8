//! An agent's answer bound to the request it answers: only the holder of the private key that
//! opened the envelope can answer it.
//!
//! Both ends of one envelope share an HPKE context (RFC 9180): the cloud made it when it
//! sealed, the agent when it opened. From that context each side exports the same 32-byte
//! [`AnswerKey`] (RFC 9180 section 5.3, label [`EXPORT_LABEL`]); nobody else can, since the
//! context derives from the agent's private key and the cloud's ephemeral one. The agent's
//! `Result` carries an HMAC-SHA256 with that key over the request id, `repeated` and the
//! outcome ([`AnswerKey::mac`]); the cloud, which kept the key of each request in flight,
//! checks it in constant time ([`AnswerKey::check`]). This is the one place both sides
//! derive and compute it.
//!
//! An agent that could not open the envelope has no context, so its refusals (expired,
//! replayed, sealed to another key, undecryptable, clock skew) carry no MAC: the cloud accepts
//! those, and only those, unbound ([`may_be_unbound`]). They only make the request fail.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use hmac::{Hmac, Mac as _};
use sha2::Sha256;
use uuid::Uuid;
use zeroize::Zeroizing;

use crate::wire::{AgentError, AgentToCloud, Outcome};

type HmacSha256 = Hmac<Sha256>;

/// The exporter context the answer key is exported under.
pub const EXPORT_LABEL: &[u8] = b"passthru/v1/answer-key";
/// Length of the answer key, bytes.
pub const KEY_LEN: usize = 32;
/// Length of the MAC (HMAC-SHA256), bytes.
const MAC_LEN: usize = 32;
/// Domain separation at the start of the MAC's input.
const MAC_DOMAIN: &[u8] = b"passthru/v1/answer\0";

/// The key that authenticates the answer to one request. Zeroized on drop, never printed.
#[derive(Clone)]
pub struct AnswerKey(Zeroizing<[u8; KEY_LEN]>);

impl std::fmt::Debug for AnswerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AnswerKey(<redacted>)")
    }
}

/// Why an answer was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AnswerRefusal {
    /// The answer carries no MAC, and it is not a refusal an agent makes without opening the
    /// envelope.
    #[error("the answer carries no MAC (an impostor without the agent's HPKE key, or an agent older than the cloud)")]
    Missing,
    /// The MAC is not base64 of the right length.
    #[error("the answer's MAC is malformed")]
    Malformed,
    /// The MAC does not match: made without the request's key, or the answer was altered.
    #[error("the answer's MAC does not match the request (made without the key that opened the envelope, or altered)")]
    Mismatch,
}

/// How an accepted answer was authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Binding {
    /// Its MAC matched: it comes from the holder of the key that opened the envelope.
    Bound,
    /// A refusal made before opening, without MAC: trust nothing in it but that it failed
    /// (its `repeated` flag, in particular, means nothing).
    Unbound,
}

/// Whether `outcome` is one an agent gives without having opened the envelope, so that it
/// cannot carry a MAC: the admission refusals. Each only makes the request fail.
pub fn may_be_unbound(outcome: &Outcome) -> bool {
    matches!(
        outcome,
        Outcome::Error {
            error: AgentError::ClockSkew
                | AgentError::Expired
                | AgentError::Replayed
                | AgentError::NoKey
                | AgentError::DecryptFailed
        }
    )
}

impl AnswerKey {
    /// Fills a key with `export` (an HPKE context's `export`, given the label and the
    /// buffer).
    pub(crate) fn export<E>(
        export: impl FnOnce(&[u8], &mut [u8]) -> Result<(), E>,
    ) -> Result<AnswerKey, E> {
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        export(EXPORT_LABEL, key.as_mut_slice())?;
        Ok(AnswerKey(key))
    }

    /// HMAC-SHA256 keyed with this key, fed the answer. `None` only if the HMAC refused the
    /// key, which it never does (HMAC takes keys of any length).
    fn hmac(&self, request_id: Uuid, outcome: &Outcome, repeated: bool) -> Option<HmacSha256> {
        let mut mac =
            <HmacSha256 as hmac::digest::KeyInit>::new_from_slice(self.0.as_slice()).ok()?;
        mac.update(MAC_DOMAIN);
        mac.update(request_id.as_bytes());
        mac.update(&[u8::from(repeated)]);
        // The outcome last, as this version's JSON of it: both sides encode the same value the
        // same way, and an answer with a field this side does not know fails to match.
        mac.update(&serde_json::to_vec(outcome).ok()?);
        Some(mac)
    }

    /// The MAC of an answer, base64 (what the agent puts in its `Result`).
    pub fn mac(&self, request_id: Uuid, outcome: &Outcome, repeated: bool) -> String {
        self.hmac(request_id, outcome, repeated)
            .map(|m| B64.encode(m.finalize().into_bytes()))
            .unwrap_or_default()
    }

    /// Checks an answer to this key's request, in constant time: its MAC must match, or it
    /// must be an admission refusal without MAC ([`may_be_unbound`]).
    pub fn check(
        &self,
        request_id: Uuid,
        outcome: &Outcome,
        repeated: bool,
        mac: Option<&str>,
    ) -> Result<Binding, AnswerRefusal> {
        let Some(mac) = mac else {
            return if may_be_unbound(outcome) {
                Ok(Binding::Unbound)
            } else {
                Err(AnswerRefusal::Missing)
            };
        };
        let tag = B64
            .decode(mac.as_bytes())
            .map_err(|_| AnswerRefusal::Malformed)?;
        if tag.len() != MAC_LEN {
            return Err(AnswerRefusal::Malformed);
        }
        self.hmac(request_id, outcome, repeated)
            .ok_or(AnswerRefusal::Mismatch)?
            .verify_slice(&tag)
            .map(|()| Binding::Bound)
            .map_err(|_| AnswerRefusal::Mismatch)
    }
}

/// The agent's `Result` for `request_id`: with `key` (from the context the envelope was
/// opened with) it carries the MAC; without (the envelope did not open) none.
pub fn result_message(
    request_id: Uuid,
    outcome: Outcome,
    agent_micros: u64,
    repeated: bool,
    key: Option<&AnswerKey>,
) -> AgentToCloud {
    let mac = key.map(|k| k.mac(request_id, &outcome, repeated));
    AgentToCloud::Result {
        request_id,
        outcome,
        agent_micros,
        repeated,
        mac,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seal::{seal_bound, AgentKeyPair, RequestHeader, ValidationPayload};
    use crate::wire::DirectoryUser;
    use crate::Win32;

    fn header() -> RequestHeader {
        RequestHeader {
            request_id: Uuid::new_v4(),
            tenant_id: Uuid::new_v4(),
            agent_id: Uuid::new_v4(),
            issued_at_ms: 1_000,
            expires_at_ms: 11_000,
        }
    }

    fn success() -> Outcome {
        Outcome::Success(DirectoryUser {
            object_guid: Uuid::new_v4(),
            user_principal_name: "alice@corp.example.test".into(),
            sam_account_name: Some("alice".into()),
            display_name: Some("Alice Ünïcode".into()),
            mail: None,
            consistency_guid: None,
        })
    }

    type R = Result<(), Box<dyn std::error::Error>>;

    /// The cloud's key (from sealing) and the agent's (from opening) for one request.
    fn both_ends(keys: &AgentKeyPair) -> Result<(Uuid, AnswerKey, AnswerKey), crate::SealError> {
        let payload =
            ValidationPayload::validate("alice@corp.example.test", Zeroizing::new("pw".into()));
        let (sealed, cloud) = seal_bound(keys.public_bytes(), header(), &payload)?;
        let (opened, agent) = keys.open_bound(&sealed)?;
        assert_eq!(opened.username, payload.username);
        Ok((sealed.request_id, cloud, agent))
    }

    #[test]
    fn the_key_that_opened_the_envelope_verifies() -> R {
        let keys = AgentKeyPair::generate();
        let (id, cloud, agent) = both_ends(&keys)?;
        let outcome = success();
        let mac = agent.mac(id, &outcome, false);
        assert_eq!(
            cloud.check(id, &outcome, false, Some(&mac)),
            Ok(Binding::Bound)
        );
        // Through the wire: the JSON the agent sends, read back by the cloud.
        let text =
            serde_json::to_string(&result_message(id, outcome.clone(), 7, false, Some(&agent)))?;
        let AgentToCloud::Result {
            request_id,
            outcome: read,
            repeated,
            mac,
            ..
        } = serde_json::from_str(&text)?
        else {
            return Err("not a result".into());
        };
        assert_eq!(
            cloud.check(request_id, &read, repeated, mac.as_deref()),
            Ok(Binding::Bound)
        );
        assert!(!format!("{cloud:?}").contains(&mac.unwrap_or_default()));
        Ok(())
    }

    #[test]
    fn another_key_request_outcome_or_flag_fails() -> R {
        let keys = AgentKeyPair::generate();
        let (id, cloud, agent) = both_ends(&keys)?;
        let outcome = success();
        let mac = agent.mac(id, &outcome, false);
        // The same agent key, another envelope: another context, another key.
        let (_, _, other_request_key) = both_ends(&keys)?;
        let forged = other_request_key.mac(id, &outcome, false);
        assert_eq!(
            cloud.check(id, &outcome, false, Some(&forged)),
            Err(AnswerRefusal::Mismatch)
        );
        // Another agent's key.
        let (_, _, stranger) = both_ends(&AgentKeyPair::generate())?;
        let forged = stranger.mac(id, &outcome, false);
        assert_eq!(
            cloud.check(id, &outcome, false, Some(&forged)),
            Err(AnswerRefusal::Mismatch)
        );
        // The right MAC on another request id.
        assert_eq!(
            cloud.check(Uuid::new_v4(), &outcome, false, Some(&mac)),
            Err(AnswerRefusal::Mismatch)
        );
        // An altered outcome: another user, or a denial turned into a success.
        let Outcome::Success(mut user) = outcome.clone() else {
            return Err("not a success".into());
        };
        user.object_guid = Uuid::new_v4();
        assert_eq!(
            cloud.check(id, &Outcome::Success(user), false, Some(&mac)),
            Err(AnswerRefusal::Mismatch)
        );
        let denied = Outcome::Denied {
            win32: Win32::LogonFailure,
        };
        let denied_mac = agent.mac(id, &denied, false);
        assert_eq!(
            cloud.check(id, &outcome, false, Some(&denied_mac)),
            Err(AnswerRefusal::Mismatch)
        );
        // `repeated` flipped (it decides whether smart lockout counts the failure).
        assert_eq!(
            cloud.check(id, &denied, true, Some(&denied_mac)),
            Err(AnswerRefusal::Mismatch)
        );
        Ok(())
    }

    #[test]
    fn a_missing_or_malformed_mac_fails_except_on_admission_refusals() -> R {
        let keys = AgentKeyPair::generate();
        let (id, cloud, _) = both_ends(&keys)?;
        let denied = Outcome::Denied {
            win32: Win32::LogonFailure,
        };
        let unreachable = Outcome::Error {
            error: AgentError::DirectoryUnreachable,
        };
        for outcome in [success(), denied, unreachable] {
            assert_eq!(
                cloud.check(id, &outcome, false, None),
                Err(AnswerRefusal::Missing)
            );
        }
        for junk in ["", "!!", "AAAA", &B64.encode([0u8; 31])] {
            assert_eq!(
                cloud.check(id, &success(), false, Some(junk)),
                Err(AnswerRefusal::Malformed),
                "{junk}"
            );
        }
        assert_eq!(
            cloud.check(id, &success(), false, Some(&B64.encode([0u8; 32]))),
            Err(AnswerRefusal::Mismatch)
        );
        for error in [
            AgentError::ClockSkew,
            AgentError::Expired,
            AgentError::Replayed,
            AgentError::NoKey,
            AgentError::DecryptFailed,
        ] {
            let outcome = Outcome::Error { error };
            assert_eq!(cloud.check(id, &outcome, true, None), Ok(Binding::Unbound));
            // A MAC, when given, must still be right.
            assert_eq!(
                cloud.check(id, &outcome, false, Some(&B64.encode([1u8; 32]))),
                Err(AnswerRefusal::Mismatch)
            );
        }
        Ok(())
    }
}
