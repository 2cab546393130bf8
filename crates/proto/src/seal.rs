//! The sealed envelope: a password encrypted by the cloud to exactly one agent's HPKE public
//! key (RFC 9180, base mode, DHKEM(X25519, HKDF-SHA256) + HKDF-SHA256 + ChaCha20-Poly1305).
//!
//! The request id, tenant id, agent id, key id, issue time and deadline travel in clear but
//! are bound as associated data: changing any of them makes the envelope fail to open.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use hpke::aead::ChaCha20Poly1305;
use hpke::kdf::HkdfSha256;
use hpke::kem::X25519HkdfSha256;
use hpke::{Deserializable, Kem, OpModeR, OpModeS, Serializable};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;
use zeroize::Zeroizing;

use crate::answer::AnswerKey;

type KemT = X25519HkdfSha256;
pub(crate) const INFO: &[u8] = b"passthru/v1/validate";
/// An HPKE sender context of this suite.
pub(crate) type SenderCtx = hpke::aead::AeadCtxS<ChaCha20Poly1305, HkdfSha256, KemT>;
/// An HPKE receiver context of this suite.
pub(crate) type ReceiverCtx = hpke::aead::AeadCtxR<ChaCha20Poly1305, HkdfSha256, KemT>;

/// RFC 9180 `SetupBaseS` to the agent public key `public_key`: the encapsulated key (base64)
/// and the sender's context.
pub(crate) fn sender_context(public_key: &[u8]) -> Result<(String, SenderCtx), SealError> {
    let pk = <KemT as Kem>::PublicKey::from_bytes(public_key).map_err(|_| SealError::BadKey)?;
    let (enc, ctx) = hpke::setup_sender::<ChaCha20Poly1305, HkdfSha256, KemT, _>(
        &OpModeS::Base,
        &pk,
        INFO,
        &mut hpke_rand::UnwrapErr(hpke_rand::OsRng),
    )
    .map_err(|_| SealError::BadKey)?;
    Ok((B64.encode(enc.to_bytes()), ctx))
}

/// Why an envelope could not be made or opened.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum SealError {
    /// A key's bytes are not a valid X25519 key.
    #[error("the key is not a valid X25519 key")]
    BadKey,
    /// The envelope's base64 or length is wrong.
    #[error("the envelope is malformed")]
    Malformed,
    /// Authentication failed: wrong key, or the envelope or its header was altered.
    #[error("the envelope did not open (wrong key or altered envelope)")]
    OpenFailed,
    /// The decrypted payload is not a validation payload.
    #[error("the decrypted payload is not a validation payload")]
    BadPayload,
}

/// A sealed validation request, as sent to one agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedRequest {
    pub request_id: Uuid,
    pub tenant_id: Uuid,
    pub agent_id: Uuid,
    /// [`key_id`] of the public key the envelope is sealed to.
    pub key_id: String,
    /// Cloud clock at sealing, Unix milliseconds.
    pub issued_at_ms: u64,
    /// After this instant (Unix milliseconds) the agent must refuse the request.
    pub expires_at_ms: u64,
    /// HPKE encapsulated key, base64.
    pub enc: String,
    /// HPKE ciphertext of the JSON [`ValidationPayload`], base64.
    pub ciphertext: String,
    /// Sealed in a session ([`crate::session_seal`]): `enc` is the session's, shared by its
    /// envelopes, and the ciphertext is under a key exported for this request. Absent
    /// (false): the envelope has a context of its own.
    #[serde(default, skip_serializing_if = "is_false")]
    pub session: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl SealedRequest {
    pub(crate) fn aad(&self) -> Vec<u8> {
        format!(
            "{}|{}|{}|{}|{}|{}|{}",
            if self.session {
                "passthru/v2"
            } else {
                "passthru/v1"
            },
            self.request_id,
            self.tenant_id,
            self.agent_id,
            self.key_id,
            self.issued_at_ms,
            self.expires_at_ms
        )
        .into_bytes()
    }
}

/// What is inside an envelope. The passwords are zeroized when the value is dropped and
/// never printed by `Debug`.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ValidationPayload {
    /// The name the user typed (a UPN).
    pub username: String,
    /// The password, as typed (for a change, the old one; empty for a reset).
    pub password: Zeroizing<String>,
    /// What to do with it: check it (the default), or write a new password back to AD. It
    /// travels inside the envelope, so nobody on the way can turn a check into a write.
    #[serde(default, skip_serializing_if = "PasswordOperation::is_validate")]
    pub operation: PasswordOperation,
}

impl ValidationPayload {
    /// A payload that checks `password` for `username`.
    pub fn validate(username: &str, password: Zeroizing<String>) -> ValidationPayload {
        ValidationPayload {
            username: username.to_string(),
            password,
            operation: PasswordOperation::Validate,
        }
    }
}

