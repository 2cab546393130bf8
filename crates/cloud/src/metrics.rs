//! Prometheus metrics (OpenMetrics text, `prometheus-client`), served at `GET /metrics` on the
//! separate management listener (`serve --metrics-listen ADDR`), never on the public port.
//!
//! - `passthru_signins_total{tenant,result,aadsts}`: every sign-in log entry.
//! - `passthru_pass_through_round_trip_seconds{tenant}`: histogram of the cloud-measured round
//!   trip of pass-through requests (cloud -> agent -> directory -> cloud).
//! - `passthru_agents_connected{tenant}`, `passthru_agent_in_flight{tenant,agent}`: gauges read
//!   from the gateway at scrape time.
//! - Reported by the agents over their stream (`AgentToCloud::Stats`), labelled
//!   `{tenant,agent}`: `passthru_agent_validations_total{outcome,win32}`,
//!   `passthru_agent_errors_total{kind}` (the `directory_*` kinds are domain controller
//!   errors), `passthru_agent_directory_seconds_total` and
//!   `passthru_agent_directory_requests_total` (sum and count of directory round trips), and the
//!   gauge `passthru_agent_reported_in_flight`.
//!
//! - `passthru_tls_cert_expiry_timestamp_seconds`: the served TLS certificate's notAfter, Unix
//!   seconds (set at start and on every reload).
//! - `passthru_build_info{version,protocol}`: always 1; the binary's version and the agent
//!   protocol version it speaks.
//!
//! `tenant` is the tenant id (a GUID: stable, unlike a name), `agent` the agent id.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::AtomicU64;
use std::sync::{Mutex, MutexGuard};

use passthru_proto::wire::AgentStatsReport;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use uuid::Uuid;

