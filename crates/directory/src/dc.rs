//! One domain controller: its health, its pool of idle LDAPS connections, one validation on
//! it and one probe of it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use ldap3::{Ldap, LdapConnAsync, LdapConnSettings, LdapError, Scope, SearchOptions};
use passthru_proto::Win32;
use url::Url;

use crate::entry::{dns_name_of, equality_filter, Entry, LDAP_USER_ATTRS, USER_ATTRS};
use crate::health::{HealthState, ProbePolicy, Transition};
use crate::{DcHealth, DirectoryError, Timeouts, Verdict};

/// Idle connections kept per domain controller: as many as the agent's default
/// `max_concurrency` (64), so that a steady load of up to that many validations at once
/// re-binds pooled connections instead of opening (TCP + TLS) and dropping one for each
/// validation above the pool's size.
const MAX_IDLE: usize = 64;

/// LDAP result codes that matter here.
const RC_SUCCESS: u32 = 0;
const RC_SIZE_LIMIT_EXCEEDED: u32 = 4;
const RC_INVALID_CREDENTIALS: u32 = 49;
const RC_BUSY: u32 = 51;
const RC_UNAVAILABLE: u32 = 52;

/// Why a domain controller gave no verdict.
#[derive(Debug)]
pub(crate) enum DcFailure {
    /// It could not be used (connect, TLS, I/O, busy, timeout): try the next one.
    Down {
        /// Whether it was a timeout.
        timed_out: bool,
        /// What happened (never holds the password).
        detail: String,
    },
    /// It answered "busy" or "unavailable": skipped for this validation, but not marked down
    /// (it answered).
    Busy {
        /// What it said.
        detail: String,
    },
    /// It answered, but not with a verdict: final, no other DC is asked.
    Final(DirectoryError),
}

/// A failure on one connection.
enum ConnFailure {
    /// The connection is unusable (I/O error, closed, timeout).
    Transport { timed_out: bool, detail: String },
    /// The DC said it is busy or unavailable.
    Busy(String),
    /// The DC answered with something other than a verdict.
    Answer(DirectoryError),
}

fn transport(e: LdapError) -> ConnFailure {
    let timed_out = matches!(e, LdapError::Timeout { .. });
    ConnFailure::Transport {
        timed_out,
        detail: if timed_out {
            "timed out".to_string()
        } else {
            e.to_string()
        },
    }
}

/// One domain controller, its health and its idle connections.
#[derive(Debug)]
pub(crate) struct DomainController {
    /// The forest's name, for logs.
    forest: String,
    url: Url,
    idle: Mutex<Vec<Ldap>>,
    /// The domain's DN (defaultNamingContext), read once.
    naming_context: Mutex<Option<String>>,
    health: Mutex<HealthState>,
    policy: ProbePolicy,
    /// Whether a probe of it is under way.
    probing: AtomicBool,
}

impl DomainController {
    pub fn new(forest: &str, url: Url, policy: ProbePolicy) -> DomainController {
        DomainController {
            forest: forest.to_string(),
            url,
            idle: Mutex::new(Vec::new()),
            naming_context: Mutex::new(None),
            health: Mutex::new(HealthState::new(Instant::now())),
            policy,
            probing: AtomicBool::new(false),
        }
    }

    pub fn url(&self) -> &Url {
        &self.url
    }

    fn state(&self) -> MutexGuard<'_, HealthState> {
        self.health.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether it is up, as last seen.
    pub fn is_up(&self) -> bool {
        self.state().is_up()
    }

    /// Its health as a report.
    pub fn health(&self) -> DcHealth {
        let h = self.state();
        DcHealth {
            forest: self.forest.clone(),
            url: self.url.clone(),
            up: h.is_up(),
            since: h.since_wall(),
            consecutive_failures: h.consecutive_failures(),
            last_error: h.last_error().map(str::to_string),
        }
    }

    /// The order of a Down DC among Down DCs: fewest consecutive failures first, then the
    /// soonest probe.
    pub fn down_rank(&self) -> (u32, Instant) {
        let h = self.state();
        (h.consecutive_failures(), h.next_probe())
    }

    /// Whether a probe of it is under way.
    pub fn is_probing(&self) -> bool {
        self.probing.load(Ordering::SeqCst)
    }

    /// Whether it is down and its probe is due at `now`.
    pub fn probe_due(&self, now: Instant) -> bool {
        self.state().probe_due(now)
    }

    /// It answered: Up (logged when it was down).
    pub fn mark_up(&self) {
        let t = self.state().record_success(Instant::now());
        if let Some(Transition::CameBack { down_for }) = t {
            tracing::info!(
                forest = %self.forest,
                dc = %self.url,
                down_ms = down_for.as_millis() as u64,
                "domain controller up again"
            );
        }
    }

