//! Which agents the other instances hold, from their presence announcements. An instance
//! that has not announced for [`STALE_AFTER`] is forgotten (it died, or the bus is cut); one
//! that said it leaves, or answered a relay with "no responders", is forgotten at once.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use uuid::Uuid;

use super::wire::{Presence, PresentAgent};
use crate::gateway::suffix_matches;

/// How long an instance's announcement counts (three announcement intervals).
pub(crate) const STALE_AFTER: Duration = Duration::from_secs(3);
/// How long an instance that said it leaves is remembered (longer than a message may be
/// replayed: see `cluster::MAX_AGE`).
const LEFT_KEPT: Duration = Duration::from_secs(30);

/// Each instance's announced parts: (instance, part) -> when heard, when sent (its clock,
/// Unix ms), and its agents.
type Parts = HashMap<(Uuid, u32), (Instant, i64, Vec<PresentAgent>)>;

/// The other instances' agents.
#[derive(Debug, Default)]
pub(crate) struct Remote {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    parts: Parts,
    /// Instances that said they leave: announcements they sent before are not taken again
    /// (a copy replayed on the bus), until the entry lapses.
    left: HashMap<Uuid, (Instant, i64)>,
}

impl Remote {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Each operation is one insert or remove: a poisoned map is consistent.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes one part of an instance's announcement sent at `sent_ms` (its clock), received
    /// `at`; parts the instance no longer has go at once. An announcement no newer than the
    /// one held (a copy replayed on the bus) changes nothing.
    pub(crate) fn heard(&self, p: Presence, sent_ms: i64, at: Instant) {
        let mut inner = self.lock();
        let (instance, parts) = (p.instance, p.parts.max(1));
        inner
            .left
            .retain(|_, (when, _)| at.saturating_duration_since(*when) < LEFT_KEPT);
        if inner
            .left
            .get(&instance)
            .is_some_and(|(_, s)| *s >= sent_ms)
        {
            return;
        }
        if inner
            .parts
            .get(&(instance, p.part))
            .is_some_and(|(_, s, _)| *s >= sent_ms)
        {
            return;
        }
        inner
            .parts
            .retain(|(i, part), _| *i != instance || *part < parts);
        if p.part < parts {
            inner
                .parts
                .insert((instance, p.part), (at, sent_ms, p.agents));
        }
    }

    /// Forgets an instance (nobody answers at its subject).
    pub(crate) fn forget(&self, instance: Uuid) {
        self.lock().parts.retain(|(i, _), _| *i != instance);
    }

    /// Forgets an instance that said, at `sent_ms`, that it leaves; its earlier
    /// announcements are not taken again.
    pub(crate) fn left(&self, instance: Uuid, sent_ms: i64) {
        let mut inner = self.lock();
        inner.parts.retain(|(i, _), _| *i != instance);
        inner.left.insert(instance, (Instant::now(), sent_ms));
    }

    /// Whether `instance` announced itself within [`STALE_AFTER`] of `now` (and has not
    /// been forgotten): while it does not, a request relayed to it gets no answer.
    pub(crate) fn present(&self, instance: Uuid, now: Instant) -> bool {
        self.lock()
            .parts
            .get(&(instance, 0))
            .is_some_and(|(at, _, _)| now.saturating_duration_since(*at) < STALE_AFTER)
    }

    /// The tenant's agents at other instances that announced within [`STALE_AFTER`] of
    /// `now`, with their instance.
    pub(crate) fn agents(&self, tenant_id: Uuid, now: Instant) -> Vec<(Uuid, PresentAgent)> {
        let mut inner = self.lock();
        inner
            .parts
            .retain(|_, (at, _, _)| now.saturating_duration_since(*at) < STALE_AFTER);
        inner
            .parts
            .iter()
            .flat_map(|((instance, _), (_, _, list))| {
                list.iter()
                    .filter(|a| a.tenant_id == tenant_id)
                    .map(|a| (*instance, a.clone()))
            })
            .collect()
    }

