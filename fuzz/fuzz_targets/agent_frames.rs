//! What the agent reads from the cloud: one JSON text frame as a `CloudToAgent`, and a
//! `Validate` request through admission (deadline, skew, replay, addressee, key, open).
#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use passthru_agent::admission::{Admission, Identity};
use passthru_proto::{AgentKeyPair, CloudToAgent};

fuzz_target!(|data: &[u8]| {
    // The agent reads text frames only (WebSocket text is UTF-8).
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(message) = serde_json::from_str::<CloudToAgent>(text) else {
        return;
    };
    // What was read writes back and reads back as the same message.
    let json = serde_json::to_string(&message).expect("a parsed frame serializes");
    let again: CloudToAgent = serde_json::from_str(&json).expect("a written frame parses");
    assert_eq!(
        serde_json::to_string(&again).expect("serializes"),
        json,
        "the frame does not round-trip"
    );
    if let CloudToAgent::Validate(request) = message {
        let Ok(keys) = AgentKeyPair::from_private_bytes(&[7; 32]) else {
            return;
        };
        let admission = Admission::new(
            Identity {
                tenant_id: request.tenant_id,
                agent_id: request.agent_id,
                keys,
            },
            Duration::from_secs(300),
            16,
        );
        for now in [request.issued_at_ms, request.expires_at_ms] {
            if admission.admit(&request, now).is_ok() {
                assert!(admission.admit(&request, now).is_err(), "admitted twice");
            }
        }
    }
});
