//! The answers that show the store's records (synced groups, sync state, sign-in lines, an
//! agent's domain controllers) carry each record as its own `Serialize` writes it, with the
//! fields the handlers add: the JSON other programs read does not change with the API's types.

use passthru_proto::wire::DcStatus;
use serde_json::{json, Value};
use uuid::Uuid;

use super::agents::domain_controller_json;
use super::groups::{forest_json, group_json, group_with_members_json};
use super::signins::sign_in_json;
use crate::store::groups::{Group, Member};
use crate::store::sync::SyncForestState;
use crate::store::SignIn;
use crate::sync_leases::RunProgress;

type R = Result<(), serde_json::Error>;

fn group(named: bool) -> Group {
    Group {
        id: Uuid::new_v4(),
        name: named.then(|| "Sales".to_string()),
        display_name: named.then(|| "Sales team".to_string()),
        mail: None,
        dn: "CN=Sales,DC=corp,DC=example".into(),
        forest: "corp.example".into(),
        object_guid: Uuid::new_v4(),
        immutable_id: "aW1tdXRhYmxl".into(),
        synced_at: 1_800_000_000,
    }
}

#[test]
fn groups_are_their_records() -> R {
    for g in [group(true), group(false)] {
        assert_eq!(
            serde_json::to_value(group_json(&g))?,
            serde_json::to_value(&g)?
        );
        let members = vec![
            Member {
                kind: "user",
                object_guid: Uuid::new_v4(),
                id: Some(Uuid::new_v4()),
                name: Some("alice@corp.example".into()),
            },
            Member {
                kind: "unknown",
                object_guid: Uuid::new_v4(),
                id: None,
                name: None,
            },
        ];
        let mut before = serde_json::to_value(&g)?;
        before["members"] = json!(members);
        let now = serde_json::to_value(group_with_members_json(&g, &members))?;
        assert_eq!(now, before);
        assert!(now["members"][1]["id"].is_null() && now["mail"].is_null());
    }
    Ok(())
}

#[test]
fn forests_are_their_records_with_counts_and_the_run() -> R {
    let bare = SyncForestState {
        forest: "corp.example".into(),
        holder_agent_id: None,
        lease_since: None,
        watermark: None,
        interval_seconds: 120,
        last_full_at: None,
        last_success_at: None,
        last_run_at: None,
        last_error: None,
        last_objects: None,
        full_total: None,
        conflicts: Vec::new(),
    };
    let busy = SyncForestState {
        holder_agent_id: Some(Uuid::new_v4()),
        lease_since: Some(1),
        last_full_at: Some(2),
        last_success_at: Some(3),
        last_run_at: Some(4),
        last_error: Some("LDAP: busy".into()),
        last_objects: Some(5),
        full_total: Some(6),
        conflicts: vec!["bob: UPN taken".into()],
        ..bare.clone()
    };
    let run = RunProgress {
        forest: "corp.example".into(),
        run_id: Uuid::new_v4(),
        agent_id: Uuid::new_v4(),
        full: true,
        started_at: 7,
        objects: 1234,
        objects_per_second: 41.5,
        estimated_total: Some(5000),
        eta_seconds: None,
    };
    for (f, running) in [(&bare, None), (&busy, Some(&run))] {
        let mut before = serde_json::to_value(f)?;
        before["users"] = json!(10);
        before["groups"] = json!(3);
        before["running"] = json!(running);
        let now = serde_json::to_value(forest_json(f, (10, 3), running))?;
        assert_eq!(now, before);
        assert!(now.get("watermark").is_none());
    }
    Ok(())
}

#[test]
fn sign_ins_are_their_records_with_the_time() -> R {
    let full = SignIn {
        id: 0,
        time_ms: 1_795_946_400_123,
        username: "alice@corp.example".into(),
        client_id: Some("app".into()),
        result: "failure".into(),
        aadsts: Some(50126),
        win32: Some(1326),
        agent_id: Some(Uuid::new_v4()),
        other_agents: vec![Uuid::new_v4()],
        latency_ms: Some(12),
        correlation_id: "c".into(),
        client_ip: Some("127.0.0.1".into()),
    };
    let bare = SignIn {
        client_id: None,
        result: "success".into(),
        aadsts: None,
        win32: None,
        agent_id: None,
        other_agents: Vec::new(),
        latency_ms: None,
        client_ip: None,
        ..full.clone()
    };
    for s in [&full, &bare] {
        let mut before = serde_json::to_value(s)?;
        before["time"] = json!("2026-11-29T10:00:00.123Z");
        assert_eq!(
            serde_json::to_value(sign_in_json(s, &super::signins::Names::default()))?,
            before
        );
    }
    Ok(())
}

#[test]
fn domain_controllers_are_what_the_agent_reported() -> R {
    let dc = DcStatus {
        forest: "corp".into(),
        url: "ldaps://dc1.corp.example:636".into(),
        up: false,
        since: 1_800_000_000,
        consecutive_failures: 3,
    };
    let now: Value = serde_json::to_value(domain_controller_json(&dc))?;
    assert_eq!(now, serde_json::to_value(&dc)?);
    Ok(())
}
