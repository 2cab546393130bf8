//! One domain controller: its pool of idle LDAPS connections and one validation on it.

use std::sync::{Arc, Mutex, MutexGuard};

use ldap3::{Ldap, LdapConnAsync, LdapConnSettings, LdapError, Scope, SearchOptions};
use passthru_proto::Win32;
use url::Url;

use crate::entry::{dns_name_of, equality_filter, Entry, USER_ATTRS};
use crate::{DirectoryError, Timeouts, Verdict};

/// Idle connections kept per domain controller.
const MAX_IDLE: usize = 8;

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
    /// It answered, but not with a verdict: final, no other DC is asked.
    Final(DirectoryError),
}

/// A failure on one connection.
enum ConnFailure {
    /// The connection is unusable (I/O error, closed, timeout, DC busy).
    Transport { timed_out: bool, detail: String },
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

/// One domain controller and its idle connections.
#[derive(Debug)]
pub(crate) struct DomainController {
    url: Url,
    idle: Mutex<Vec<Ldap>>,
    /// The domain's DN (defaultNamingContext), read once.
    naming_context: Mutex<Option<String>>,
}

impl DomainController {
    pub fn new(url: Url) -> DomainController {
        DomainController {
            url,
            idle: Mutex::new(Vec::new()),
            naming_context: Mutex::new(None),
        }
    }

    pub fn url(&self) -> &Url {
        &self.url
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

    fn clear(&self) {
        self.pool().clear();
    }

    async fn connect(
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

    /// Validates on a pooled connection when one is idle, else on a new one.
    pub async fn validate(
        &self,
        upn: &str,
        password: &str,
        tls: &Arc<rustls::ClientConfig>,
        timeouts: &Timeouts,
    ) -> Result<Verdict, DcFailure> {
        while let Some(mut ldap) = self.take_idle() {
            match self.validate_on(&mut ldap, upn, password, timeouts).await {
                Ok(verdict) => {
                    self.put_back(ldap);
                    return Ok(verdict);
                }
                Err(ConnFailure::Answer(e)) => return Err(DcFailure::Final(e)),
                Err(ConnFailure::Transport {
                    timed_out: true,
                    detail,
                }) => {
                    // A DC that stopped answering: its other connections are no better.
                    self.clear();
                    return Err(DcFailure::Down {
                        timed_out: true,
                        detail,
                    });
                }
                Err(ConnFailure::Transport { detail, .. }) => {
                    // A stale connection (the DC restarted, an idle timeout): try another.
                    tracing::debug!(dc = %self.url, "dropping a pooled connection: {detail}");
                }
            }
        }
        let mut ldap = self.connect(tls, timeouts).await?;
        match self.validate_on(&mut ldap, upn, password, timeouts).await {
            Ok(verdict) => {
                self.put_back(ldap);
                Ok(verdict)
            }
            Err(ConnFailure::Answer(e)) => Err(DcFailure::Final(e)),
            Err(ConnFailure::Transport { timed_out, detail }) => {
                Err(DcFailure::Down { timed_out, detail })
            }
        }
    }

    /// Bind, and on success read the user, on one connection.
    async fn validate_on(
        &self,
        ldap: &mut Ldap,
        upn: &str,
        password: &str,
        timeouts: &Timeouts,
    ) -> Result<Verdict, ConnFailure> {
        let res = ldap
            .with_timeout(timeouts.operation)
            .simple_bind(upn, password)
            .await
            .map_err(transport)?;
        match res.rc {
            RC_SUCCESS => {}
            RC_INVALID_CREDENTIALS => {
                return match Win32::from_ad_diagnostic(&res.text) {
                    Some(w) => Ok(Verdict::Denied(w)),
                    None => Err(ConnFailure::Answer(DirectoryError::Unexpected(format!(
                        "bind refused with an unknown reason: {}",
                        res.text
                    )))),
                }
            }
            RC_BUSY | RC_UNAVAILABLE => {
                return Err(ConnFailure::Transport {
                    timed_out: false,
                    detail: format!("the DC is busy or unavailable ({}): {}", res.rc, res.text),
                })
            }
            rc => {
                return Err(ConnFailure::Answer(DirectoryError::Unexpected(format!(
                    "bind failed with LDAP result {rc}: {}",
                    res.text
                ))))
            }
        }
        let base = self.naming_context(ldap, timeouts).await?;
        let user = self.find_user(ldap, &base, upn, timeouts).await?;
        Ok(Verdict::Accepted(user))
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
