//! Sealed sessions: one HPKE context to an agent's key serves many envelopes.
//!
//! [`crate::seal`]'s envelope makes a fresh HPKE context per request: an X25519 key pair and
//! a Diffie-Hellman in the cloud, and a Diffie-Hellman and the recipient's public key again in
//! the agent. That was 40-47% of the CPU of each side per sign-in (docs/performance.md). A
//! sealed session keeps the context (RFC 9180 `SetupBaseS` to the agent's key) for up to
//! [`SESSION_MAX_AGE`] or [`SESSION_MAX_USES`] envelopes, and seals each envelope with a key
//! and nonce exported from it for that request alone:
//!
//! ```text
//! key || nonce = Export(ctx, "passthru/v2 request" || request_id, 32 + 12)
//! ciphertext   = ChaCha20-Poly1305(key, nonce, payload, aad = "passthru/v2|" header)
//! answer key   = Export(ctx, answer label || request_id, 32)
//! ```
//!
//! What stays as before: only the holder of the agent's private key opens an envelope (the
//! exporter secret comes from the Diffie-Hellman with the agent's key); every header field
//! is bound as associated data; the request id is unique (a fresh UUID v4 per request, and
//! the agent refuses an id it has seen), so no key and nonce are ever used twice; an
//! answer is authenticated with a key only that request's opener has. What differs: an
//! envelope no longer has its own ephemeral key, so someone who read one session's
//! exporter secret out of the cloud's memory could open that session's other envelopes
//! (for at most [`SESSION_MAX_AGE`]); someone who can read the cloud's memory reads the
//! passwords as they arrive anyway. Against the agent's private key both schemes are the
//! same: HPKE base mode has no forward secrecy for the recipient's key.
//!
//! The cloud seals this way only to agents that said in `Hello` that they open sessions
//! (`sealed_sessions`); older agents keep getting one context per envelope.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305 as Cipher, Key, Nonce};
use hpke::kem::X25519HkdfSha256;
use hpke::{Deserializable, Kem};
use uuid::Uuid;
use zeroize::Zeroizing;

use crate::answer::AnswerKey;
use crate::seal::{
    key_id, sender_context, AgentKeyPair, ReceiverCtx, RequestHeader, SealError, SealedRequest,
    SenderCtx,
};
use crate::ValidationPayload;

type KemT = X25519HkdfSha256;

/// A sender's session is replaced after this long.
pub const SESSION_MAX_AGE: Duration = Duration::from_secs(60);
/// ... or after this many envelopes, whichever comes first.
pub const SESSION_MAX_USES: u32 = 100_000;
/// Sessions an agent keeps open (several cloud instances, each renewing its own every
/// minute); the oldest is forgotten first, and costs one Diffie-Hellman if it comes back.
pub const OPENED_SESSIONS: usize = 64;

const REQUEST_LABEL: &[u8] = b"passthru/v2 request";
const KEY_LEN: usize = 32;
const NONCE_LEN: usize = 12;

/// Key and nonce of one request's envelope.
fn request_key(
    export: impl Fn(&[u8], &mut [u8]) -> Result<(), hpke::HpkeError>,
    request_id: Uuid,
) -> Result<Zeroizing<[u8; KEY_LEN + NONCE_LEN]>, SealError> {
    let mut label = Vec::with_capacity(REQUEST_LABEL.len() + 16);
    label.extend_from_slice(REQUEST_LABEL);
    label.extend_from_slice(request_id.as_bytes());
    let mut okm = Zeroizing::new([0u8; KEY_LEN + NONCE_LEN]);
    export(&label, okm.as_mut_slice()).map_err(|_| SealError::OpenFailed)?;
    Ok(okm)
}

/// The key the answer to `request_id` is authenticated with.
fn answer_key(
    export: impl Fn(&[u8], &mut [u8]) -> Result<(), hpke::HpkeError>,
    request_id: Uuid,
) -> Result<AnswerKey, SealError> {
    AnswerKey::export(|label, out| {
        let mut full = Vec::with_capacity(label.len() + 16);
        full.extend_from_slice(label);
        full.extend_from_slice(request_id.as_bytes());
        export(&full, out)
    })
    .map_err(|_| SealError::OpenFailed)
}

fn cipher(okm: &[u8; KEY_LEN + NONCE_LEN]) -> (Cipher, &Nonce) {
    (
        Cipher::new(Key::from_slice(&okm[..KEY_LEN])),
        Nonce::from_slice(&okm[KEY_LEN..]),
    )
}

/// One sender context and its use so far.
struct SenderSession {
    enc: String,
    ctx: SenderCtx,
    born: Instant,
    /// Envelopes sealed with it (counted under the sealer's lock).
    uses: AtomicU32,
}

