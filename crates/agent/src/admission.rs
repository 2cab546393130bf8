//! The checks a sealed request passes before the agent asks the directory: deadline, replay,
//! clock skew, addressee and key, then opening the envelope. Pure but for the replay cache;
//! the time is a parameter.

use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use passthru_proto::{
    AgentError, AgentKeyPair, AnswerKey, OpenedSessions, SealedRequest, ValidationPayload,
};
use uuid::Uuid;

use crate::replay::ReplayCache;

/// Who this agent is: requests must be addressed to it and sealed to its key.
#[derive(Debug)]
pub struct Identity {
    /// The agent's tenant.
    pub tenant_id: Uuid,
    /// The agent's id.
    pub agent_id: Uuid,
    /// The agent's HPKE key pair.
    pub keys: AgentKeyPair,
}

/// Admits or refuses sealed requests.
#[derive(Debug)]
pub struct Admission {
    tenant_id: Uuid,
    agent_id: Uuid,
    /// The HPKE keys requests may be sealed to, by key id: the agent's key, and during a
    /// certificate renewal also the new one (until a connection made with the renewed
    /// certificate works; then the old one is dropped).
    keys: RwLock<Vec<(String, Arc<AgentKeyPair>)>>,
    skew_tolerance_ms: u64,
    replay: Mutex<ReplayCache>,
    /// The cloud's sealed sessions opened so far (a session's first envelope costs a
    /// Diffie-Hellman, the next ones none).
    sessions: OpenedSessions,
}

impl Admission {
    /// Checks requests for `identity`, accepting an issue time up to `skew_tolerance` away
    /// from the agent's clock, remembering up to `replay_capacity` request ids.
    pub fn new(identity: Identity, skew_tolerance: Duration, replay_capacity: usize) -> Admission {
        let key_id = identity.keys.key_id();
        Admission {
            tenant_id: identity.tenant_id,
            agent_id: identity.agent_id,
            keys: RwLock::new(vec![(key_id, Arc::new(identity.keys))]),
            skew_tolerance_ms: u64::try_from(skew_tolerance.as_millis()).unwrap_or(u64::MAX),
            replay: Mutex::new(ReplayCache::new(replay_capacity)),
            sessions: OpenedSessions::default(),
        }
    }

    /// This agent's tenant and agent ids.
    pub fn identity(&self) -> (Uuid, Uuid) {
        (self.tenant_id, self.agent_id)
    }

