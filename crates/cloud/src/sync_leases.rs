//! Directory sync leases in memory: per tenant and forest, which agent holds the lease and
//! the run in progress ([`Coordinator`]). No I/O: [`crate::dirsync`] drives it from the
//! scheduler and the agents' answers, the portal and the API read its progress.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::Serialize;
use uuid::Uuid;

use crate::gateway::AgentConn;

/// A forest's lease and run, in memory.
#[derive(Debug, Default)]
pub(crate) struct ForestSlot {
    pub(crate) holder: Option<Holder>,
    pub(crate) run: Option<Run>,
    /// When the next run is due (None: at once).
    pub(crate) next_run: Option<Instant>,
    pub(crate) interval: Duration,
    /// An administrator asked for a full import at the next run.
    pub(crate) full_requested: bool,
    /// When the last complete run (full, or reconciling) ended, and how long it took.
    pub(crate) last_complete: Option<(Instant, Duration)>,
    /// Until when this instance holds the forest's lease in the store (several instances:
    /// only the holder's agents sync the forest).
    pub(crate) lease_until: Option<Instant>,
}

/// A reconciling run (every object's GUID listed, when the service account cannot read
/// tombstones) costs about a full import: it is asked for when the last complete run ended at
/// least an interval ago and at least this many times its own duration ago, so that listing
/// takes at most about a tenth of the time and changes are never delayed behind it.
pub(crate) const RECONCILE_SPACING: u32 = 10;