/// Seals envelopes to one agent key over sessions renewed by age and use.
pub struct SessionSealer {
    public_key: Vec<u8>,
    key_id: String,
    current: Mutex<Option<Arc<SenderSession>>>,
}

impl std::fmt::Debug for SessionSealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionSealer")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl SessionSealer {
    /// A sealer to the agent public key `public_key` (32 bytes); its first session is made
    /// at the first envelope.
    pub fn new(public_key: &[u8]) -> Result<SessionSealer, SealError> {
        <KemT as Kem>::PublicKey::from_bytes(public_key).map_err(|_| SealError::BadKey)?;
        Ok(SessionSealer {
            public_key: public_key.to_vec(),
            key_id: key_id(public_key),
            current: Mutex::new(None),
        })
    }

    /// [`key_id`] of the key it seals to.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    fn current(&self) -> MutexGuard<'_, Option<Arc<SenderSession>>> {
        // Replaced whole under the lock: a poisoned guard holds a usable value.
        self.current.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The session for the next envelope at `now`: the current one, or a new one when it is
    /// too old or used up.
    fn session(&self, now: Instant) -> Result<Arc<SenderSession>, SealError> {
        let mut current = self.current();
        if let Some(s) = current.as_ref() {
            let fresh = now.saturating_duration_since(s.born) < SESSION_MAX_AGE;
            if fresh && s.uses.fetch_add(1, Ordering::Relaxed) < SESSION_MAX_USES {
                return Ok(Arc::clone(s));
            }
        }
        let (enc, ctx) = sender_context(&self.public_key)?;
        let session = Arc::new(SenderSession {
            enc,
            ctx,
            born: now,
            uses: AtomicU32::new(1),
        });
        *current = Some(Arc::clone(&session));
        Ok(session)
    }

    /// Seals `payload` for `header` at `now`, with the key the answer must be authenticated
    /// with.
    pub fn seal(
        &self,
        header: RequestHeader,
        payload: &ValidationPayload,
        now: Instant,
    ) -> Result<(SealedRequest, AnswerKey), SealError> {
        let plaintext =
            Zeroizing::new(serde_json::to_vec(payload).map_err(|_| SealError::BadPayload)?);
        self.seal_bytes(header, &plaintext, now)
    }

    pub(crate) fn seal_bytes(
        &self,
        header: RequestHeader,
        plaintext: &[u8],
        now: Instant,
    ) -> Result<(SealedRequest, AnswerKey), SealError> {
        let session = self.session(now)?;
        let export = |label: &[u8], out: &mut [u8]| session.ctx.export(label, out);
        let okm = request_key(export, header.request_id)?;
        let answer = answer_key(export, header.request_id)?;
        let mut sealed = SealedRequest {
            request_id: header.request_id,
            tenant_id: header.tenant_id,
            agent_id: header.agent_id,
            key_id: self.key_id.clone(),
            issued_at_ms: header.issued_at_ms,
            expires_at_ms: header.expires_at_ms,
            enc: session.enc.clone(),
            ciphertext: String::new(),
            session: true,
        };
        let (cipher, nonce) = cipher(&okm);
        let aad = sealed.aad();
        let ct = cipher
            .encrypt(
                nonce,
                Payload {
                    msg: plaintext,
                    aad: &aad,
                },
            )
            .map_err(|_| SealError::BadPayload)?;
        sealed.ciphertext = B64.encode(ct);
        Ok((sealed, answer))
    }
}

/// The sessions an agent has opened, by key id and encapsulated key: a session's first
/// envelope costs a Diffie-Hellman, the next ones an export and the AEAD.
pub struct OpenedSessions {
    inner: Mutex<Opened>,
    capacity: usize,
}

#[derive(Default)]
struct Opened {
    by_enc: HashMap<(String, String), Arc<ReceiverCtx>>,
    /// Insertion order, oldest first.
    order: VecDeque<(String, String)>,
}

impl std::fmt::Debug for OpenedSessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenedSessions")
            .field("open", &self.len())
            .finish_non_exhaustive()
    }
}

impl Default for OpenedSessions {
    fn default() -> OpenedSessions {
        OpenedSessions::with_capacity(OPENED_SESSIONS)
    }
}

impl OpenedSessions {
    /// Keeps at most `capacity` sessions (at least one).
    pub fn with_capacity(capacity: usize) -> OpenedSessions {
        OpenedSessions {
            inner: Mutex::new(Opened::default()),
            capacity: capacity.max(1),
        }
    }

    fn inner(&self) -> MutexGuard<'_, Opened> {
        // Every operation leaves map and order consistent: a poisoned guard is usable.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sessions held now.
    pub fn len(&self) -> usize {
        self.inner().by_enc.len()
    }