/// What the agent does with the payload's password (password writeback).
#[derive(Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "op", rename_all = "snake_case")]
#[non_exhaustive]
pub enum PasswordOperation {
    /// Check the password with a bind (a sign-in).
    #[default]
    Validate,
    /// Change the password: the payload's password is the old one, which AD checks in the
    /// same modify that sets the new one.
    Change { new_password: Zeroizing<String> },
    /// Reset the password (no old one) with the forest's service account; with
    /// `must_change`, the user must change it at the next sign-in.
    Reset {
        new_password: Zeroizing<String>,
        must_change: bool,
    },
}

impl PasswordOperation {
    /// Whether this is a plain check.
    pub fn is_validate(&self) -> bool {
        matches!(self, PasswordOperation::Validate)
    }

    /// A name for logs.
    pub fn name(&self) -> &'static str {
        match self {
            PasswordOperation::Validate => "validate",
            PasswordOperation::Change { .. } => "change",
            PasswordOperation::Reset { .. } => "reset",
        }
    }
}

impl std::fmt::Debug for PasswordOperation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PasswordOperation::Reset { must_change, .. } => f
                .debug_struct("Reset")
                .field("must_change", must_change)
                .finish_non_exhaustive(),
            other => f.write_str(other.name()),
        }
    }
}

impl std::fmt::Debug for ValidationPayload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ValidationPayload")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field("operation", &self.operation)
            .finish()
    }
}

/// Short identifier of a public key: the first 16 bytes of its SHA-256, hex.
pub fn key_id(public_key: &[u8]) -> String {
    let digest = Sha256::digest(public_key);
    hex::encode(&digest[..16])
}

/// The header fields of a request, before sealing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestHeader {
    pub request_id: Uuid,
    pub tenant_id: Uuid,
    pub agent_id: Uuid,
    pub issued_at_ms: u64,
    pub expires_at_ms: u64,
}

/// Seals `payload` to the agent public key `public_key` (32 bytes).
pub fn seal(
    public_key: &[u8],
    header: RequestHeader,
    payload: &ValidationPayload,
) -> Result<SealedRequest, SealError> {
    seal_bound(public_key, header, payload).map(|(sealed, _)| sealed)
}

/// Like [`seal`], also returning the key that authenticates the agent's answer (see
/// [`crate::answer`]).
pub fn seal_bound(
    public_key: &[u8],
    header: RequestHeader,
    payload: &ValidationPayload,
) -> Result<(SealedRequest, AnswerKey), SealError> {
    Encapsulation::new(public_key)?.seal(header, payload)
}

/// The costly half of sealing (RFC 9180 `SetupBaseS`: a fresh ephemeral key, its
/// Diffie-Hellman with one agent key and the key schedule), which needs no password and so
/// can be made before a request comes. It seals exactly one envelope: [`Encapsulation::seal`]
/// consumes it, so every envelope still has its own ephemeral key. Together the two halves are
/// HPKE's single-shot seal; the agent opens the envelope the same way. The key that
/// authenticates the answer is exported from the same context, ahead too.
pub struct Encapsulation {
    key_id: String,
    enc: String,
    ctx: SenderCtx,
    answer_key: AnswerKey,
}

impl std::fmt::Debug for Encapsulation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encapsulation")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl Encapsulation {
    /// A new encapsulation to the agent public key `public_key` (32 bytes).
    pub fn new(public_key: &[u8]) -> Result<Encapsulation, SealError> {
        let (enc, ctx) = sender_context(public_key)?;
        let answer_key = AnswerKey::export(|label, out| ctx.export(label, out))
            .map_err(|_| SealError::BadKey)?;
        Ok(Encapsulation {
            key_id: key_id(public_key),
            enc,
            ctx,
            answer_key,
        })
    }

    /// [`key_id`] of the public key it was made for.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// Seals `payload` with this encapsulation, which is used up; with the key the agent's
    /// answer must be authenticated with.
    pub fn seal(
        self,
        header: RequestHeader,
        payload: &ValidationPayload,
    ) -> Result<(SealedRequest, AnswerKey), SealError> {
        let plaintext =
            Zeroizing::new(serde_json::to_vec(payload).map_err(|_| SealError::BadPayload)?);
        self.seal_bytes(header, &plaintext)
    }

    /// Seals `plaintext` (the JSON of a payload) with this encapsulation.
    fn seal_bytes(
        mut self,
        header: RequestHeader,
        plaintext: &[u8],
    ) -> Result<(SealedRequest, AnswerKey), SealError> {
        let mut sealed = SealedRequest {
            request_id: header.request_id,
            tenant_id: header.tenant_id,
            agent_id: header.agent_id,
            key_id: std::mem::take(&mut self.key_id),
            issued_at_ms: header.issued_at_ms,
            expires_at_ms: header.expires_at_ms,
            enc: std::mem::take(&mut self.enc),
            ciphertext: String::new(),
            session: false,
        };
        let ct = self
            .ctx
            .seal(plaintext, &sealed.aad())
            .map_err(|_| SealError::BadPayload)?;
        sealed.ciphertext = B64.encode(ct);
        Ok((sealed, self.answer_key))
    }
}