    fn keys(&self) -> std::sync::RwLockReadGuard<'_, Vec<(String, Arc<AgentKeyPair>)>> {
        // Each operation replaces the list whole: a poisoned lock is usable.
        self.keys.read().unwrap_or_else(|p| p.into_inner())
    }

    fn keys_mut(&self) -> std::sync::RwLockWriteGuard<'_, Vec<(String, Arc<AgentKeyPair>)>> {
        self.keys.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Also accepts requests sealed to `keys` (a renewal's new key, before the connection
    /// made with the renewed certificate is up).
    pub fn add_key(&self, keys: Arc<AgentKeyPair>) {
        let id = keys.key_id();
        let mut all = self.keys_mut();
        if !all.iter().any(|(k, _)| *k == id) {
            all.push((id, keys));
        }
    }

    /// From now on accepts only requests sealed to the key `key_id` (after a renewal: the
    /// new key; after a renewal that failed: the old one). The others are dropped from
    /// memory (their bytes are zeroed when the last holder lets go).
    pub fn keep_only(&self, key_id: &str) {
        let mut all = self.keys_mut();
        if all.iter().any(|(k, _)| k == key_id) {
            all.retain(|(k, _)| k == key_id);
            // Sessions opened with a dropped key must not outlive it.
            self.sessions.clear();
        }
    }

    /// The ids of the keys accepted now.
    pub fn key_ids(&self) -> Vec<String> {
        self.keys().iter().map(|(k, _)| k.clone()).collect()
    }

    fn replay(&self) -> std::sync::MutexGuard<'_, ReplayCache> {
        // Each operation on the cache leaves it consistent, so a poisoned lock is usable.
        self.replay.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs every check on `request` at `now_ms` and opens it, giving its payload and the key
    /// the answer must be authenticated with. The request id is remembered only once the
    /// envelope has opened, so unauthenticated junk cannot fill the cache.
    pub fn admit(
        &self,
        request: &SealedRequest,
        now_ms: u64,
    ) -> Result<(ValidationPayload, AnswerKey), AgentError> {
        // Skew first: a clock far off would otherwise make every request look expired
        // (reported as a directory time-out) instead of naming the real cause.
        if now_ms.abs_diff(request.issued_at_ms) > self.skew_tolerance_ms {
            return Err(AgentError::ClockSkew);
        }
        if now_ms > request.expires_at_ms {
            return Err(AgentError::Expired);
        }
        if self.replay().contains(request.request_id, now_ms) {
            return Err(AgentError::Replayed);
        }
        if request.tenant_id != self.tenant_id || request.agent_id != self.agent_id {
            return Err(AgentError::NoKey);
        }
        let Some(keys) = self
            .keys()
            .iter()
            .find(|(k, _)| *k == request.key_id)
            .map(|(_, keys)| Arc::clone(keys))
        else {
            return Err(AgentError::NoKey);
        };
        let opened = keys
            .open_with(request, &self.sessions)
            .map_err(|_| AgentError::DecryptFailed)?;
        if !self
            .replay()
            .insert(request.request_id, request.expires_at_ms, now_ms)
        {
            // The same id was admitted concurrently.
            return Err(AgentError::Replayed);
        }
        Ok(opened)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use passthru_proto::seal::{seal, RequestHeader};
    use zeroize::Zeroizing;

    const NOW: u64 = 1_800_000_000_000;

    fn setup() -> (Admission, Vec<u8>, Uuid, Uuid) {
        let keys = AgentKeyPair::generate();
        let public = keys.public_bytes().to_vec();
        let tenant_id = Uuid::new_v4();
        let agent_id = Uuid::new_v4();
        let admission = Admission::new(
            Identity {
                tenant_id,
                agent_id,
                keys,
            },
            Duration::from_secs(300),
            100,
        );
        (admission, public, tenant_id, agent_id)
    }

    fn request(
        public: &[u8],
        tenant_id: Uuid,
        agent_id: Uuid,
        issued: u64,
        expires: u64,
    ) -> Option<SealedRequest> {
        let header = RequestHeader {
            request_id: Uuid::new_v4(),
            tenant_id,
            agent_id,
            issued_at_ms: issued,
            expires_at_ms: expires,
        };
        let payload = ValidationPayload {
            username: "alice@corp.example.test".into(),
            password: Zeroizing::new("S3cret!".into()),
            operation: Default::default(),
        };
        seal(public, header, &payload).ok()
    }

    type R = Result<(), &'static str>;

    /// During a renewal both keys open requests; once the renewed connection works only the
    /// new one does: the old key opens nothing new.
    #[test]
    fn a_renewal_adds_a_key_then_drops_the_old_one() -> R {
        let (adm, old_public, t, a) = setup();
        let new_keys = Arc::new(AgentKeyPair::generate());
        let new_public = new_keys.public_bytes().to_vec();
        adm.add_key(Arc::clone(&new_keys));
        adm.add_key(Arc::clone(&new_keys));
        assert_eq!(adm.key_ids().len(), 2);
        let to_old = request(&old_public, t, a, NOW, NOW + 10_000).ok_or("seal")?;
        let to_new = request(&new_public, t, a, NOW, NOW + 10_000).ok_or("seal")?;
        assert!(adm.admit(&to_old, NOW).is_ok());
        assert!(adm.admit(&to_new, NOW).is_ok());
        adm.keep_only(&new_keys.key_id());
        assert_eq!(adm.key_ids(), vec![new_keys.key_id()]);
        let to_old = request(&old_public, t, a, NOW, NOW + 10_000).ok_or("seal")?;
        assert_eq!(adm.admit(&to_old, NOW).err(), Some(AgentError::NoKey));
        let to_new = request(&new_public, t, a, NOW, NOW + 10_000).ok_or("seal")?;
        assert!(adm.admit(&to_new, NOW).is_ok());
        // Keeping a key that is not there changes nothing.
        adm.keep_only("no-such-key");
        assert_eq!(adm.key_ids(), vec![new_keys.key_id()]);
        Ok(())
    }

    #[test]
    fn admits_a_fresh_request_once() -> R {
        let (adm, public, t, a) = setup();
        let req = request(&public, t, a, NOW, NOW + 10_000).ok_or("seal")?;
        let payload = adm.admit(&req, NOW + 5).map(|(p, _)| p);
        assert_eq!(
            payload.as_ref().map(|p| p.username.as_str()),
            Ok("alice@corp.example.test")
        );
        assert_eq!(
            payload.map(|p| p.password.to_string()),
            Ok("S3cret!".into())
        );
        assert_eq!(adm.admit(&req, NOW + 6).err(), Some(AgentError::Replayed));
        Ok(())
    }

    /// Envelopes of one sealed session: each admitted once, a replay refused, a tampered
    /// one refused without spoiling the session; after a renewal's `keep_only` the session
    /// of the dropped key no longer opens.
    #[test]
    fn sealed_sessions_are_admitted_once_each() -> R {
        let (adm, public, t, a) = setup();
        let sealer = passthru_proto::SessionSealer::new(&public).map_err(|_| "sealer")?;
        let header = || RequestHeader {
            request_id: Uuid::new_v4(),
            tenant_id: t,
            agent_id: a,
            issued_at_ms: NOW,
            expires_at_ms: NOW + 10_000,
        };
        let payload = ValidationPayload::validate(
            "alice@corp.example.test",
            Zeroizing::new("S3cret!".into()),
        );
        let now = std::time::Instant::now();
        let first = sealer.seal(header(), &payload, now).map_err(|_| "seal")?.0;
        let second = sealer.seal(header(), &payload, now).map_err(|_| "seal")?.0;
        assert_eq!(first.enc, second.enc);
        let (got, _) = adm.admit(&first, NOW).map_err(|_| "first")?;
        assert_eq!(got.password.as_str(), "S3cret!");
        assert_eq!(adm.admit(&first, NOW).err(), Some(AgentError::Replayed));
        let mut tampered = second.clone();
        tampered.tenant_id = Uuid::new_v4();
        assert_eq!(adm.admit(&tampered, NOW).err(), Some(AgentError::NoKey));
        let mut tampered = second.clone();
        tampered.issued_at_ms += 1;
        assert_eq!(
            adm.admit(&tampered, NOW).err(),
            Some(AgentError::DecryptFailed)
        );
        assert!(adm.admit(&second, NOW).is_ok());
        let new_keys = Arc::new(AgentKeyPair::generate());
        adm.add_key(Arc::clone(&new_keys));
        adm.keep_only(&new_keys.key_id());
        let third = sealer.seal(header(), &payload, now).map_err(|_| "seal")?.0;
        assert_eq!(adm.admit(&third, NOW).err(), Some(AgentError::NoKey));
        Ok(())
    }

    #[test]
    fn expiry_is_checked_first_and_at_the_boundary() -> R {
        let (adm, public, t, a) = setup();
        let req = request(&public, t, a, NOW, NOW + 10_000).ok_or("seal")?;
        assert_eq!(
            adm.admit(&req, NOW + 10_001).err(),
            Some(AgentError::Expired)
        );
        // At the deadline itself it is still valid.
        assert!(adm.admit(&req, NOW + 10_000).is_ok());
        // A replay after the deadline says expired, not replayed.
        assert_eq!(
            adm.admit(&req, NOW + 20_000).err(),
            Some(AgentError::Expired)
        );
        Ok(())
    }

    #[test]
    fn clock_skew_both_ways() -> R {
        let (adm, public, t, a) = setup();
        let tolerance = 300_000;
        // Issued "in the future" by more than the tolerance: the agent's clock is behind.
        let ahead =
            request(&public, t, a, NOW + tolerance + 1, NOW + tolerance + 60_000).ok_or("seal")?;
        assert_eq!(adm.admit(&ahead, NOW).err(), Some(AgentError::ClockSkew));
        // Issued long ago with a long deadline: the agent's clock is ahead.
        let behind = request(&public, t, a, NOW - tolerance - 1, NOW + 60_000).ok_or("seal")?;
        assert_eq!(adm.admit(&behind, NOW).err(), Some(AgentError::ClockSkew));
        // Exactly at the tolerance.
        let edge =
            request(&public, t, a, NOW + tolerance, NOW + tolerance + 60_000).ok_or("seal")?;
        assert!(adm.admit(&edge, NOW).is_ok());
        Ok(())
    }

    #[test]
    fn wrong_addressee_or_key_is_no_key() -> R {
        let (adm, public, t, a) = setup();
        let other_tenant = request(&public, Uuid::new_v4(), a, NOW, NOW + 10_000).ok_or("seal")?;
        assert_eq!(adm.admit(&other_tenant, NOW).err(), Some(AgentError::NoKey));
        let other_agent = request(&public, t, Uuid::new_v4(), NOW, NOW + 10_000).ok_or("seal")?;
        assert_eq!(adm.admit(&other_agent, NOW).err(), Some(AgentError::NoKey));
        let stranger = AgentKeyPair::generate();
        let wrong_key = request(stranger.public_bytes(), t, a, NOW, NOW + 10_000).ok_or("seal")?;
        assert_eq!(adm.admit(&wrong_key, NOW).err(), Some(AgentError::NoKey));
        Ok(())
    }

    #[test]
    fn tampering_is_decrypt_failed_and_not_remembered() -> R {
        let (adm, public, t, a) = setup();
        let genuine = request(&public, t, a, NOW, NOW + 10_000).ok_or("seal")?;
        let mut header_changed = genuine.clone();
        header_changed.expires_at_ms += 1; // bound as associated data
        assert_eq!(
            adm.admit(&header_changed, NOW).err(),
            Some(AgentError::DecryptFailed)
        );
        let mut garbage = genuine.clone();
        garbage.ciphertext = "AAAA".into();
        assert_eq!(
            adm.admit(&garbage, NOW).err(),
            Some(AgentError::DecryptFailed)
        );
        // Neither forgery burnt the request id: the genuine request still passes, once.
        assert!(adm.admit(&genuine, NOW).is_ok());
        assert_eq!(adm.admit(&genuine, NOW).err(), Some(AgentError::Replayed));
        Ok(())
    }
}
