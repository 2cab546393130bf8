//! Directory sync, cloud side: which agent syncs each forest (the lease), when it runs, and
//! what its answers change in the store.
//!
//! - Lease: per tenant and forest, one connected agent that announced the forest (the least
//!   busy when it is granted). The holder keeps it while it is connected, not draining, and
//!   heard from (any frame, pongs included) within 2 sync intervals, and while its run in
//!   progress sends something within 2 intervals. Otherwise the lease goes to another agent
//!   at the next tick (every 250 ms), which continues from the stored watermark.
//! - Runs: the holder gets a [`SyncRun`] at once when it takes the lease, then one interval
//!   after each run ends. The first run of a forest (no watermark) is a full import; so is a
//!   run after the agent reads another DC (the agent decides, USNs being per DC).
//! - Answers: batches are applied in order, each in one transaction; the end of a complete
//!   run removes what it did not mention; the watermark is stored only then. Messages of a
//!   run that is no longer current (a lease that moved) are dropped.
//! - The first successful run of a tenant's first forest turns `sync_required` on (once: an
//!   administrator may turn it off again).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use passthru_proto::sync::{SyncBatch, SyncDone, SyncFailed, SyncRun};
use passthru_proto::wire::CloudToAgent;
use uuid::Uuid;

use crate::clock::{unix_ms, unix_now};
use crate::gateway::AgentConn;
use crate::state::Shared;
use crate::sync_leases::{key, Holder, Run};

/// How often the scheduler looks at leases and due runs.
const TICK: Duration = Duration::from_millis(250);
/// Most conflicts kept per forest for the administrator.
const MAX_CONFLICTS: usize = 50;

/// Runs the scheduler until the server shuts down.
pub fn spawn(state: Shared) {
    tokio::spawn(async move {
        let mut shutdown = state.shutdown.clone();
        let mut ticker = tokio::time::interval(TICK);
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                _ = shutdown.changed() => return,
            }
            for tenant_id in state.gateway.tenants_with_sync() {
                schedule(&state, tenant_id).await;
            }
            release_orphans(&state).await;
        }
    });
}

/// Whether a holder's connection still qualifies for the lease: not draining, and heard from
/// within 2 sync intervals (or 2 heartbeats, when those are longer: an idle agent is only
/// heard at each heartbeat).
fn usable(conn: &AgentConn, interval: Duration, heartbeat: Duration, now_ms: u64) -> bool {
    let silent_ms = now_ms.saturating_sub(conn.last_heard_ms());
    !conn.is_draining() && u128::from(silent_ms) < interval.max(heartbeat).as_millis() * 2
}

