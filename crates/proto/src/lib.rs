//! Shared vocabulary of Passthru's two programs: the messages on the agent's outbound
//! connection, the HPKE envelope that carries a password from the cloud to one agent, and the
//! catalogs of Windows (Win32) and AADSTS codes with their texts.
//!
//! This crate does no I/O, so that both binaries (and fuzz targets) can use it freely.

pub mod admin;
pub mod answer;
pub mod codes;
pub mod release;
pub mod seal;
pub mod session_seal;
pub mod sync;
pub mod wire;

pub use answer::AnswerKey;
pub use codes::{Aadsts, Win32};
pub use seal::{AgentKeyPair, PasswordOperation, SealError, SealedRequest, ValidationPayload};
pub use session_seal::{OpenedSessions, SessionSealer};
pub use wire::{AgentError, AgentToCloud, CloudToAgent, Outcome, PasswordRefusal};
