//! What the cloud reads from an agent: one JSON text frame as an `AgentToCloud` (hello,
//! results, stats, sync batches), which must read back as it was written.
#![no_main]

use libfuzzer_sys::fuzz_target;
use passthru_proto::AgentToCloud;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(message) = serde_json::from_str::<AgentToCloud>(text) else {
        return;
    };
    let json = serde_json::to_string(&message).expect("a parsed frame serializes");
    let again: AgentToCloud = serde_json::from_str(&json).expect("a written frame parses");
    assert_eq!(
        serde_json::to_string(&again).expect("serializes"),
        json,
        "the frame does not round-trip"
    );
    if let AgentToCloud::Result { outcome, .. } = &again {
        // The codes an answer names are the cloud's to map; none may panic.
        let _ = outcome.aadsts();
    }
});