/// Grants leases and starts due runs for one tenant.
async fn schedule(state: &Shared, tenant_id: Uuid) {
    let conns = state.gateway.connections(tenant_id);
    let now_ms = u64::try_from(unix_ms()).unwrap_or(0);
    // Every forest announced by a connected agent, with the agents that can sync it.
    let mut forests: HashMap<String, (u64, Vec<Arc<AgentConn>>)> = HashMap::new();
    for c in &conns {
        for f in &c.sync_forests {
            let e = forests
                .entry(f.forest.to_ascii_lowercase())
                .or_insert((f.interval_seconds, Vec::new()));
            e.0 = e.0.min(f.interval_seconds.max(1));
            e.1.push(c.clone());
        }
    }
    for (forest, (interval_s, candidates)) in forests {
        let interval = Duration::from_secs(interval_s.max(1));
        if !holds_lease(state, tenant_id, &forest, interval).await {
            continue;
        }
        let mut grant: Option<(Holder, Option<Uuid>)> = None;
        let mut start: Option<Arc<AgentConn>> = None;
        {
            let mut slots = state.sync.slots();
            let slot = slots.entry(key(tenant_id, &forest)).or_default();
            slot.interval = interval;
            let holder_conn = slot.holder.as_ref().and_then(|h| {
                candidates
                    .iter()
                    .find(|c| c.conn_id == h.conn_id)
                    .filter(|c| usable(c, interval, state.heartbeat, now_ms))
                    .cloned()
            });
            let stuck = slot
                .run
                .as_ref()
                .is_some_and(|r| r.last_message.elapsed() > interval * 2);
            let keep = holder_conn.filter(|_| !stuck);
            match keep {
                Some(c) => {
                    let due = slot.next_run.is_none_or(|t| Instant::now() >= t);
                    if slot.run.is_none() && due {
                        start = Some(c);
                    }
                }
                None => {
                    // Take the lease from the holder (gone, silent, draining or stuck) and
                    // give it to the least busy other agent, else to the same one again.
                    let previous = slot.holder.as_ref().map(|h| h.conn_id);
                    let pick = candidates
                        .iter()
                        .filter(|c| usable(c, interval, state.heartbeat, now_ms))
                        .filter(|c| Some(c.conn_id) != previous)
                        .min_by_key(|c| c.in_flight())
                        .or_else(|| {
                            candidates
                                .iter()
                                .filter(|c| usable(c, interval, state.heartbeat, now_ms))
                                .min_by_key(|c| c.in_flight())
                        })
                        .cloned();
                    let old_agent = slot.holder.as_ref().map(|h| h.agent_id);
                    slot.run = None;
                    slot.holder = None;
                    if let Some(c) = pick {
                        let holder = Holder {
                            agent_id: c.agent_id,
                            conn_id: c.conn_id,
                        };
                        slot.holder = Some(holder.clone());
                        grant = Some((holder, old_agent));
                        start = Some(c);
                    }
                }
            }
        }
        if let Some((holder, old)) = &grant {
            match old {
                Some(old) if *old == holder.agent_id => {
                    tracing::warn!(tenant = %tenant_id, %forest, agent = %old, "the sync run got no answer for 2 intervals and no other agent can take over: starting again")
                }
                Some(old) => {
                    tracing::warn!(tenant = %tenant_id, %forest, from = %old, to = %holder.agent_id, "sync lease moved to another agent")
                }
                None => {
                    tracing::info!(tenant = %tenant_id, %forest, agent = %holder.agent_id, "sync lease granted")
                }
            }
            let now = unix_now();
            if let Err(e) = state
                .store
                .ensure_sync_forest(tenant_id, &forest, interval.as_secs())
                .await
            {
                tracing::error!(error = %e, "could not record the sync forest");
            }
            let _ = state
                .store
                .set_sync_holder(tenant_id, &forest, Some(holder.agent_id), now)
                .await;
        }
        if let Some(conn) = start {
            start_run(state, tenant_id, &forest, &conn, interval).await;
        }
    }
}

/// How long an instance's lease on a forest lasts in the store: one sync interval (at least
/// 2 s, at most 5 min), renewed when half is left. When the instance dies, another takes the
/// forest over at most this long after.
fn lease_ttl(interval: Duration) -> Duration {
    interval.clamp(Duration::from_secs(2), Duration::from_secs(300))
}

/// Whether this instance may sync the tenant's forest: with other instances (`serve
/// --bus`), only while it holds the forest's lease in the store; alone, always. Claims or
/// renews the lease when due; losing it drops the local holder and run.
async fn holds_lease(state: &Shared, tenant_id: Uuid, forest: &str, interval: Duration) -> bool {
    let Some(cluster) = &state.cluster else {
        return true;
    };
    let ttl = lease_ttl(interval);
    let now = Instant::now();
    let until = state
        .sync
        .slots()
        .get(&key(tenant_id, forest))
        .and_then(|s| s.lease_until);
    if until.is_some_and(|u| u.saturating_duration_since(now) > ttl / 2) {
        return true;
    }
    let now_ms = unix_ms();
    let claimed = state
        .store
        .claim_sync_lease(
            tenant_id,
            forest,
            cluster.instance,
            now_ms,
            now_ms + ttl.as_millis() as i64,
        )
        .await;
    let held = match claimed {
        Ok(held) => held,
        Err(e) => {
            tracing::warn!(error = %e, tenant = %tenant_id, %forest, "could not renew the sync lease in the store");
            until.is_some_and(|u| u > now)
        }
    };
    let mut slots = state.sync.slots();
    let slot = slots.entry(key(tenant_id, forest)).or_default();
    if held {
        if slot.lease_until.is_none() {
            tracing::info!(tenant = %tenant_id, %forest, instance = %cluster.instance, "this instance holds the forest's sync lease");
        }
        slot.lease_until = Some(now + ttl);
    } else {
        if slot.holder.is_some() {
            tracing::warn!(tenant = %tenant_id, %forest, "another instance holds the forest's sync lease: its agents sync it");
        }
        slot.lease_until = None;
        slot.holder = None;
        slot.run = None;
    }
    held
}