/// An agent's HPKE key pair. The private half is zeroized on drop.
pub struct AgentKeyPair {
    private: Zeroizing<Vec<u8>>,
    public: Vec<u8>,
}

impl std::fmt::Debug for AgentKeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentKeyPair")
            .field("key_id", &self.key_id())
            .finish_non_exhaustive()
    }
}

impl AgentKeyPair {
    /// A fresh key pair from the operating system's random source.
    pub fn generate() -> AgentKeyPair {
        let (sk, pk) = KemT::gen_keypair(&mut hpke_rand::UnwrapErr(hpke_rand::OsRng));
        AgentKeyPair {
            private: Zeroizing::new(sk.to_bytes().to_vec()),
            public: pk.to_bytes().to_vec(),
        }
    }

    /// Loads a private key (32 bytes) and derives its public half.
    pub fn from_private_bytes(bytes: &[u8]) -> Result<AgentKeyPair, SealError> {
        let sk = <KemT as Kem>::PrivateKey::from_bytes(bytes).map_err(|_| SealError::BadKey)?;
        let pk = KemT::sk_to_pk(&sk);
        Ok(AgentKeyPair {
            private: Zeroizing::new(sk.to_bytes().to_vec()),
            public: pk.to_bytes().to_vec(),
        })
    }

    /// The private key bytes (to store in the agent's state dir).
    pub fn private_bytes(&self) -> &[u8] {
        &self.private
    }

    /// The public key bytes (sent to the cloud at registration).
    pub fn public_bytes(&self) -> &[u8] {
        &self.public
    }

    /// [`key_id`] of the public key.
    pub fn key_id(&self) -> String {
        key_id(&self.public)
    }

    /// Opens an envelope sealed to this key. Callers check `key_id` first to tell "not my
    /// key" (80011) from "altered or undecryptable" (80010).
    pub fn open(&self, sealed: &SealedRequest) -> Result<ValidationPayload, SealError> {
        self.open_bound(sealed).map(|(payload, _)| payload)
    }

    /// Like [`AgentKeyPair::open`], also returning the key the answer is authenticated with
    /// (exported from the context that opened the envelope; see [`crate::answer`]).
    pub fn open_bound(
        &self,
        sealed: &SealedRequest,
    ) -> Result<(ValidationPayload, AnswerKey), SealError> {
        let ct = B64
            .decode(sealed.ciphertext.as_bytes())
            .map_err(|_| SealError::Malformed)?;
        // HPKE's single-shot open, in its two steps, to keep the context for the export.
        let mut ctx = self.receiver(&sealed.enc)?;
        let plaintext = Zeroizing::new(
            ctx.open(&ct, &sealed.aad())
                .map_err(|_| SealError::OpenFailed)?,
        );
        let payload = serde_json::from_slice(&plaintext).map_err(|_| SealError::BadPayload)?;
        let answer_key = AnswerKey::export(|label, out| ctx.export(label, out))
            .map_err(|_| SealError::OpenFailed)?;
        Ok((payload, answer_key))
    }

    /// RFC 9180 `SetupBaseR` for the encapsulated key `enc` (base64).
    pub(crate) fn receiver(&self, enc: &str) -> Result<ReceiverCtx, SealError> {
        let sk =
            <KemT as Kem>::PrivateKey::from_bytes(&self.private).map_err(|_| SealError::BadKey)?;
        let enc_bytes = B64
            .decode(enc.as_bytes())
            .map_err(|_| SealError::Malformed)?;
        let enc =
            <KemT as Kem>::EncappedKey::from_bytes(&enc_bytes).map_err(|_| SealError::Malformed)?;
        hpke::setup_receiver::<ChaCha20Poly1305, HkdfSha256, KemT>(&OpModeR::Base, &sk, &enc, INFO)
            .map_err(|_| SealError::OpenFailed)
    }
}