    /// A transport failure: Down at once (logged when it was up), its pool emptied.
    pub fn mark_down(&self, detail: &str) {
        let (t, next) = {
            let mut h = self.state();
            let t = h.record_failure(Instant::now(), detail, &self.policy);
            (t, h.next_probe())
        };
        self.clear();
        if t == Some(Transition::WentDown) {
            let probe_in = next.saturating_duration_since(Instant::now());
            tracing::warn!(
                forest = %self.forest,
                dc = %self.url,
                probe_in_ms = probe_in.as_millis() as u64,
                "domain controller down, skipped until a background probe reaches it: {detail}"
            );
        } else {
            tracing::debug!(forest = %self.forest, dc = %self.url, "domain controller still down: {detail}");
        }
    }

    /// Probes it once unless a probe is already under way: TCP, TLS and an anonymous read
    /// of the rootDSE, within the connect timeout. Success marks it up and pools the
    /// connection; failure keeps it down (the next probe later).
    pub async fn probe(&self, tls: &Arc<rustls::ClientConfig>, timeouts: &Timeouts) {
        /// Clears the flag however the probe ends (also when its future is dropped).
        struct Probing<'a>(&'a AtomicBool);
        impl Drop for Probing<'_> {
            fn drop(&mut self) {
                self.0.store(false, Ordering::SeqCst);
            }
        }
        if self.probing.swap(true, Ordering::SeqCst) {
            return;
        }
        let _probing = Probing(&self.probing);
        let result = tokio::time::timeout(timeouts.connect, self.probe_once(tls, timeouts)).await;
        match result {
            Ok(Ok(ldap)) => {
                self.mark_up();
                self.put_back(ldap);
            }
            Ok(Err(detail)) => self.mark_down(&detail),
            Err(_) => self.mark_down(&format!(
                "probe: no answer within {} ms",
                timeouts.connect.as_millis()
            )),
        }
    }

    async fn probe_once(
        &self,
        tls: &Arc<rustls::ClientConfig>,
        timeouts: &Timeouts,
    ) -> Result<Ldap, String> {
        let mut ldap = match self.connect(tls, timeouts).await {
            Ok(l) => l,
            Err(DcFailure::Down { detail, .. } | DcFailure::Busy { detail }) => return Err(detail),
            Err(DcFailure::Final(e)) => return Err(e.to_string()),
        };
        let probe_timeouts = Timeouts {
            connect: timeouts.connect,
            operation: timeouts.connect,
        };
        match self
            .search(
                &mut ldap,
                "",
                Scope::Base,
                "(objectClass=*)",
                &["defaultNamingContext"],
                &probe_timeouts,
            )
            .await
        {
            Ok(entries) => {
                if let Some(nc) = entries.first().and_then(|e| e.text("defaultNamingContext")) {
                    *self
                        .naming_context
                        .lock()
                        .unwrap_or_else(|p| p.into_inner()) = Some(nc);
                }
                Ok(ldap)
            }
            Err(ConnFailure::Transport { detail, .. }) => Err(format!("probe: {detail}")),
            Err(ConnFailure::Busy(detail)) => Err(format!("probe: {detail}")),
            // It answered, with something odd: it is up.
            Err(ConnFailure::Answer(_)) => Ok(ldap),
        }
    }

    fn pool(&self) -> MutexGuard<'_, Vec<Ldap>> {
        // A panic while holding the lock cannot leave the Vec inconsistent.
        self.idle.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn idle(&self) -> usize {
        self.pool().len()
    }

    /// An idle connection whose driver still runs.
    fn take_idle(&self) -> Option<Ldap> {
        let mut pool = self.pool();
        while let Some(mut ldap) = pool.pop() {
            if !ldap.is_closed() {
                return Some(ldap);
            }
        }
        None
    }

    fn put_back(&self, ldap: Ldap) {
        let mut pool = self.pool();
        if pool.len() < MAX_IDLE {
            pool.push(ldap);
        }
    }

    pub fn clear(&self) {
        self.pool().clear();
    }

    pub(crate) async fn connect(
        &self,
        tls: &Arc<rustls::ClientConfig>,
        timeouts: &Timeouts,
    ) -> Result<Ldap, DcFailure> {
        let settings = LdapConnSettings::new()
            .set_conn_timeout(timeouts.connect)
            .set_config(tls.clone());
        match LdapConnAsync::from_url_with_settings(settings, &self.url).await {
            Ok((conn, ldap)) => {
                let url = self.url.clone();
                tokio::spawn(async move {
                    if let Err(e) = conn.drive().await {
                        tracing::debug!(dc = %url, "LDAP connection ended: {e}");
                    }
                });
                Ok(ldap)
            }
            Err(LdapError::Timeout { .. }) => Err(DcFailure::Down {
                timed_out: true,
                detail: format!("no connection within {} ms", timeouts.connect.as_millis()),
            }),
            Err(e) => Err(DcFailure::Down {
                timed_out: false,
                detail: format!("cannot connect: {e}"),
            }),
        }
    }

    /// Validates on a pooled connection when one is idle, else on a new one, and keeps its
    /// health: an answer marks it up, a transport failure down.
    ///
    /// A pooled connection that fails on reuse (not by a timeout) is dropped with the rest
    /// of the pool (a restarted DC has killed them all) and the validation is retried once
    /// on a new connection before the DC counts as down.
    pub async fn validate(
        &self,
        upn: &str,
        password: &str,
        template: Option<&str>,
        tls: &Arc<rustls::ClientConfig>,
        timeouts: &Timeouts,
    ) -> Result<Verdict, DcFailure> {
        let result = self
            .validate_pooled(upn, password, template, tls, timeouts)
            .await;
        match &result {
            Ok(_) | Err(DcFailure::Final(_)) | Err(DcFailure::Busy { .. }) => self.mark_up(),
            Err(DcFailure::Down { detail, .. }) => self.mark_down(detail),
        }
        result
    }

    async fn validate_pooled(
        &self,
        upn: &str,
        password: &str,
        template: Option<&str>,
        tls: &Arc<rustls::ClientConfig>,
        timeouts: &Timeouts,
    ) -> Result<Verdict, DcFailure> {
        if let Some(mut ldap) = self.take_idle() {
            match self
                .validate_on(&mut ldap, upn, password, template, timeouts)
                .await
            {
                Ok(verdict) => {
                    self.put_back(ldap);
                    return Ok(verdict);
                }
                Err(ConnFailure::Answer(e)) => return Err(DcFailure::Final(e)),
                Err(ConnFailure::Busy(detail)) => return Err(DcFailure::Busy { detail }),
                Err(ConnFailure::Transport {
                    timed_out: true,
                    detail,
                }) => {
                    // A DC that stopped answering: its other connections are no better.
                    return Err(DcFailure::Down {
                        timed_out: true,
                        detail,
                    });
                }
                Err(ConnFailure::Transport { detail, .. }) => {
                    // A stale connection (the DC restarted, an idle timeout): the others
                    // are likely as stale; retry once on a new one.
                    tracing::debug!(dc = %self.url, "dropping the pooled connections: {detail}");
                    self.clear();
                }
            }
        }
        let mut ldap = self.connect(tls, timeouts).await?;
        match self
            .validate_on(&mut ldap, upn, password, template, timeouts)
            .await
        {
            Ok(verdict) => {
                self.put_back(ldap);
                Ok(verdict)
            }
            Err(ConnFailure::Answer(e)) => Err(DcFailure::Final(e)),
            Err(ConnFailure::Busy(detail)) => Err(DcFailure::Busy { detail }),
            Err(ConnFailure::Transport { timed_out, detail }) => {
                Err(DcFailure::Down { timed_out, detail })
            }
        }
    }

    /// Bind, and on success read the user, on one connection. With a bind DN template (a
    /// plain LDAP directory) the bind is as the template's DN and the user is the bound entry.
    async fn validate_on(
        &self,
        ldap: &mut Ldap,
        upn: &str,
        password: &str,
        template: Option<&str>,
        timeouts: &Timeouts,
    ) -> Result<Verdict, ConnFailure> {
        let bind_dn = template.map(|t| crate::bind_dn_from_template(t, upn));
        let res = ldap
            .with_timeout(timeouts.operation)
            .simple_bind(bind_dn.as_deref().unwrap_or(upn), password)
            .await
            .map_err(transport)?;
        match res.rc {
            RC_SUCCESS => {}
            RC_INVALID_CREDENTIALS => {
                return match Win32::from_ad_diagnostic(&res.text) {
                    Some(w) => Ok(Verdict::Denied(w)),
                    // A plain LDAP directory names no reason: wrong password or no such user.
                    None if bind_dn.is_some() => Ok(Verdict::Denied(Win32::LogonFailure)),
                    None => Err(ConnFailure::Answer(DirectoryError::Unexpected(format!(
                        "bind refused with an unknown reason: {}",
                        res.text
                    )))),
                };
            }
            RC_BUSY | RC_UNAVAILABLE => {
                return Err(ConnFailure::Busy(format!(
                    "the DC is busy or unavailable ({}): {}",
                    res.rc, res.text
                )))
            }
            rc => {
                return Err(ConnFailure::Answer(DirectoryError::Unexpected(format!(
                    "bind failed with LDAP result {rc}: {}",
                    res.text
                ))))
            }
        }
        if let Some(dn) = bind_dn {
            return self.read_bound_entry(ldap, &dn, upn, timeouts).await;
        }
        let base = self.naming_context(ldap, timeouts).await?;
        let user = self.find_user(ldap, &base, upn, timeouts).await?;
        Ok(Verdict::Accepted(user))
    }

    /// A plain LDAP directory: the entry `dn` that just bound, as the user.
    async fn read_bound_entry(
        &self,
        ldap: &mut Ldap,
        dn: &str,
        upn: &str,
        timeouts: &Timeouts,
    ) -> Result<Verdict, ConnFailure> {
        let entries = self
            .search(
                ldap,
                dn,
                Scope::Base,
                "(objectClass=*)",
                &LDAP_USER_ATTRS,
                timeouts,
            )
            .await?;
        let entry = entries.first().ok_or_else(|| {
            ConnFailure::Answer(DirectoryError::Unexpected(format!(
                "the bind as {dn} succeeded but the entry is not readable"
            )))
        })?;
        entry.ldap_user(upn).map(Verdict::Accepted).ok_or_else(|| {
            ConnFailure::Answer(DirectoryError::Unexpected(format!(
                "{dn} has no readable entryUUID"
            )))
        })
    }

    async fn search(
        &self,
        ldap: &mut Ldap,
        base: &str,
        scope: Scope,
        filter: &str,
        attrs: &[&str],
        timeouts: &Timeouts,
    ) -> Result<Vec<Entry>, ConnFailure> {
        let res = ldap
            .with_timeout(timeouts.operation)
            .with_search_options(SearchOptions::new().sizelimit(2))
            .search(base, scope, filter, attrs.to_vec())
            .await
            .map_err(transport)?;
        let (entries, result) = (res.0, res.1);
        if result.rc != RC_SUCCESS && result.rc != RC_SIZE_LIMIT_EXCEEDED {
            return Err(ConnFailure::Answer(DirectoryError::Unexpected(format!(
                "search {filter} under {base:?} failed with LDAP result {}: {}",
                result.rc, result.text
            ))));
        }
        entries
            .into_iter()
            .map(|e| {
                Entry::parse(e).ok_or_else(|| {
                    ConnFailure::Answer(DirectoryError::Unexpected(
                        "malformed search result entry".to_string(),
                    ))
                })
            })
            .collect()
    }

    /// The domain's DN, from the rootDSE (read once per DC).
    async fn naming_context(
        &self,
        ldap: &mut Ldap,
        timeouts: &Timeouts,
    ) -> Result<String, ConnFailure> {
        let cached = self
            .naming_context
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if let Some(nc) = cached {
            return Ok(nc);
        }
        let entries = self
            .search(
                ldap,
                "",
                Scope::Base,
                "(objectClass=*)",
                &["defaultNamingContext"],
                timeouts,
            )
            .await?;
        let nc = entries
            .first()
            .and_then(|e| e.text("defaultNamingContext"))
            .ok_or_else(|| {
                ConnFailure::Answer(DirectoryError::Unexpected(
                    "the rootDSE has no defaultNamingContext".to_string(),
                ))
            })?;
        *self
            .naming_context
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(nc.clone());
        Ok(nc)
    }

    /// The user who just bound: by userPrincipalName, or, for an implicit UPN
    /// (sAMAccountName@domain DNS name), by sAMAccountName.
    async fn find_user(
        &self,
        ldap: &mut Ldap,
        base: &str,
        upn: &str,
        timeouts: &Timeouts,
    ) -> Result<passthru_proto::wire::DirectoryUser, ConnFailure> {
        let unexpected = |m: String| ConnFailure::Answer(DirectoryError::Unexpected(m));
        let by_upn = equality_filter("userPrincipalName", upn);
        let mut entries = self
            .search(ldap, base, Scope::Subtree, &by_upn, &USER_ATTRS, timeouts)
            .await?;
        if entries.is_empty() {
            if let Some((sam, suffix)) = upn.rsplit_once('@') {
                if suffix.eq_ignore_ascii_case(&dns_name_of(base)) {
                    let by_sam = format!(
                        "(&(objectCategory=person)(objectClass=user){})",
                        equality_filter("sAMAccountName", sam)
                    );
                    entries = self
                        .search(ldap, base, Scope::Subtree, &by_sam, &USER_ATTRS, timeouts)
                        .await?;
                }
            }
        }
        match entries.as_slice() {
            [entry] => entry
                .user(upn)
                .ok_or_else(|| unexpected(format!("{} has no valid objectGUID", entry.dn))),
            [] => Err(unexpected(format!(
                "the bind of {upn} succeeded but no user with that name is visible under {base}"
            ))),
            _ => Err(unexpected(format!("more than one user is named {upn}"))),
        }
    }
}