/// Leases whose holder is no longer connected, for forests no connected agent can take over:
/// the holder is cleared (in the store too, so `sync status` says nobody syncs the forest).
async fn release_orphans(state: &Shared) {
    let connected: std::collections::HashSet<Uuid> = state
        .gateway
        .tenants_with_sync()
        .into_iter()
        .flat_map(|t| state.gateway.connections(t))
        .map(|c| c.conn_id)
        .collect();
    let orphans: Vec<(Uuid, String)> = {
        let mut slots = state.sync.slots();
        slots
            .iter_mut()
            .filter(|(_, slot)| {
                slot.holder
                    .as_ref()
                    .is_some_and(|h| !connected.contains(&h.conn_id))
            })
            .map(|((tenant, forest), slot)| {
                slot.holder = None;
                slot.run = None;
                (*tenant, forest.clone())
            })
            .collect()
    };
    for (tenant, forest) in orphans {
        tracing::warn!(%tenant, %forest, "no connected agent can sync this forest");
        if let Some(cluster) = &state.cluster {
            // Another instance's agents may: the lease is theirs to take at once.
            if let Some(slot) = state.sync.slots().get_mut(&key(tenant, &forest)) {
                slot.lease_until = None;
            }
            let _ = state
                .store
                .release_sync_lease(tenant, &forest, cluster.instance)
                .await;
        }
        let _ = state
            .store
            .set_sync_holder(tenant, &forest, None, unix_now())
            .await;
    }
}

async fn start_run(
    state: &Shared,
    tenant_id: Uuid,
    forest: &str,
    conn: &AgentConn,
    interval: Duration,
) {
    let stored = match state.store.sync_forests(tenant_id).await {
        Ok(all) => all
            .into_iter()
            .find(|f| f.forest.eq_ignore_ascii_case(forest)),
        Err(e) => {
            tracing::error!(error = %e, "cannot read the sync state; the run waits");
            return;
        }
    };
    if stored.is_none() {
        let _ = state
            .store
            .ensure_sync_forest(tenant_id, forest, interval.as_secs())
            .await;
    }
    let watermark = stored.as_ref().and_then(|s| s.watermark.clone());
    let (full_requested, reconcile) = {
        let slots = state.sync.slots();
        slots
            .get(&key(tenant_id, forest))
            .map_or((false, true), |s| (s.full_requested, s.reconcile_due()))
    };
    let run = SyncRun {
        forest: forest.to_string(),
        run_id: Uuid::new_v4(),
        full: watermark.is_none() || full_requested,
        watermark,
        previous_total: stored
            .as_ref()
            .and_then(|s| s.full_total)
            .and_then(|t| u64::try_from(t).ok()),
        reconcile,
    };
    let mut slots = state.sync.slots();
    let slot = slots.entry(key(tenant_id, forest)).or_default();
    let still_holder = slot
        .holder
        .as_ref()
        .is_some_and(|h| h.conn_id == conn.conn_id);
    if !still_holder || slot.run.is_some() {
        return;
    }
    if !conn.send(CloudToAgent::SyncRun(run.clone())) {
        slot.next_run = Some(Instant::now() + interval);
        return;
    }
    slot.full_requested = false;
    tracing::debug!(tenant = %tenant_id, forest, run = %run.run_id, full = run.full, "sync run started");
    let now = Instant::now();
    slot.run = Some(Run {
        run_id: run.run_id,
        conn_id: conn.conn_id,
        full: run.full,
        started: now,
        started_unix: unix_now(),
        last_message: now,
        done: 0,
        estimated_total: run.previous_total,
        conflicts: Vec::new(),
    });
}

/// Applies a batch from `conn`; batches of a run that is not current are dropped.
pub async fn on_batch(state: &Shared, conn: &AgentConn, batch: SyncBatch) {
    let Some(forest) = state.sync.current(conn.tenant_id, conn, batch.run_id) else {
        tracing::info!(agent = %conn.agent_id, run = %batch.run_id, "sync batch of a run that is no longer current dropped");
        return;
    };
    let applied = state
        .store
        .apply_sync_batch(conn.tenant_id, &forest, &batch, unix_now())
        .await;
    let mut slots = state.sync.slots();
    let Some(run) = slots
        .get_mut(&key(conn.tenant_id, &forest))
        .and_then(|s| s.run.as_mut())
        .filter(|r| r.run_id == batch.run_id)
    else {
        return;
    };
    run.last_message = Instant::now();
    run.done = batch.done.max(run.done);
    if batch.estimated_total.is_some() {
        run.estimated_total = batch.estimated_total;
    }
    match applied {
        Ok(a) => {
            let m = &state.metrics;
            m.sync_applied(conn.tenant_id, &forest, "user", a.users);
            m.sync_applied(conn.tenant_id, &forest, "group", a.groups);
            m.sync_applied(conn.tenant_id, &forest, "deleted", a.deleted);
            for user in a.password_changed {
                // Changed in AD since the last run: every agent forgets the wrong passwords
                // it remembers for the user (the new one may be among them).
                tracing::debug!(tenant = %conn.tenant_id, %user, "sync: password changed in AD");
                state
                    .gateway
                    .tell_all(conn.tenant_id, &CloudToAgent::PasswordChanged { user });
            }
            for c in a.conflicts {
                tracing::warn!(tenant = %conn.tenant_id, %forest, "sync: object not applied: {c}");
                if run.conflicts.len() < MAX_CONFLICTS {
                    run.conflicts.push(c);
                }
            }
        }
        Err(e) => {
            // The run cannot complete without this batch: end it, and start over next time.
            tracing::error!(tenant = %conn.tenant_id, %forest, error = %e, "sync batch could not be stored; the run is abandoned");
            let slot = slots.get_mut(&key(conn.tenant_id, &forest));
            if let Some(slot) = slot {
                slot.run = None;
                slot.next_run = Some(Instant::now() + slot.interval);
            }
        }
    }
}

