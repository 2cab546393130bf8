//! Steady sign-in load for the fault tests: N clients doing password grants at a steady rate,
//! each attempt recorded (when it started, how long it took, what came back), and a
//! [`Report`] that summarises them ("attempted, succeeded, failed by code, worst latency,
//! p50/p99") and checks them: nothing lost, only allowed codes, none past the deadline.
//!
//! A credential says what a served sign-in gives: a token for a right password, AADSTS50126
//! for a wrong one. An attempt is *as expected* when it got exactly that; anything else
//! (80001, 80002, a transport error, another code) is *unexpected*, and a case decides which
//! unexpected outcomes it tolerates, and when.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::MissedTickBehavior;

use crate::http::SignInClient;

/// What a served sign-in of a credential gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// Tokens (the right password of a working account).
    Success,
    /// An error answer with this AADSTS code (50126 for a wrong password).
    Code(u64),
}

/// A user name and password to sign in with, and what a served sign-in gives.
#[derive(Clone)]
pub struct Credential {
    pub username: String,
    pub password: String,
    pub expect: Expect,
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credential")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field("expect", &self.expect)
            .finish()
    }
}

impl Credential {
    /// The right password: tokens expected.
    pub fn right(username: &str, password: &str) -> Credential {
        Credential {
            username: username.to_string(),
            password: password.to_string(),
            expect: Expect::Success,
        }
    }

    /// A wrong password: AADSTS50126 expected.
    pub fn wrong(username: &str, password: &str) -> Credential {
        Credential {
            username: username.to_string(),
            password: password.to_string(),
            expect: Expect::Code(50126),
        }
    }
}

/// What one attempt got.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Outcome {
    /// Tokens.
    Success,
    /// An error answer with an AADSTS code.
    Code(u64),
    /// An HTTP answer without tokens or an AADSTS code (the status).
    Http(u16),
    /// No HTTP answer: `connect`, `timeout`, `request`, `body`, `decode` or `other`.
    Transport(&'static str),
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Success => write!(f, "ok"),
            Outcome::Code(c) => write!(f, "{c}"),
            Outcome::Http(s) => write!(f, "http-{s}"),
            Outcome::Transport(kind) => write!(f, "transport-{kind}"),
        }
    }
}

impl Outcome {
    fn of(answer: anyhow::Result<crate::http::TokenAnswer>) -> Outcome {
        match answer {
            Ok(a) if a.ok() => Outcome::Success,
            Ok(a) => match a.code() {
                Some(c) => Outcome::Code(c),
                None => Outcome::Http(a.status),
            },
            Err(e) => Outcome::Transport(match e.downcast_ref::<reqwest::Error>() {
                Some(r) if r.is_connect() => "connect",
                Some(r) if r.is_timeout() => "timeout",
                Some(r) if r.is_decode() => "decode",
                Some(r) if r.is_body() => "body",
                Some(r) if r.is_request() => "request",
                _ => "other",
            }),
        }
    }

    /// Whether this is what a served sign-in with `expect` gives.
    pub fn is(&self, expect: Expect) -> bool {
        match (self, expect) {
            (Outcome::Success, Expect::Success) => true,
            (Outcome::Code(c), Expect::Code(e)) => *c == e,
            _ => false,
        }
    }

    /// Whether this is a transport error (no HTTP answer).
    pub fn is_transport(&self) -> bool {
        matches!(self, Outcome::Transport(_))
    }
}

/// One sign-in attempt.
#[derive(Debug, Clone)]
pub struct Attempt {
    /// Which client made it (0-based).
    pub client: usize,
    /// The index of its credential in [`LoadSpec::credentials`].
    pub credential: usize,
    /// When it started.
    pub started: Instant,
    /// How long until the answer (or the transport error).
    pub latency: Duration,
    pub outcome: Outcome,
    /// Whether the outcome is what a served sign-in of its credential gives.
    pub as_expected: bool,
}

impl Attempt {
    /// When the answer came.
    pub fn ended(&self) -> Instant {
        self.started + self.latency
    }
}

/// What to run.
#[derive(Debug, Clone)]
pub struct LoadSpec {
    /// The tenant to sign in to.
    pub tenant: String,
    /// Concurrent clients, each with its own HTTPS connections.
    pub clients: usize,
    /// Each client starts one attempt per period (the next one at once when an attempt took
    /// longer): the load is `clients / period` sign-ins a second at most.
    pub period: Duration,
    /// Used in turn, across clients.
    pub credentials: Vec<Credential>,
    /// Stops by itself after this long (else at [`Load::stop`]).
    pub duration: Option<Duration>,
}