    /// Picks the agent a request goes to: not draining, not tried at that instance (an
    /// agent tried at an instance that died may have reconnected to another: there it is a
    /// new way to the agent); for a write one that writes for the user's domain first; else
    /// one serving the domain; else any (it answers "not routable"). Least in flight first.
    pub(crate) fn pick(
        &self,
        tenant_id: Uuid,
        suffix: &str,
        write: bool,
        tried: &[(Uuid, Uuid)],
        now: Instant,
    ) -> Option<(Uuid, PresentAgent)> {
        let all: Vec<(Uuid, PresentAgent)> = self
            .agents(tenant_id, now)
            .into_iter()
            .filter(|(i, a)| !a.draining && !tried.contains(&(*i, a.agent_id)))
            .collect();
        let least = |f: &dyn Fn(&PresentAgent) -> bool| {
            all.iter()
                .filter(|(_, a)| f(a))
                .min_by_key(|(_, a)| a.in_flight)
                .cloned()
        };
        let writes = |a: &PresentAgent| a.write_suffixes.iter().any(|s| suffix_matches(suffix, s));
        let serves = |a: &PresentAgent| a.upn_suffixes.iter().any(|s| suffix_matches(suffix, s));
        write
            .then(|| least(&writes))
            .flatten()
            .or_else(|| least(&serves))
            .or_else(|| least(&|_| true))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent(tenant_id: Uuid, suffix: &str, in_flight: usize) -> PresentAgent {
        PresentAgent {
            tenant_id,
            agent_id: Uuid::new_v4(),
            host: "h".into(),
            version: "v".into(),
            upn_suffixes: vec![suffix.into()],
            write_suffixes: Vec::new(),
            hpke_public_key: String::new(),
            sealed_sessions: false,
            in_flight,
            served: 0,
            draining: false,
            last_heard_ms: 0,
        }
    }

    /// The least busy agent serving the domain is picked; an instance silent for
    /// `STALE_AFTER` and one forgotten are not; tried agents are skipped.
    #[test]
    fn picks_fresh_serving_least_busy_agents() -> anyhow::Result<()> {
        let r = Remote::default();
        let t = Uuid::new_v4();
        let (i1, i2, i3) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let now = Instant::now();
        let busy = agent(t, "corp.test", 5);
        let idle = agent(t, "corp.test", 0);
        let other_forest = agent(t, "fabrikam.test", 0);
        r.heard(
            Presence {
                instance: i1,
                agents: vec![busy.clone(), other_forest],
                part: 0,
                parts: 1,
            },
            1000,
            now,
        );
        r.heard(
            Presence {
                instance: i2,
                agents: vec![idle.clone()],
                part: 0,
                parts: 1,
            },
            2000,
            now,
        );
        let old = agent(t, "corp.test", 0);
        r.heard(
            Presence {
                instance: i3,
                agents: vec![old.clone()],
                part: 0,
                parts: 1,
            },
            3000,
            now - STALE_AFTER - Duration::from_millis(1),
        );
        let (inst, a) = r
            .pick(t, "corp.test", false, &[], now)
            .ok_or_else(|| anyhow::anyhow!("no agent"))?;
        assert_eq!((inst, a.agent_id), (i2, idle.agent_id));
        let (_, a) = r
            .pick(t, "corp.test", false, &[(i2, idle.agent_id)], now)
            .ok_or_else(|| anyhow::anyhow!("no agent"))?;
        assert_eq!(a.agent_id, busy.agent_id, "the tried one is skipped");
        assert!(r.present(i1, now) && r.present(i2, now));
        assert!(!r.present(i3, now), "silent for STALE_AFTER: not present");
        assert!(
            r.agents(t, now)
                .iter()
                .all(|(_, a)| a.agent_id != old.agent_id),
            "stale instance dropped"
        );
        r.forget(i2);
        assert!(!r.present(i2, now), "forgotten: not present");
        let (_, a) = r
            .pick(t, "corp.test", false, &[], now)
            .ok_or_else(|| anyhow::anyhow!("no agent"))?;
        assert_eq!(a.agent_id, busy.agent_id);
        assert!(r
            .pick(Uuid::new_v4(), "corp.test", false, &[], now)
            .is_none());
        Ok(())
    }

    /// An agent tried at an instance that died and now announced by another (it reconnected
    /// there) is picked at the new one.
    #[test]
    fn an_agent_tried_at_a_dead_instance_is_picked_where_it_reconnected() -> anyhow::Result<()> {
        let r = Remote::default();
        let t = Uuid::new_v4();
        let (dead, alive) = (Uuid::new_v4(), Uuid::new_v4());
        let now = Instant::now();
        let a = agent(t, "corp.test", 0);
        r.heard(
            Presence {
                instance: dead,
                agents: vec![a.clone()],
                part: 0,
                parts: 1,
            },
            4000,
            now,
        );
        let tried = [(dead, a.agent_id)];
        assert!(r.pick(t, "corp.test", false, &tried, now).is_none());
        r.forget(dead);
        r.heard(
            Presence {
                instance: alive,
                agents: vec![a.clone()],
                part: 0,
                parts: 1,
            },
            5000,
            now,
        );
        let (inst, got) = r
            .pick(t, "corp.test", false, &tried, now)
            .ok_or_else(|| anyhow::anyhow!("the reconnected agent was not picked"))?;
        assert_eq!((inst, got.agent_id), (alive, a.agent_id));
        Ok(())
    }

    /// An instance with more agents than one message takes announces them in parts: every
    /// part counts; when its list shrinks to fewer parts, the parts it no longer has go at
    /// once.
    #[test]
    fn a_list_in_parts_counts_whole_and_shrinks_at_once() {
        let r = Remote::default();
        let t = Uuid::new_v4();
        let i = Uuid::new_v4();
        let now = Instant::now();
        let (a, b) = (agent(t, "corp.test", 0), agent(t, "corp.test", 0));
        for (part, x) in [(0, &a), (1, &b)] {
            r.heard(
                Presence {
                    instance: i,
                    agents: vec![x.clone()],
                    part,
                    parts: 2,
                },
                6000,
                now,
            );
        }
        assert_eq!(r.agents(t, now).len(), 2);
        r.heard(
            Presence {
                instance: i,
                agents: vec![a.clone()],
                part: 0,
                parts: 1,
            },
            7000,
            now,
        );
        let left: Vec<Uuid> = r
            .agents(t, now)
            .into_iter()
            .map(|(_, x)| x.agent_id)
            .collect();
        assert_eq!(left, vec![a.agent_id]);
    }

    /// A copy of an older announcement (replayed on the bus) changes nothing: not after a
    /// newer one, and not after the instance said it leaves.
    #[test]
    fn replayed_announcements_change_nothing() {
        let r = Remote::default();
        let t = Uuid::new_v4();
        let i = Uuid::new_v4();
        let now = Instant::now();
        let revoked = agent(t, "corp.test", 0);
        let old = Presence {
            instance: i,
            agents: vec![revoked.clone()],
            part: 0,
            parts: 1,
        };
        r.heard(old.clone(), 1_000, now);
        r.heard(
            Presence {
                instance: i,
                agents: Vec::new(),
                part: 0,
                parts: 1,
            },
            2_000,
            now,
        );
        r.heard(old.clone(), 1_000, now);
        assert!(r.agents(t, now).is_empty(), "the older list came back");
        r.left(i, 3_000);
        r.heard(old, 2_500, now);
        assert!(
            r.agents(t, now).is_empty(),
            "a list from before it left came back"
        );
    }
}
