//! The sync driver's lease rules, in process: agents that announce a forest are registered in
//! the gateway with a channel for what the cloud sends them; the scheduler is called by hand.
//! (A run against a real forest is `crates/e2e/tests/sync.rs`.)

use std::sync::Arc;

use passthru_proto::sync::{SyncBatch, SyncDone, SyncForest, SyncObject, SyncUser, Watermark};
use passthru_proto::wire::CloudToAgent;
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::dispatcher::scripted::Scripted;
use crate::gateway::AgentConn;
use crate::in_process::{Bed, DOMAIN};

const FOREST: &str = "corp.example.test";

/// An agent of the bed's tenant that syncs [`FOREST`], connected to the gateway.
fn agent(bed: &Bed) -> (Arc<AgentConn>, mpsc::Receiver<CloudToAgent>) {
    let (tx, rx) = mpsc::channel(64);
    let conn = Arc::new(
        AgentConn::new(
            Uuid::new_v4(),
            bed.tenant.id,
            "sync-host".into(),
            "test".into(),
            vec![DOMAIN.into()],
            vec![9; 32],
            tx,
        )
        .with_sync_forests(vec![SyncForest {
            forest: FOREST.into(),
            interval_seconds: 60,
            upn_suffixes: Vec::new(),
        }]),
    );
    bed.state.gateway.register(conn.clone());
    (conn, rx)
}

/// The run the cloud sent, if any.
fn run_sent(rx: &mut mpsc::Receiver<CloudToAgent>) -> Option<Uuid> {
    let mut run = None;
    while let Ok(m) = rx.try_recv() {
        if let CloudToAgent::SyncRun(r) = m {
            run = Some(r.run_id);
        }
    }
    run
}

fn user(name: &str) -> SyncUser {
    SyncUser {
        object_guid: Uuid::new_v4(),
        consistency_guid: None,
        dn: format!("CN={name},CN=Users,DC=corp,DC=example,DC=test"),
        user_principal_name: Some(format!("{name}@{DOMAIN}")),
        sam_account_name: Some(name.into()),
        mail: None,
        display_name: Some(name.into()),
        given_name: None,
        surname: None,
        enabled: true,
        account_expires: None,
        usn_changed: 1,
        when_changed: None,
        password_last_set: Some(1),
    }
}

fn batch(run_id: Uuid, users: &[&str]) -> SyncBatch {
    SyncBatch {
        run_id,
        objects: users.iter().map(|u| SyncObject::User(user(u))).collect(),
        present: Vec::new(),
        done: users.len() as u64,
        estimated_total: None,
    }
}

#[tokio::test]
async fn one_agent_holds_a_forests_lease_and_it_moves_when_the_holder_drains() -> anyhow::Result<()>
{
    let bed =
        Bed::with_dispatcher(Arc::new(Scripted::new(|p| Ok(crate::in_process::ad(p))))).await?;
    let (a, mut a_rx) = agent(&bed);
    let (b, mut b_rx) = agent(&bed);

    super::schedule(&bed.state, bed.tenant.id).await;
    let (holder, other, run, mut other_rx) = match (run_sent(&mut a_rx), run_sent(&mut b_rx)) {
        (Some(run), None) => (a.clone(), b.clone(), run, b_rx),
        (None, Some(run)) => (b.clone(), a.clone(), run, a_rx),
        sent => anyhow::bail!("exactly one agent should get the run: {sent:?}"),
    };
    let forests = bed.state.store.sync_forests(bed.tenant.id).await?;
    assert_eq!(forests[0].holder_agent_id, Some(holder.agent_id));

    // The holder's batch is applied; one from the other agent (not its run) is dropped.
    super::on_batch(&bed.state, &other, batch(run, &["mallory"])).await;
    super::on_batch(&bed.state, &holder, batch(run, &["dana", "eve"])).await;
    super::on_done(
        &bed.state,
        &holder,
        SyncDone {
            run_id: run,
            watermark: Watermark {
                dc: "dc1".into(),
                usn: 7,
            },
            complete: true,
            full: true,
            objects: 2,
            dc_url: "ldaps://dc1".into(),
            millis: 5,
        },
    )
    .await;
    let store = &bed.state.store;
    assert!(store
        .user_by_upn(bed.tenant.id, &format!("dana@{DOMAIN}"))
        .await?
        .is_some());
    assert!(store
        .user_by_upn(bed.tenant.id, &format!("mallory@{DOMAIN}"))
        .await?
        .is_none());
    let f = &store.sync_forests(bed.tenant.id).await?[0];
    assert!(f.last_success_at.is_some(), "{f:?}");
    assert_eq!(f.watermark.as_ref().map(|w| w.usn), Some(7));

    // The holder drains: the next schedule gives the lease, and a run, to the other agent.
    holder.set_draining();
    super::schedule(&bed.state, bed.tenant.id).await;
    assert!(
        run_sent(&mut other_rx).is_some(),
        "the other agent got the run"
    );
    let f = &store.sync_forests(bed.tenant.id).await?[0];
    assert_eq!(f.holder_agent_id, Some(other.agent_id));
    Ok(())
}