    /// Whether none is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forgets every session (the keys they were opened with are gone).
    pub fn clear(&self) {
        let mut inner = self.inner();
        inner.by_enc.clear();
        inner.order.clear();
    }

    fn get(&self, key: &(String, String)) -> Option<Arc<ReceiverCtx>> {
        self.inner().by_enc.get(key).cloned()
    }

    fn put(&self, key: (String, String), ctx: Arc<ReceiverCtx>) {
        let mut inner = self.inner();
        if inner.by_enc.insert(key.clone(), ctx).is_none() {
            inner.order.push_back(key);
        }
        while inner.by_enc.len() > self.capacity {
            let Some(oldest) = inner.order.pop_front() else {
                break;
            };
            inner.by_enc.remove(&oldest);
        }
    }
}

impl AgentKeyPair {
    /// Opens an envelope of either scheme: one context per envelope ([`AgentKeyPair::
    /// open_bound`]), or a sealed session's, reusing the session's context from `sessions`
    /// (kept there only once an envelope of it has opened, so that junk cannot fill it).
    pub fn open_with(
        &self,
        sealed: &SealedRequest,
        sessions: &OpenedSessions,
    ) -> Result<(ValidationPayload, AnswerKey), SealError> {
        if !sealed.session {
            return self.open_bound(sealed);
        }
        let ct = B64
            .decode(sealed.ciphertext.as_bytes())
            .map_err(|_| SealError::Malformed)?;
        let key = (sealed.key_id.clone(), sealed.enc.clone());
        let (ctx, new) = match sessions.get(&key) {
            Some(ctx) => (ctx, false),
            None => (Arc::new(self.receiver(&sealed.enc)?), true),
        };
        let export = |label: &[u8], out: &mut [u8]| ctx.export(label, out);
        let okm = request_key(export, sealed.request_id)?;
        let (cipher, nonce) = cipher(&okm);
        let aad = sealed.aad();
        let plaintext = Zeroizing::new(
            cipher
                .decrypt(
                    nonce,
                    Payload {
                        msg: &ct,
                        aad: &aad,
                    },
                )
                .map_err(|_| SealError::OpenFailed)?,
        );
        let payload = serde_json::from_slice(&plaintext).map_err(|_| SealError::BadPayload)?;
        let answer = answer_key(export, sealed.request_id)?;
        if new {
            sessions.put(key, ctx);
        }
        Ok((payload, answer))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seal::seal;

    fn header() -> RequestHeader {
        RequestHeader {
            request_id: Uuid::new_v4(),
            tenant_id: Uuid::new_v4(),
            agent_id: Uuid::new_v4(),
            issued_at_ms: 1_000,
            expires_at_ms: 11_000,
        }
    }

    fn payload(password: &str) -> ValidationPayload {
        ValidationPayload::validate("alice@corp.example.test", Zeroizing::new(password.into()))
    }

    type R = Result<(), SealError>;

    #[test]
    fn a_session_seals_many_envelopes_that_open_with_one_exchange() -> R {
        let keys = AgentKeyPair::generate();
        let sealer = SessionSealer::new(keys.public_bytes())?;
        let opened = OpenedSessions::default();
        let now = Instant::now();
        let mut encs = std::collections::HashSet::new();
        for i in 0..20 {
            let password = format!("Pässw0rd-{i}");
            let (sealed, cloud_key) = sealer.seal(header(), &payload(&password), now)?;
            assert!(sealed.session);
            assert!(!sealed.ciphertext.contains("Pässw0rd"));
            assert_eq!(sealed.key_id, keys.key_id());
            encs.insert(sealed.enc.clone());
            let (got, agent_key) = keys.open_with(&sealed, &opened)?;
            assert_eq!(*got.password, password);
            // Both sides hold the same answer key for this request.
            let outcome = crate::Outcome::Denied {
                win32: crate::Win32::LogonFailure,
            };
            let mac = agent_key.mac(sealed.request_id, &outcome, false);
            assert_eq!(mac, cloud_key.mac(sealed.request_id, &outcome, false));
        }
        assert_eq!(encs.len(), 1, "one encapsulation for the whole session");
        assert_eq!(opened.len(), 1);
        Ok(())
    }

    #[test]
    fn requests_get_keys_of_their_own() -> R {
        let keys = AgentKeyPair::generate();
        let sealer = SessionSealer::new(keys.public_bytes())?;
        let now = Instant::now();
        let (a, ka) = sealer.seal(header(), &payload("same"), now)?;
        let (b, kb) = sealer.seal(header(), &payload("same"), now)?;
        assert_eq!(a.enc, b.enc);
        assert_ne!(a.ciphertext, b.ciphertext, "same password, other request");
        let outcome = crate::Outcome::Denied {
            win32: crate::Win32::LogonFailure,
        };
        assert_ne!(
            ka.mac(a.request_id, &outcome, false),
            kb.mac(a.request_id, &outcome, false)
        );
        // One request's ciphertext under another's id (a swap) does not open.
        let mut swapped = b.clone();
        swapped.ciphertext = a.ciphertext.clone();
        assert_eq!(
            keys.open_with(&swapped, &OpenedSessions::default())
                .map(|_| ()),
            Err(SealError::OpenFailed)
        );
        Ok(())
    }

    #[test]
    fn a_session_is_renewed_by_age() -> R {
        let keys = AgentKeyPair::generate();
        let sealer = SessionSealer::new(keys.public_bytes())?;
        let t0 = Instant::now();
        let first = sealer.seal(header(), &payload("x"), t0)?.0;
        let same = sealer
            .seal(header(), &payload("x"), t0 + SESSION_MAX_AGE / 2)?
            .0;
        let later = sealer
            .seal(header(), &payload("x"), t0 + SESSION_MAX_AGE)?
            .0;
        assert_eq!(first.enc, same.enc);
        assert_ne!(first.enc, later.enc);
        let opened = OpenedSessions::default();
        for s in [first, same, later] {
            keys.open_with(&s, &opened)?;
        }
        assert_eq!(opened.len(), 2);
        Ok(())
    }

    #[test]
    fn altered_header_flag_or_stranger_fails_and_is_not_kept() -> R {
        let keys = AgentKeyPair::generate();
        let sealer = SessionSealer::new(keys.public_bytes())?;
        let sealed = sealer.seal(header(), &payload("x"), Instant::now())?.0;
        let opened = OpenedSessions::default();
        let mut later = sealed.clone();
        later.expires_at_ms += 1;
        assert_eq!(
            keys.open_with(&later, &opened).map(|_| ()),
            Err(SealError::OpenFailed)
        );
        assert!(opened.is_empty(), "a session is kept only once it opened");
        let mut per_envelope = sealed.clone();
        per_envelope.session = false;
        assert_eq!(
            keys.open_with(&per_envelope, &opened).map(|_| ()),
            Err(SealError::OpenFailed)
        );
        let stranger = AgentKeyPair::generate();
        assert_eq!(
            stranger.open_with(&sealed, &opened).map(|_| ()),
            Err(SealError::OpenFailed)
        );
        let mut garbage = sealed.clone();
        garbage.enc = "!!".into();
        assert_eq!(
            keys.open_with(&garbage, &opened).map(|_| ()),
            Err(SealError::Malformed)
        );
        keys.open_with(&sealed, &opened)?;
        assert_eq!(opened.len(), 1);
        assert_eq!(
            SessionSealer::new(&[0u8; 31]).map(|_| ()),
            Err(SealError::BadKey)
        );
        Ok(())
    }

    #[test]
    fn envelopes_of_one_context_each_still_open() -> R {
        let keys = AgentKeyPair::generate();
        let sealed = seal(keys.public_bytes(), header(), &payload("old"))?;
        assert!(!sealed.session);
        let (got, _) = keys.open_with(&sealed, &OpenedSessions::default())?;
        assert_eq!(*got.password, "old");
        Ok(())
    }

    #[test]
    fn the_agent_keeps_a_bounded_number_of_sessions() -> R {
        let keys = AgentKeyPair::generate();
        let opened = OpenedSessions::with_capacity(3);
        for _ in 0..10 {
            let sealer = SessionSealer::new(keys.public_bytes())?;
            let sealed = sealer.seal(header(), &payload("x"), Instant::now())?.0;
            keys.open_with(&sealed, &opened)?;
            assert!(opened.len() <= 3);
        }
        assert_eq!(opened.len(), 3);
        opened.clear();
        assert!(opened.is_empty());
        Ok(())
    }

    /// Many threads sealing at once share sessions and never reuse a request key.
    #[test]
    fn concurrent_seals_all_open() -> R {
        let keys = Arc::new(AgentKeyPair::generate());
        let sealer = Arc::new(SessionSealer::new(keys.public_bytes())?);
        let opened = Arc::new(OpenedSessions::default());
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let (keys, sealer, opened) = (keys.clone(), sealer.clone(), opened.clone());
                std::thread::spawn(move || -> R {
                    for _ in 0..50 {
                        let sealed = sealer.seal(header(), &payload("x"), Instant::now())?.0;
                        keys.open_with(&sealed, &opened)?;
                    }
                    Ok(())
                })
            })
            .collect();
        for h in handles {
            h.join().map_err(|_| SealError::OpenFailed)??;
        }
        assert_eq!(opened.len(), 1);
        Ok(())
    }
}