/// A load running in the background (tasks of the current Tokio runtime).
pub struct Load {
    origin: Instant,
    stop: watch::Sender<bool>,
    attempts: Arc<Mutex<Vec<Attempt>>>,
    tasks: JoinSet<()>,
    credentials: Arc<Vec<Credential>>,
}

impl fmt::Debug for Load {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Load")
            .field("origin", &self.origin)
            .field("clients", &self.tasks.len())
            .finish_non_exhaustive()
    }
}

fn locked(attempts: &Mutex<Vec<Attempt>>) -> MutexGuard<'_, Vec<Attempt>> {
    attempts.lock().unwrap_or_else(|p| p.into_inner())
}

impl Load {
    /// Starts `spec.clients` clients, each made by `client()` (so each has its own
    /// connection pool), staggered evenly over one period.
    pub fn start(
        spec: LoadSpec,
        mut client: impl FnMut() -> anyhow::Result<SignInClient>,
    ) -> anyhow::Result<Load> {
        if spec.clients == 0 || spec.credentials.is_empty() || spec.period.is_zero() {
            bail!("a load needs clients, credentials and a non-zero period");
        }
        let origin = Instant::now();
        let (stop, stopped) = watch::channel(false);
        let attempts = Arc::new(Mutex::new(Vec::new()));
        let credentials = Arc::new(spec.credentials.clone());
        let next = Arc::new(AtomicUsize::new(0));
        let end = spec.duration.map(|d| origin + d);
        let mut tasks = JoinSet::new();
        for i in 0..spec.clients {
            let signin = client()?;
            let offset = spec.period.mul_f64(i as f64 / spec.clients as f64);
            let mut ticker = tokio::time::interval_at((origin + offset).into(), spec.period);
            ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
            let (attempts, credentials, next, tenant) = (
                Arc::clone(&attempts),
                Arc::clone(&credentials),
                Arc::clone(&next),
                spec.tenant.clone(),
            );
            let mut stopped = stopped.clone();
            tasks.spawn(async move {
                loop {
                    tokio::select! {
                        _ = ticker.tick() => {}
                        _ = stopped.wait_for(|s| *s) => return,
                    }
                    let now = Instant::now();
                    if end.is_some_and(|e| now >= e) || *stopped.borrow() {
                        return;
                    }
                    let k = next.fetch_add(1, Ordering::Relaxed) % credentials.len();
                    let Some(c) = credentials.get(k) else { return };
                    let answer = signin.password(&tenant, &c.username, &c.password).await;
                    let latency = now.elapsed();
                    let outcome = Outcome::of(answer);
                    let as_expected = outcome.is(c.expect);
                    locked(&attempts).push(Attempt {
                        client: i,
                        credential: k,
                        started: now,
                        latency,
                        outcome,
                        as_expected,
                    });
                }
            });
        }
        Ok(Load {
            origin,
            stop,
            attempts,
            tasks,
            credentials,
        })
    }

    /// When the load started.
    pub fn origin(&self) -> Instant {
        self.origin
    }

    /// The attempts finished so far.
    pub fn report(&self) -> Report {
        Report {
            origin: self.origin,
            attempts: locked(&self.attempts).clone(),
            credentials: Arc::clone(&self.credentials),
        }
    }