impl ForestSlot {
    /// Whether the next run should reconcile.
    pub(crate) fn reconcile_due(&self) -> bool {
        self.last_complete.is_none_or(|(ended, took)| {
            ended.elapsed() >= self.interval.max(took * RECONCILE_SPACING)
        })
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Holder {
    pub(crate) agent_id: Uuid,
    pub(crate) conn_id: Uuid,
}

#[derive(Debug, Clone)]
pub(crate) struct Run {
    pub(crate) run_id: Uuid,
    pub(crate) conn_id: Uuid,
    pub(crate) full: bool,
    pub(crate) started: Instant,
    pub(crate) started_unix: i64,
    pub(crate) last_message: Instant,
    pub(crate) done: u64,
    pub(crate) estimated_total: Option<u64>,
    pub(crate) conflicts: Vec<String>,
}

/// A run in progress, for the portal and the API.
#[derive(Debug, Clone, Serialize)]
pub struct RunProgress {
    pub forest: String,
    pub run_id: Uuid,
    pub agent_id: Uuid,
    pub full: bool,
    /// Unix seconds.
    pub started_at: i64,
    /// Objects read so far.
    pub objects: u64,
    /// Objects per second since the start.
    pub objects_per_second: f64,
    /// The expected total, when known.
    pub estimated_total: Option<u64>,
    /// Seconds left at the current rate, when the total is known.
    pub eta_seconds: Option<u64>,
}

/// The sync coordinator of one cloud process.
#[derive(Debug, Default)]
pub struct Coordinator {
    slots: Mutex<HashMap<(Uuid, String), ForestSlot>>,
}

pub(crate) fn key(tenant_id: Uuid, forest: &str) -> (Uuid, String) {
    (tenant_id, forest.to_ascii_lowercase())
}

impl Coordinator {
    pub(crate) fn slots(&self) -> MutexGuard<'_, HashMap<(Uuid, String), ForestSlot>> {
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The runs in progress of a tenant.
    pub fn progress(&self, tenant_id: Uuid) -> Vec<RunProgress> {
        let slots = self.slots();
        let mut out: Vec<RunProgress> = slots
            .iter()
            .filter(|((t, _), _)| *t == tenant_id)
            .filter_map(|((_, forest), slot)| {
                let run = slot.run.as_ref()?;
                let holder = slot.holder.as_ref()?;
                let secs = run.started.elapsed().as_secs_f64().max(0.001);
                let rate = run.done as f64 / secs;
                let eta = run.estimated_total.and_then(|total| {
                    (rate > 0.0)
                        .then(|| (total.saturating_sub(run.done) as f64 / rate).ceil() as u64)
                });
                Some(RunProgress {
                    forest: forest.clone(),
                    run_id: run.run_id,
                    agent_id: holder.agent_id,
                    full: run.full,
                    started_at: run.started_unix,
                    objects: run.done,
                    objects_per_second: (rate * 10.0).round() / 10.0,
                    estimated_total: run.estimated_total,
                    eta_seconds: eta,
                })
            })
            .collect();
        out.sort_by(|a, b| a.forest.cmp(&b.forest));
        out
    }

    /// Asks for a run of `forest` as soon as the current one (if any) ends; `full` makes it a
    /// full import. False when no agent has synced the forest in this cloud process yet.
    pub fn request_run(&self, tenant_id: Uuid, forest: &str, full: bool) -> bool {
        let mut slots = self.slots();
        let Some(slot) = slots.get_mut(&key(tenant_id, forest)) else {
            return false;
        };
        slot.next_run = None;
        slot.full_requested |= full;
        true
    }

    /// The current run of `forest` if `conn` runs it as `run_id`.
    pub(crate) fn current(
        &self,
        tenant_id: Uuid,
        conn: &AgentConn,
        run_id: Uuid,
    ) -> Option<String> {
        let slots = self.slots();
        slots.iter().find_map(|((t, forest), slot)| {
            let run = slot.run.as_ref()?;
            (*t == tenant_id && run.run_id == run_id && run.conn_id == conn.conn_id)
                .then(|| forest.clone())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_reports_rate_and_time_left() {
        let c = Coordinator::default();
        let tenant = Uuid::new_v4();
        let agent = Uuid::new_v4();
        let started = Instant::now() - Duration::from_secs(4);
        c.slots().insert(
            key(tenant, "Corp.Test"),
            ForestSlot {
                holder: Some(Holder {
                    agent_id: agent,
                    conn_id: Uuid::new_v4(),
                }),
                run: Some(Run {
                    run_id: Uuid::new_v4(),
                    conn_id: Uuid::new_v4(),
                    full: true,
                    started,
                    started_unix: 1,
                    last_message: started,
                    done: 4000,
                    estimated_total: Some(10_000),
                    conflicts: Vec::new(),
                }),
                next_run: None,
                interval: Duration::from_secs(60),
                full_requested: false,
                last_complete: None,
                lease_until: None,
            },
        );
        // Another tenant's run is not shown.
        c.slots()
            .insert(key(Uuid::new_v4(), "corp.test"), ForestSlot::default());
        let p = c.progress(tenant);
        assert_eq!(p.len(), 1);
        let p = &p[0];
        assert_eq!(
            (p.forest.as_str(), p.agent_id, p.full),
            ("corp.test", agent, true)
        );
        assert!((900.0..=1000.0).contains(&p.objects_per_second), "{p:?}");
        // 6,000 objects left at about 1,000/s.
        assert!(p.eta_seconds.is_some_and(|s| (6..=7).contains(&s)), "{p:?}");
        assert!(c.progress(Uuid::new_v4()).is_empty());
    }

    #[test]
    fn reconciling_runs_take_a_bounded_share_of_the_time() {
        let mut slot = ForestSlot {
            interval: Duration::from_secs(5),
            ..Default::default()
        };
        assert!(slot.reconcile_due(), "nothing reconciled yet");
        // A small forest: the listing is quick, every run after an interval reconciles.
        slot.last_complete = Some((
            Instant::now() - Duration::from_secs(5),
            Duration::from_millis(50),
        ));
        assert!(slot.reconcile_due());
        // A large one: 8 s of listing, so at most one reconciling run every 80 s.
        slot.last_complete = Some((
            Instant::now() - Duration::from_secs(30),
            Duration::from_secs(8),
        ));
        assert!(!slot.reconcile_due());
        slot.last_complete = Some((
            Instant::now() - Duration::from_secs(81),
            Duration::from_secs(8),
        ));
        assert!(slot.reconcile_due());
    }
}
