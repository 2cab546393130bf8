//! The agent's admission of a sealed request, with the envelope open behind it.
//!
//! Mode byte even: the rest is a plaintext that the cloud's sealing code seals, as it is, to
//! the agent's key (with bit 2 of the mode set, in a sealed session), so the fuzzer reaches
//! the payload parser behind the envelope's authentication: the agent must admit it exactly
//! when it is a valid payload, and only once.
//! Mode byte odd: the rest is a `SealedRequest` (JSON) as a forger would send it; with bit 1
//! of the mode set, its addressee and key id are made this agent's, so that the fuzzed `enc`
//! and `ciphertext` reach the HPKE open. (Anyone who has the agent's public key can seal to
//! it, so what opens is admitted; what the fuzzer checks is that nothing panics, and that an
//! admitted request is not admitted twice.)
#![no_main]

use std::sync::OnceLock;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use passthru_agent::admission::{Admission, Identity};
use passthru_proto::answer::Binding;
use passthru_proto::seal::{fuzz_entry, RequestHeader};
use passthru_proto::wire::Outcome;
use passthru_proto::{AgentError, AgentKeyPair, SealedRequest, ValidationPayload, Win32};
use uuid::Uuid;

const NOW: u64 = 1_800_000_000_000;
const TENANT: Uuid = Uuid::from_u128(0x1111_1111_1111_4111_8111_1111_1111_1111);
const AGENT: Uuid = Uuid::from_u128(0x2222_2222_2222_4222_8222_2222_2222_2222);
const PRIVATE_KEY: [u8; 32] = [7; 32];

fn admission() -> Option<Admission> {
    let keys = AgentKeyPair::from_private_bytes(&PRIVATE_KEY).ok()?;
    Some(Admission::new(
        Identity {
            tenant_id: TENANT,
            agent_id: AGENT,
            keys,
        },
        Duration::from_secs(300),
        16,
    ))
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let Some(admission) = admission() else {
        return;
    };
    if mode % 2 == 0 {
        let (public, _) = agent_key();
        let header = RequestHeader {
            request_id: Uuid::from_u128(u128::from(mode)),
            tenant_id: TENANT,
            agent_id: AGENT,
            issued_at_ms: NOW,
            expires_at_ms: NOW + 60_000,
        };
        let sealed = if mode & 4 != 0 {
            fuzz_entry::seal_plaintext_in_session(public, header, rest)
        } else {
            fuzz_entry::seal_plaintext(public, header, rest)
        };
        let (sealed, cloud_key) = sealed.expect("sealing any bytes works");
        let expected = serde_json::from_slice::<ValidationPayload>(rest).ok();
        match (admission.admit(&sealed, NOW + 1), expected) {
            (Ok((payload, agent_key)), Some(want)) => {
                assert!(
                    payload == want,
                    "the opened payload differs from the sealed one"
                );
                // Both ends derived the same answer key: the agent's answer is accepted as
                // bound, and the same answer with another outcome is refused.
                let id = sealed.request_id;
                let denied = Outcome::Denied {
                    win32: Win32::LogonFailure,
                };
                let mac = agent_key.mac(id, &denied, false);
                assert_eq!(
                    cloud_key.check(id, &denied, false, Some(&mac)),
                    Ok(Binding::Bound)
                );
                let other = Outcome::Denied {
                    win32: Win32::AccountLockedOut,
                };
                assert!(cloud_key.check(id, &other, false, Some(&mac)).is_err());
                // The same request again is a replay.
                assert_eq!(
                    admission.admit(&sealed, NOW + 2).err(),
                    Some(AgentError::Replayed)
                );
            }
            (Err(AgentError::DecryptFailed), None) => {
                // Refused, and not remembered (unauthenticated junk cannot fill the cache):
                // the same request again is refused for what it is, not as a replay.
                assert_eq!(
                    admission.admit(&sealed, NOW + 2).err(),
                    Some(AgentError::DecryptFailed)
                );
            }
            (got, want) => panic!(
                "admission answered {:?} for a plaintext that is {} payload",
                got.err(),
                if want.is_some() { "a" } else { "no" }
            ),
        }
    } else {
        let Ok(mut request) = serde_json::from_slice::<SealedRequest>(rest) else {
            return;
        };
        if mode & 2 != 0 {
            request.tenant_id = TENANT;
            request.agent_id = AGENT;
            request.key_id = agent_key().1.clone();
        }
        for now in [request.issued_at_ms, request.expires_at_ms, NOW] {
            if admission.admit(&request, now).is_ok() {
                assert_eq!(
                    admission.admit(&request, now).err(),
                    Some(AgentError::Replayed)
                );
            }
        }
    }
});

/// The agent's public key and key id (worked out once).
fn agent_key() -> &'static (Vec<u8>, String) {
    static KEY: OnceLock<(Vec<u8>, String)> = OnceLock::new();
    KEY.get_or_init(|| {
        let keys = AgentKeyPair::from_private_bytes(&PRIVATE_KEY).expect("a fixed key");
        (keys.public_bytes().to_vec(), keys.key_id())
    })
}