/// For the fuzz targets only (the `fuzzing` feature): seals bytes that need not be a payload,
/// so that a fuzzer reaches the agent's payload parser behind the envelope's authentication.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzz_entry {
    use super::{AnswerKey, Encapsulation, RequestHeader, SealError, SealedRequest};

    /// Seals `plaintext` as it is to the agent public key `public_key`; with the key the
    /// answer must be authenticated with.
    pub fn seal_plaintext(
        public_key: &[u8],
        header: RequestHeader,
        plaintext: &[u8],
    ) -> Result<(SealedRequest, AnswerKey), SealError> {
        Encapsulation::new(public_key)?.seal_bytes(header, plaintext)
    }

    /// Like [`seal_plaintext`], in a sealed session (`crate::session_seal`), as the cloud
    /// seals to agents that open sessions.
    pub fn seal_plaintext_in_session(
        public_key: &[u8],
        header: RequestHeader,
        plaintext: &[u8],
    ) -> Result<(SealedRequest, AnswerKey), SealError> {
        crate::session_seal::SessionSealer::new(public_key)?.seal_bytes(
            header,
            plaintext,
            std::time::Instant::now(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> RequestHeader {
        RequestHeader {
            request_id: Uuid::new_v4(),
            tenant_id: Uuid::new_v4(),
            agent_id: Uuid::new_v4(),
            issued_at_ms: 1_000,
            expires_at_ms: 11_000,
        }
    }

    fn payload() -> ValidationPayload {
        ValidationPayload::validate(
            "alice@corp.example.test",
            Zeroizing::new("Pässw0rd*()\\\"'".into()),
        )
    }

    #[test]
    fn round_trip() -> Result<(), SealError> {
        let keys = AgentKeyPair::generate();
        let sealed = seal(keys.public_bytes(), header(), &payload())?;
        assert_eq!(sealed.key_id, keys.key_id());
        assert!(!sealed.ciphertext.contains("Pässw0rd"));
        assert_eq!(keys.open(&sealed)?, payload());
        let reloaded = AgentKeyPair::from_private_bytes(keys.private_bytes())?;
        assert_eq!(reloaded.public_bytes(), keys.public_bytes());
        Ok(())
    }

    #[test]
    fn an_encapsulation_made_ahead_seals_once_and_opens() -> Result<(), SealError> {
        let keys = AgentKeyPair::generate();
        let a = Encapsulation::new(keys.public_bytes())?;
        let b = Encapsulation::new(keys.public_bytes())?;
        assert_eq!(a.key_id(), keys.key_id());
        let (x, y) = (
            a.seal(header(), &payload())?.0,
            b.seal(header(), &payload())?.0,
        );
        // Each envelope has its own ephemeral key.
        assert_ne!(x.enc, y.enc);
        for sealed in [x, y] {
            assert_eq!(sealed.key_id, keys.key_id());
            let opened = keys.open(&sealed)?;
            assert_eq!(opened.username, payload().username);
            assert_eq!(*opened.password, *payload().password);
        }
        assert_eq!(
            Encapsulation::new(&[0u8; 31]).map(|_| ()),
            Err(SealError::BadKey)
        );
        Ok(())
    }

    #[test]
    fn altered_header_or_wrong_key_fails() -> Result<(), SealError> {
        let keys = AgentKeyPair::generate();
        let sealed = seal(keys.public_bytes(), header(), &payload())?;
        let mut later = sealed.clone();
        later.expires_at_ms += 1;
        assert_eq!(keys.open(&later), Err(SealError::OpenFailed));
        let mut other_agent = sealed.clone();
        other_agent.agent_id = Uuid::new_v4();
        assert_eq!(keys.open(&other_agent), Err(SealError::OpenFailed));
        let stranger = AgentKeyPair::generate();
        assert_eq!(stranger.open(&sealed), Err(SealError::OpenFailed));
        let mut garbage = sealed;
        garbage.enc = "!!".into();
        assert_eq!(keys.open(&garbage), Err(SealError::Malformed));
        assert!(format!("{:?}", payload()).contains("redacted"));
        Ok(())
    }

    #[test]
    fn a_write_travels_inside_the_envelope() -> Result<(), SealError> {
        let keys = AgentKeyPair::generate();
        let mut p = payload();
        p.operation = PasswordOperation::Reset {
            new_password: Zeroizing::new("N3w-secret!".into()),
            must_change: true,
        };
        let sealed = seal(keys.public_bytes(), header(), &p)?;
        assert!(!sealed.ciphertext.contains("reset"));
        assert_eq!(keys.open(&sealed)?, p);
        let shown = format!("{p:?}");
        assert!(
            !shown.contains("N3w-secret!") && shown.contains("must_change: true"),
            "{shown}"
        );
        // A payload without an operation (an older cloud) is a plain check.
        let old: ValidationPayload =
            serde_json::from_str(r#"{"username":"a@b.test","password":"x"}"#)
                .map_err(|_| SealError::BadPayload)?;
        assert!(old.operation.is_validate());
        Ok(())
    }
}