    /// Waits (at most `timeout`) until an attempt that ended after `after` satisfies `pred`,
    /// and returns it.
    pub async fn wait_for(
        &self,
        after: Instant,
        timeout: Duration,
        pred: impl Fn(&Attempt) -> bool,
    ) -> Option<Attempt> {
        let deadline = Instant::now() + timeout;
        loop {
            let found = locked(&self.attempts)
                .iter()
                .filter(|a| a.ended() >= after && pred(a))
                .min_by_key(|a| a.ended())
                .cloned();
            if found.is_some() {
                return found;
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Stops starting attempts, waits for those in flight, and returns every attempt.
    pub async fn stop(mut self) -> anyhow::Result<Report> {
        let _ = self.stop.send(true);
        while let Some(done) = self.tasks.join_next().await {
            done.map_err(|e| anyhow!("a load client failed: {e}"))?;
        }
        Ok(self.report())
    }
}

/// Recorded attempts.
#[derive(Debug, Clone)]
pub struct Report {
    origin: Instant,
    /// In the order they ended.
    pub attempts: Vec<Attempt>,
    credentials: Arc<Vec<Credential>>,
}

/// The figures of a [`Report`].
#[derive(Debug, Clone, Default)]
pub struct Summary {
    pub attempted: usize,
    pub succeeded: usize,
    /// Attempts that got what a served sign-in gives (tokens, or 50126 for a wrong password).
    pub as_expected: usize,
    /// Every outcome but success, by code (`50126`, `80002`, `transport-connect`, ...).
    pub failed_by_code: BTreeMap<String, usize>,
    /// Outcomes other than the expected one, by code.
    pub unexpected_by_code: BTreeMap<String, usize>,
    pub worst: Duration,
    pub p50: Duration,
    pub p99: Duration,
}

fn codes(map: &BTreeMap<String, usize>) -> String {
    if map.is_empty() {
        return "none".to_string();
    }
    map.iter()
        .map(|(k, v)| format!("{k}: {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "attempted {}, succeeded {}, as expected {}; failed by code {{{}}}; unexpected {{{}}}; \
             latency worst {} ms, p50 {} ms, p99 {} ms",
            self.attempted,
            self.succeeded,
            self.as_expected,
            codes(&self.failed_by_code),
            codes(&self.unexpected_by_code),
            self.worst.as_millis(),
            self.p50.as_millis(),
            self.p99.as_millis()
        )
    }
}

fn quantile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let idx = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted.get(idx).copied().unwrap_or_default()
}

impl Report {
    /// When the load started.
    pub fn origin(&self) -> Instant {
        self.origin
    }

    /// The attempts that started in `[from, to)`.
    pub fn started_between(&self, from: Instant, to: Instant) -> Report {
        self.filtered(|a| a.started >= from && a.started < to)
    }

    /// The attempts that started at or after `from`.
    pub fn started_after(&self, from: Instant) -> Report {
        self.filtered(|a| a.started >= from)
    }

    /// The attempts that started before `to`.
    pub fn started_before(&self, to: Instant) -> Report {
        self.filtered(|a| a.started < to)
    }

    /// The attempts `keep` keeps.
    pub fn filtered(&self, keep: impl Fn(&Attempt) -> bool) -> Report {
        Report {
            origin: self.origin,
            attempts: self.attempts.iter().filter(|a| keep(a)).cloned().collect(),
            credentials: Arc::clone(&self.credentials),
        }
    }

    /// The figures.
    pub fn summary(&self) -> Summary {
        let mut s = Summary {
            attempted: self.attempts.len(),
            ..Summary::default()
        };
        let mut latencies: Vec<Duration> = Vec::with_capacity(self.attempts.len());
        for a in &self.attempts {
            latencies.push(a.latency);
            if a.outcome == Outcome::Success {
                s.succeeded += 1;
            } else {
                *s.failed_by_code.entry(a.outcome.to_string()).or_default() += 1;
            }
            if a.as_expected {
                s.as_expected += 1;
            } else {
                *s.unexpected_by_code
                    .entry(a.outcome.to_string())
                    .or_default() += 1;
            }
        }
        latencies.sort();
        s.worst = latencies.last().copied().unwrap_or_default();
        s.p50 = quantile(&latencies, 0.5);
        s.p99 = quantile(&latencies, 0.99);
        s
    }

    /// Prints `LABEL: SUMMARY` to standard error (the test log) and returns the summary.
    pub fn print(&self, label: &str) -> Summary {
        let s = self.summary();
        eprintln!("{label}: {s}");
        s
    }

    /// A few attempts that fail a check, described for an error message.
    fn examples<'a>(&self, bad: impl Iterator<Item = &'a Attempt>) -> String {
        bad.take(5)
            .map(|a| {
                let user = self
                    .credentials
                    .get(a.credential)
                    .map(|c| c.username.as_str())
                    .unwrap_or("?");
                format!(
                    "[{user} at +{} ms: {} after {} ms]",
                    a.started.saturating_duration_since(self.origin).as_millis(),
                    a.outcome,
                    a.latency.as_millis()
                )
            })
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Every attempt got what a served sign-in gives, or one of the AADSTS codes in
    /// `allowed`. With `allowed` empty: nothing lost (no 80001, 80002, transport error or any
    /// other surprise).
    pub fn check_served(&self, allowed: &[u64]) -> anyhow::Result<()> {
        self.check_served_or(|o| matches!(o, Outcome::Code(c) if allowed.contains(c)))
    }

    /// Every attempt got what a served sign-in gives, or an outcome `allowed` accepts.
    pub fn check_served_or(&self, allowed: impl Fn(&Outcome) -> bool) -> anyhow::Result<()> {
        let bad: Vec<&Attempt> = self
            .attempts
            .iter()
            .filter(|a| !a.as_expected && !allowed(&a.outcome))
            .collect();
        if !bad.is_empty() {
            bail!(
                "{} of {} sign-ins were not served as expected ({}); e.g. {}",
                bad.len(),
                self.attempts.len(),
                self.summary(),
                self.examples(bad.iter().copied())
            );
        }
        Ok(())
    }

    /// No attempt took longer than `max`.
    pub fn check_latency(&self, max: Duration) -> anyhow::Result<()> {
        let slow: Vec<&Attempt> = self.attempts.iter().filter(|a| a.latency > max).collect();
        if !slow.is_empty() {
            bail!(
                "{} of {} sign-ins took longer than {} ms ({}); e.g. {}",
                slow.len(),
                self.attempts.len(),
                max.as_millis(),
                self.summary(),
                self.examples(slow.iter().copied())
            );
        }
        Ok(())
    }

    /// There were at least `n` attempts (a case that ran nothing proves nothing).
    pub fn check_attempted(&self, n: usize) -> anyhow::Result<()> {
        if self.attempts.len() < n {
            bail!(
                "only {} sign-ins were attempted, expected at least {n}",
                self.attempts.len()
            );
        }
        Ok(())
    }

    /// The first successful attempt that ended at or after `after`.
    pub fn first_success_after(&self, after: Instant) -> Option<&Attempt> {
        self.attempts
            .iter()
            .filter(|a| a.outcome == Outcome::Success && a.ended() >= after)
            .min_by_key(|a| a.ended())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attempt(origin: Instant, at_ms: u64, ms: u64, outcome: Outcome, expect: Expect) -> Attempt {
        Attempt {
            client: 0,
            credential: 0,
            started: origin + Duration::from_millis(at_ms),
            latency: Duration::from_millis(ms),
            as_expected: outcome.is(expect),
            outcome,
        }
    }

    #[test]
    fn summaries_and_checks() {
        let origin = Instant::now();
        let creds = Arc::new(vec![Credential::right("a@x", "p")]);
        let report = Report {
            origin,
            attempts: vec![
                attempt(origin, 0, 10, Outcome::Success, Expect::Success),
                attempt(origin, 5, 20, Outcome::Code(50126), Expect::Code(50126)),
                attempt(origin, 10, 3000, Outcome::Code(80002), Expect::Success),
                attempt(
                    origin,
                    20,
                    1,
                    Outcome::Transport("connect"),
                    Expect::Success,
                ),
            ],
            credentials: creds,
        };
        let s = report.summary();
        assert_eq!((s.attempted, s.succeeded, s.as_expected), (4, 1, 2));
        assert_eq!(s.failed_by_code.get("50126"), Some(&1));
        assert_eq!(s.unexpected_by_code.get("80002"), Some(&1));
        assert_eq!(s.unexpected_by_code.get("transport-connect"), Some(&1));
        assert_eq!(s.worst, Duration::from_millis(3000));
        assert!(report.check_served(&[]).is_err());
        assert!(report.check_served(&[80002]).is_err());
        assert!(report
            .check_served_or(|o| o.is_transport() || *o == Outcome::Code(80002))
            .is_ok());
        assert!(report.check_latency(Duration::from_millis(2999)).is_err());
        assert!(report.check_latency(Duration::from_millis(3000)).is_ok());
        let early = report.started_before(origin + Duration::from_millis(10));
        assert!(early.check_served(&[]).is_ok());
        assert_eq!(early.attempts.len(), 2);
        let first = report.first_success_after(origin);
        assert_eq!(first.map(|a| a.latency), Some(Duration::from_millis(10)));
        assert!(report
            .first_success_after(origin + Duration::from_millis(11))
            .is_none());
    }
}