/// Most distinct Win32 codes or error kinds one agent report may carry.
const MAX_REPORT_KEYS: usize = 64;
/// The content type of [`Metrics::render`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// One connected agent's load, as a gauge reads it.
#[derive(Debug, Clone, Copy)]
pub struct AgentLoad {
    pub agent_id: Uuid,
    pub in_flight: usize,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: String,
    protocol: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SignInLabels {
    tenant: String,
    result: String,
    aadsts: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TenantLabels {
    tenant: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AgentLabels {
    tenant: String,
    agent: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ValidationLabels {
    tenant: String,
    agent: String,
    outcome: String,
    win32: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DcLabels {
    tenant: String,
    agent: String,
    forest: String,
    dc: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    tenant: String,
    agent: String,
    kind: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SyncLabels {
    tenant: String,
    forest: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SyncObjectLabels {
    tenant: String,
    forest: String,
    kind: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SyncRunLabels {
    tenant: String,
    forest: String,
    result: String,
}

type RttFamily = Family<TenantLabels, Histogram, fn() -> Histogram>;

fn rtt_histogram() -> Histogram {
    // 1 ms to ~33 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

/// Every metric of the cloud.
pub struct Metrics {
    registry: Registry,
    signins: Family<SignInLabels, Counter>,
    round_trip: RttFamily,
    agents_connected: Family<TenantLabels, Gauge>,
    in_flight: Family<AgentLabels, Gauge>,
    agent_validations: Family<ValidationLabels, Counter>,
    agent_errors: Family<ErrorLabels, Counter>,
    agent_directory_seconds: Family<AgentLabels, Counter<f64, AtomicU64>>,
    agent_directory_requests: Family<AgentLabels, Counter>,
    agent_in_flight: Family<AgentLabels, Gauge>,
    dc_up: Family<DcLabels, Gauge>,
    sync_objects: Family<SyncObjectLabels, Counter>,
    sync_runs: Family<SyncRunLabels, Counter>,
    sync_last_success: Family<SyncLabels, Gauge>,
    agent_cert_expiry: Family<AgentLabels, Gauge>,
    tls_cert_expiry: Gauge,
    /// The last report of each agent, to turn cumulative reports into increments (a report
    /// below the last one means the agent restarted: its counters began again at zero).
    last_reports: Mutex<HashMap<Uuid, AgentStatsReport>>,
    /// Tenants seen since the start (sign-ins, agents): their `agents_connected` reads 0
    /// rather than vanishing when their last agent goes, so "no agent" can be alerted on.
    tenants: Mutex<HashSet<Uuid>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let signins = Family::<SignInLabels, Counter>::default();
        registry.register(
            "passthru_signins",
            "Sign-ins by tenant, result and AADSTS code",
            signins.clone(),
        );
        let round_trip: RttFamily = Family::new_with_constructor(rtt_histogram);
        registry.register(
            "passthru_pass_through_round_trip_seconds",
            "Round trip of pass-through requests measured by the cloud, by tenant",
            round_trip.clone(),
        );
        let agents_connected = Family::<TenantLabels, Gauge>::default();
        registry.register(
            "passthru_agents_connected",
            "Agent connections open, by tenant",
            agents_connected.clone(),
        );
        let in_flight = Family::<AgentLabels, Gauge>::default();
        registry.register(
            "passthru_agent_in_flight",
            "Requests sent to the agent and not yet answered (cloud view)",
            in_flight.clone(),
        );
        let agent_validations = Family::<ValidationLabels, Counter>::default();
        registry.register(
            "passthru_agent_validations",
            "Validations by outcome and Win32 code, reported by the agent",
            agent_validations.clone(),
        );
        let agent_errors = Family::<ErrorLabels, Counter>::default();
        registry.register(
            "passthru_agent_errors",
            "Validations that ended in an error, by kind (directory_* are domain controller errors), reported by the agent",
            agent_errors.clone(),
        );
        let agent_directory_seconds = Family::<AgentLabels, Counter<f64, AtomicU64>>::default();
        registry.register(
            "passthru_agent_directory_seconds",
            "Time the agent spent asking the directory (LDAPS), summed, reported by the agent",
            agent_directory_seconds.clone(),
        );
        let agent_directory_requests = Family::<AgentLabels, Counter>::default();
        registry.register(
            "passthru_agent_directory_requests",
            "Directory round trips, reported by the agent",
            agent_directory_requests.clone(),
        );
        let agent_in_flight = Family::<AgentLabels, Gauge>::default();
        registry.register(
            "passthru_agent_reported_in_flight",
            "Validations running in the agent at its last report",
            agent_in_flight.clone(),
        );
        let dc_up = Family::<DcLabels, Gauge>::default();
        registry.register(
            "passthru_agent_domain_controller_up",
            "1 while the agent uses the domain controller, 0 while it skips it and probes it in the background, reported by the agent",
            dc_up.clone(),
        );
        let sync_objects = Family::<SyncObjectLabels, Counter>::default();
        registry.register(
            "passthru_sync_objects",
            "Objects directory sync wrote to the store, by forest and kind (user, group, deleted)",
            sync_objects.clone(),
        );
        let sync_runs = Family::<SyncRunLabels, Counter>::default();
        registry.register(
            "passthru_sync_runs",
            "Directory sync runs that ended, by forest and result (success, failure)",
            sync_runs.clone(),
        );
        let sync_last_success = Family::<SyncLabels, Gauge>::default();
        registry.register(
            "passthru_sync_last_success_timestamp_seconds",
            "When a forest's last sync run succeeded, Unix seconds (alert when it is older than a few intervals)",
            sync_last_success.clone(),
        );
        let agent_cert_expiry = Family::<AgentLabels, Gauge>::default();
        registry.register(
            "passthru_agent_cert_expiry_timestamp_seconds",
            "When the client certificate of a connected agent expires, Unix seconds (agents renew it with a third of its lifetime left; alert when one is within 30 days)",
            agent_cert_expiry.clone(),
        );
        let tls_cert_expiry = Gauge::default();
        registry.register(
            "passthru_tls_cert_expiry_timestamp_seconds",
            "When the TLS certificate served now expires (its notAfter), Unix seconds (alert when it is less than a few weeks away)",
            tls_cert_expiry.clone(),
        );
        let build = Family::<BuildLabels, Gauge>::default();
        registry.register(
            "passthru_build_info",
            "1, labelled with this binary's version and the agent protocol version it speaks",
            build.clone(),
        );
        build
            .get_or_create(&BuildLabels {
                version: env!("CARGO_PKG_VERSION").to_string(),
                protocol: passthru_proto::wire::PROTOCOL_VERSION.to_string(),
            })
            .set(1);
        Metrics {
            registry,
            agent_cert_expiry,
            tls_cert_expiry,
            dc_up,
            sync_objects,
            sync_runs,
            sync_last_success,
            signins,
            round_trip,
            agents_connected,
            in_flight,
            agent_validations,
            agent_errors,
            agent_directory_seconds,
            agent_directory_requests,
            agent_in_flight,
            last_reports: Mutex::new(HashMap::new()),
            tenants: Mutex::new(HashSet::new()),
        }
    }
}

fn dc_labels(tenant: &str, agent: &str, dc: &passthru_proto::wire::DcStatus) -> DcLabels {
    DcLabels {
        tenant: tenant.to_string(),
        agent: agent.to_string(),
        forest: dc.forest.clone(),
        dc: dc.url.clone(),
    }
}

fn delta(new: u64, old: u64) -> u64 {
    if new >= old {
        new - old
    } else {
        new
    }
}

impl Metrics {
    fn reports(&self) -> MutexGuard<'_, HashMap<Uuid, AgentStatsReport>> {
        self.last_reports.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn seen(&self, tenant_id: Uuid) {
        self.tenants
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(tenant_id);
    }

    /// Counts one sign-in log entry: `aadsts` is `None` for a success.
    pub fn sign_in(&self, tenant_id: Uuid, result: &str, aadsts: Option<u32>) {
        self.seen(tenant_id);
        self.signins
            .get_or_create(&SignInLabels {
                tenant: tenant_id.to_string(),
                result: result.to_string(),
                aadsts: aadsts.map(|c| c.to_string()).unwrap_or_default(),
            })
            .inc();
    }

    /// Counts objects a sync batch wrote.
    pub fn sync_applied(&self, tenant_id: Uuid, forest: &str, kind: &str, n: u64) {
        if n == 0 {
            return;
        }
        self.sync_objects
            .get_or_create(&SyncObjectLabels {
                tenant: tenant_id.to_string(),
                forest: forest.to_string(),
                kind: kind.to_string(),
            })
            .inc_by(n);
    }

    /// Counts a sync run's end; a success also sets the forest's last success time.
    pub fn sync_run(&self, tenant_id: Uuid, forest: &str, success: bool, now: i64) {
        self.sync_runs
            .get_or_create(&SyncRunLabels {
                tenant: tenant_id.to_string(),
                forest: forest.to_string(),
                result: if success { "success" } else { "failure" }.to_string(),
            })
            .inc();
        if success {
            self.sync_last_success
                .get_or_create(&SyncLabels {
                    tenant: tenant_id.to_string(),
                    forest: forest.to_string(),
                })
                .set(now);
        }
    }

    /// Sets the served TLS certificate's notAfter (Unix seconds).
    pub fn tls_cert_expiry(&self, not_after: i64) {
        self.tls_cert_expiry.set(not_after);
    }

    /// Records the round trip of one answered pass-through request.
    pub fn round_trip(&self, tenant_id: Uuid, seconds: f64) {
        self.round_trip
            .get_or_create(&TenantLabels {
                tenant: tenant_id.to_string(),
            })
            .observe(seconds);
    }

    /// Takes an agent's cumulative report. A report with label values that are not a Win32
    /// code or an error name, or with more of them than any real agent has, is dropped: label
    /// values become time series, and an agent must not be able to grow the cloud's memory.
    pub fn agent_report(&self, tenant_id: Uuid, agent_id: Uuid, report: &AgentStatsReport) {
        let sane_keys = report.denied.len() <= MAX_REPORT_KEYS
            && report.errors.len() <= MAX_REPORT_KEYS
            && report
                .denied
                .keys()
                .all(|k| k.len() <= 10 && k.parse::<u32>().is_ok())
            && report.errors.keys().all(|k| {
                !k.is_empty()
                    && k.len() <= 40
                    && k.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
            });
        if !sane_keys || !report.directory_seconds_sum.is_finite() {
            tracing::warn!(agent = %agent_id, "agent statistics report with implausible labels ignored");
            return;
        }
        self.seen(tenant_id);
        let old = self
            .reports()
            .insert(agent_id, report.clone())
            .unwrap_or_default();
        // A report whose total went down comes from a restarted agent: count it all.
        let restarted = report.success < old.success
            || report.directory_count < old.directory_count
            || report
                .denied
                .iter()
                .any(|(k, v)| *v < old.denied.get(k).copied().unwrap_or(0))
            || report
                .errors
                .iter()
                .any(|(k, v)| *v < old.errors.get(k).copied().unwrap_or(0));
        let old = if restarted {
            AgentStatsReport::default()
        } else {
            old
        };
        let tenant = tenant_id.to_string();
        let agent = agent_id.to_string();
        let v = |outcome: &str, win32: String| ValidationLabels {
            tenant: tenant.clone(),
            agent: agent.clone(),
            outcome: outcome.to_string(),
            win32,
        };
        self.agent_validations
            .get_or_create(&v("success", String::new()))
            .inc_by(delta(report.success, old.success));
        for (code, n) in &report.denied {
            let d = delta(*n, old.denied.get(code).copied().unwrap_or(0));
            self.agent_validations
                .get_or_create(&v("denied", code.clone()))
                .inc_by(d);
        }
        for (kind, n) in &report.errors {
            let d = delta(*n, old.errors.get(kind).copied().unwrap_or(0));
            self.agent_validations
                .get_or_create(&v("error", String::new()))
                .inc_by(d);
            self.agent_errors
                .get_or_create(&ErrorLabels {
                    tenant: tenant.clone(),
                    agent: agent.clone(),
                    kind: kind.clone(),
                })
                .inc_by(d);
        }
        let a = AgentLabels {
            tenant: tenant.clone(),
            agent: agent.clone(),
        };
        let secs = report.directory_seconds_sum - old.directory_seconds_sum;
        if secs > 0.0 {
            self.agent_directory_seconds.get_or_create(&a).inc_by(secs);
        }
        self.agent_directory_requests
            .get_or_create(&a)
            .inc_by(delta(report.directory_count, old.directory_count));
        self.agent_in_flight
            .get_or_create(&a)
            .set(i64::try_from(report.in_flight).unwrap_or(i64::MAX));
        for gone in old.domain_controllers.iter().filter(|o| {
            !report
                .domain_controllers
                .iter()
                .any(|n| n.url == o.url && n.forest == o.forest)
        }) {
            self.dc_up.remove(&dc_labels(&tenant, &agent, gone));
        }
        for dc in &report.domain_controllers {
            self.dc_up
                .get_or_create(&dc_labels(&tenant, &agent, dc))
                .set(i64::from(dc.up));
        }
    }

    /// The domain controllers in the agent's last report (it is connected or was until
    /// this process last heard from it).
    pub fn domain_controllers(&self, agent_id: Uuid) -> Vec<passthru_proto::wire::DcStatus> {
        self.reports()
            .get(&agent_id)
            .map(|r| r.domain_controllers.clone())
            .unwrap_or_default()
    }

    /// An agent's connection ended: its reported gauges go (its counters stay).
    /// Records when the certificate of a connected agent expires (at each connection: a
    /// renewed certificate comes with a new connection).
    pub fn agent_cert_expiry(&self, tenant_id: Uuid, agent_id: Uuid, not_after: i64) {
        self.agent_cert_expiry
            .get_or_create(&AgentLabels {
                tenant: tenant_id.to_string(),
                agent: agent_id.to_string(),
            })
            .set(not_after);
    }

    pub fn agent_gone(&self, tenant_id: Uuid, agent_id: Uuid) {
        let (tenant, agent) = (tenant_id.to_string(), agent_id.to_string());
        self.agent_cert_expiry.remove(&AgentLabels {
            tenant: tenant.clone(),
            agent: agent.clone(),
        });
        for dc in self.domain_controllers(agent_id) {
            self.dc_up.remove(&dc_labels(&tenant, &agent, &dc));
        }
        self.agent_in_flight.remove(&AgentLabels { tenant, agent });
    }

    /// The metrics in OpenMetrics text, with the gauges of the agents connected now (per
    /// tenant, as the gateway reads them at scrape time).
    pub fn render(&self, connected: &[(Uuid, Vec<AgentLoad>)]) -> String {
        self.in_flight.clear();
        for (tenant_id, _) in connected {
            self.seen(*tenant_id);
        }
        let tenants: Vec<Uuid> = self
            .tenants
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .copied()
            .collect();
        for tenant_id in tenants {
            self.agents_connected
                .get_or_create(&TenantLabels {
                    tenant: tenant_id.to_string(),
                })
                .set(0);
        }
        for (tenant_id, agents) in connected {
            let tenant_id = *tenant_id;
            let tenant = tenant_id.to_string();
            self.agents_connected
                .get_or_create(&TenantLabels {
                    tenant: tenant.clone(),
                })
                .set(i64::try_from(agents.len()).unwrap_or(i64::MAX));
            for a in agents {
                self.in_flight
                    .get_or_create(&AgentLabels {
                        tenant: tenant.clone(),
                        agent: a.agent_id.to_string(),
                    })
                    .set(i64::try_from(a.in_flight).unwrap_or(i64::MAX));
            }
        }
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::error!(error = %e, "encoding the metrics failed");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn implausible_agent_reports_are_ignored() {
        let m = Metrics::default();
        let (tid, aid) = (Uuid::new_v4(), Uuid::new_v4());
        let mut r = AgentStatsReport::default();
        r.denied.insert("not-a-code".into(), 1);
        m.agent_report(tid, aid, &r);
        let mut many = AgentStatsReport::default();
        for i in 0..1000 {
            many.errors
                .insert(format!("kind_{}", "x".repeat(i % 30)), 1);
            many.denied.insert(i.to_string(), 1);
        }
        m.agent_report(tid, aid, &many);
        let text = m.render(&[]);
        assert!(!text.contains("not-a-code"), "{text}");
        assert!(!text.contains("win32=\"999\""), "{text}");
    }

    #[test]
    fn renders_the_tls_certificate_expiry() {
        let m = Metrics::default();
        m.tls_cert_expiry(1_900_000_000);
        m.tls_cert_expiry(1_950_000_000);
        let text = m.render(&[]);
        assert!(
            text.contains("# TYPE passthru_tls_cert_expiry_timestamp_seconds gauge\n"),
            "{text}"
        );
        assert!(
            text.contains("\npassthru_tls_cert_expiry_timestamp_seconds 1950000000\n"),
            "{text}"
        );
    }

    #[test]
    fn renders_sync_series() {
        let m = Metrics::default();
        let tid = Uuid::new_v4();
        m.sync_applied(tid, "corp.test", "user", 3);
        m.sync_applied(tid, "corp.test", "group", 0);
        m.sync_run(tid, "corp.test", true, 1_700_000_000);
        m.sync_run(tid, "corp.test", false, 1_700_000_100);
        let text = m.render(&[]);
        for line in [
            format!(
                r#"passthru_sync_objects_total{{tenant="{tid}",forest="corp.test",kind="user"}} 3"#
            ),
            format!(
                r#"passthru_sync_runs_total{{tenant="{tid}",forest="corp.test",result="failure"}} 1"#
            ),
            format!(
                r#"passthru_sync_last_success_timestamp_seconds{{tenant="{tid}",forest="corp.test"}} 1700000000"#
            ),
        ] {
            assert!(text.contains(&line), "{line} in {text}");
        }
        assert!(
            !text.contains("kind=\"group\""),
            "nothing written, no series: {text}"
        );
    }

    #[test]
    fn renders_agent_certificate_expiry_while_connected() {
        let m = Metrics::default();
        let (tid, aid) = (Uuid::new_v4(), Uuid::new_v4());
        m.agent_cert_expiry(tid, aid, 1_900_000_000);
        let line = format!(
            r#"passthru_agent_cert_expiry_timestamp_seconds{{tenant="{tid}",agent="{aid}"}} 1900000000"#
        );
        let text = m.render(&[]);
        assert!(text.contains(&line), "{text}");
        // Renewed: the new connection sets the new expiry.
        m.agent_cert_expiry(tid, aid, 1_930_000_000);
        assert!(m
            .render(&[])
            .contains(&line.replace("1900000000", "1930000000")));
        m.agent_gone(tid, aid);
        assert!(!m
            .render(&[])
            .contains("passthru_agent_cert_expiry_timestamp_seconds{"));
    }

    #[test]
    fn renders_counters_and_agent_reports() {
        let m = Metrics::default();
        let tid = Uuid::new_v4();
        let aid = Uuid::new_v4();
        m.sign_in(tid, "failure", Some(50126));
        m.sign_in(tid, "success", None);
        m.round_trip(tid, 0.004);
        let mut r = AgentStatsReport {
            success: 1,
            ..Default::default()
        };
        r.denied.insert("1326".into(), 2);
        m.agent_report(tid, aid, &r);
        r.denied.insert("1326".into(), 5);
        m.agent_report(tid, aid, &r);
        // The agent restarted: its counters began again.
        let mut r2 = AgentStatsReport::default();
        r2.denied.insert("1326".into(), 1);
        m.agent_report(tid, aid, &r2);
        let text = m.render(&[]);
        assert!(
            text.contains(&format!(
                r#"passthru_signins_total{{tenant="{tid}",result="failure",aadsts="50126"}} 1"#
            )),
            "{text}"
        );
        assert!(
            text.contains(&format!(
                r#"passthru_pass_through_round_trip_seconds_count{{tenant="{tid}"}} 1"#
            )),
            "{text}"
        );
        assert!(text.contains(&format!(
            r#"passthru_agent_validations_total{{tenant="{tid}",agent="{aid}",outcome="denied",win32="1326"}} 6"#
        )), "{text}");
        assert!(
            text.contains(&format!(r#"passthru_agents_connected{{tenant="{tid}"}} 0"#)),
            "a tenant without agents reads 0: {text}"
        );
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