/// Ends a run: reconciliation, watermark, next run.
pub async fn on_done(state: &Shared, conn: &AgentConn, done: SyncDone) {
    let Some(forest) = state.sync.current(conn.tenant_id, conn, done.run_id) else {
        return;
    };
    let conflicts = {
        let slots = state.sync.slots();
        slots
            .get(&key(conn.tenant_id, &forest))
            .and_then(|s| s.run.as_ref())
            .map(|r| r.conflicts.clone())
            .unwrap_or_default()
    };
    let first = state
        .store
        .sync_forests(conn.tenant_id)
        .await
        .map(|all| all.iter().all(|f| f.last_success_at.is_none()))
        .unwrap_or(false);
    let result = state
        .store
        .finish_sync_run(conn.tenant_id, &forest, &done, &conflicts, unix_now())
        .await;
    match &result {
        Ok(removed) => {
            tracing::info!(tenant = %conn.tenant_id, %forest, objects = done.objects, removed, full = done.full,
            millis = done.millis, dc = %done.dc_url, "sync run finished")
        }
        Err(e) => {
            tracing::error!(tenant = %conn.tenant_id, %forest, error = %e, "sync run could not be finished")
        }
    }
    if result.is_ok() && first {
        turn_sync_required_on(state, conn.tenant_id).await;
    }
    if result.is_ok() && done.complete {
        let mut slots = state.sync.slots();
        if let Some(slot) = slots.get_mut(&key(conn.tenant_id, &forest)) {
            let took = slot
                .run
                .as_ref()
                .filter(|r| r.run_id == done.run_id)
                .map(|r| r.started.elapsed())
                .unwrap_or_default();
            slot.last_complete = Some((Instant::now(), took));
        }
    }
    end_run(state, conn.tenant_id, &forest, done.run_id);
}

/// Records a failed run.
pub async fn on_failed(state: &Shared, conn: &AgentConn, failed: SyncFailed) {
    let Some(forest) = state.sync.current(conn.tenant_id, conn, failed.run_id) else {
        return;
    };
    tracing::warn!(tenant = %conn.tenant_id, %forest, agent = %conn.agent_id, error = %failed.error, "sync run failed");
    state
        .metrics
        .sync_run(conn.tenant_id, &forest, false, unix_now());
    if let Err(e) = state
        .store
        .sync_run_failed(conn.tenant_id, &forest, &failed.error, unix_now())
        .await
    {
        tracing::error!(error = %e, "could not record the failed sync run");
    }
    end_run(state, conn.tenant_id, &forest, failed.run_id);
}

fn end_run(state: &Shared, tenant_id: Uuid, forest: &str, run_id: Uuid) {
    let mut slots = state.sync.slots();
    if let Some(slot) = slots.get_mut(&key(tenant_id, forest)) {
        if slot.run.as_ref().is_some_and(|r| r.run_id == run_id) {
            slot.run = None;
            slot.next_run = Some(Instant::now() + slot.interval);
        }
    }
}

/// The tenant's first forest has synced: from now on a managed-domain user unknown to sync
/// is refused.
async fn turn_sync_required_on(state: &Shared, tenant_id: Uuid) {
    let Ok(Some(tenant)) = state.store.tenant(&tenant_id.to_string()).await else {
        return;
    };
    if tenant.settings.sync_required {
        return;
    }
    let mut settings = tenant.settings.clone();
    settings.sync_required = true;
    match state.store.save_settings(tenant_id, &settings).await {
        Ok(()) => {
            tracing::info!(tenant = %tenant.name, "first directory sync complete: sync_required is now on")
        }
        Err(e) => tracing::error!(error = %e, "could not turn sync_required on"),
    }
}

#[cfg(test)]
mod tests;
