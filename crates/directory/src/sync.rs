//! Directory sync: one run of a forest, read with its service account and sent to the cloud
//! in [`SyncBatch`]es.
//!
//! - DC choice as for validation: the Up DCs in configured order, then the Down ones; a
//!   transport failure marks a DC down and, while nothing was sent yet, the next DC is
//!   tried. A refused bind of the service account is final ([`DirectoryError::ServiceAccount`]).
//! - The watermark is the DC's identity (its invocationId, else its dsServiceName) and its
//!   highestCommittedUSN read *before* the searches: what changes during the run is read
//!   again by the next one.
//! - Full import (asked for, no watermark, or a watermark of another DC): one paged search
//!   of every user and group in scope; `complete`.
//! - Incremental: users and groups with uSNChanged above the watermark, then deletions:
//!   tombstones (show-deleted control) when the service account can read the Deleted
//!   Objects container, which a plain account cannot (Samba then shows it no tombstones at
//!   all, without an error); otherwise, when the run asks for it ([`SyncRun::reconcile`]),
//!   reconciliation: every in-scope objectGUID is sent in [`SyncBatch::present`] and the run
//!   is `complete`, so the cloud deletes what was not mentioned.
//! - Group members are read as objectGUIDs with the extended-DN control; a DC that hands
//!   out a large `member` in ranges (`member;range=0-1499`, Windows) is asked for the rest.
//!
//! The service account's password goes into the bind request and nowhere else.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use ldap3::controls::{PagedResults, RawControl};
use ldap3::{Ldap, LdapError, Scope};
use passthru_proto::sync::{
    SyncBatch, SyncDone, SyncObject, SyncRun, Watermark, MAX_BATCH_OBJECTS,
};
use passthru_proto::Win32;
use tokio::sync::mpsc::Sender;
use uuid::Uuid;
use zeroize::Zeroizing;

use crate::dc::{DcFailure, DomainController};
use crate::entry::Entry;
use crate::objects::{self, Kind, OBJECT_ATTRS};
use crate::values::{guid_from_bytes, paged_response};
use crate::{Directory, DirectoryError, Forest, Timeouts};

/// Entries per page of the paged searches, unless set otherwise
/// ([`Directory::with_sync_page_size`]).
pub const DEFAULT_PAGE_SIZE: u32 = 500;
const OID_PAGED_RESULTS: &str = "1.2.840.113556.1.4.319";
const OID_EXTENDED_DN: &str = "1.2.840.113556.1.4.529";
const OID_SHOW_DELETED: &str = "1.2.840.113556.1.4.417";
/// The well-known GUID of the Deleted Objects container.
const WKGUID_DELETED_OBJECTS: &str = "18e2ea80684f11d2b9aa00c04f79f805";
/// How often progress is logged at most.
const PROGRESS_EVERY: Duration = Duration::from_secs(2);

const RC_SUCCESS: u32 = 0;
const RC_INVALID_CREDENTIALS: u32 = 49;
const RC_BUSY: u32 = 51;
const RC_UNAVAILABLE: u32 = 52;

/// The account a forest is synced with (and, when it has the rights, password writeback's
/// resets are made with).
pub struct SyncCredentials {
    /// Its UPN (or any name a simple bind takes).
    pub account: String,
    /// Its password, wiped from memory when dropped.
    pub password: Zeroizing<String>,
}

impl std::fmt::Debug for SyncCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncCredentials")
            .field("account", &self.account)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// Why a run on one DC stopped.
enum Failure {
    /// The connection is unusable (connect, TLS, I/O, timeout).
    Transport { timed_out: bool, detail: String },
    /// The DC said it is busy or unavailable.
    Busy(String),
    /// Final: the DC answered with an error, or the cloud went away.
    Final(DirectoryError),
}

fn transport(what: &str, e: LdapError) -> Failure {
    let timed_out = matches!(e, LdapError::Timeout { .. });
    Failure::Transport {
        timed_out,
        detail: if timed_out {
            format!("{what}: timed out")
        } else {
            format!("{what}: {e}")
        },
    }
}

fn unexpected(m: String) -> Failure {
    Failure::Final(DirectoryError::Unexpected(m))
}

/// Maps an LDAP result other than success.
fn answer(what: &str, rc: u32, text: &str) -> Failure {
    match rc {
        RC_BUSY | RC_UNAVAILABLE => Failure::Busy(format!(
            "{what}: the DC is busy or unavailable ({rc}): {text}"
        )),
        _ => unexpected(format!("{what} failed with LDAP result {rc}: {text}")),
    }
}

fn control(oid: &str, critical: bool, val: Option<Vec<u8>>) -> RawControl {
    RawControl {
        ctype: oid.to_string(),
        crit: critical,
        val,
    }
}

/// The extended-DN control asking for the dashed string form of GUIDs
/// (`SEQUENCE { INTEGER 1 }`).
fn extended_dn() -> RawControl {
    control(
        OID_EXTENDED_DN,
        true,
        Some(vec![0x30, 0x03, 0x02, 0x01, 0x01]),
    )
}

fn show_deleted() -> RawControl {
    control(OID_SHOW_DELETED, true, None)
}

/// One search of the run, read page by page.
struct Pager<'a> {
    base: String,
    scope: Scope,
    filter: String,
    attrs: &'a [&'a str],
    controls: Vec<RawControl>,
    /// `None` before the first page; empty after the last.
    cookie: Option<Vec<u8>>,
    /// The DC's estimate of the result size (0: none).
    estimate: u64,
    page_size: i32,
}

impl<'a> Pager<'a> {
    fn new(base: &str, scope: Scope, filter: String, attrs: &'a [&'a str]) -> Pager<'a> {
        Pager {
            base: base.to_string(),
            scope,
            filter,
            attrs,
            controls: Vec::new(),
            cookie: None,
            estimate: 0,
            page_size: DEFAULT_PAGE_SIZE as i32,
        }
    }

    fn paged(mut self, page_size: i32) -> Pager<'a> {
        self.page_size = page_size;
        self
    }

    fn with(mut self, c: RawControl) -> Pager<'a> {
        self.controls.push(c);
        self
    }

    /// The next page; `None` after the last.
    async fn next(
        &mut self,
        ldap: &mut Ldap,
        timeouts: &Timeouts,
    ) -> Result<Option<Vec<Entry>>, Failure> {
        let cookie = match &self.cookie {
            Some(c) if c.is_empty() => return Ok(None),
            Some(c) => c.clone(),
            None => Vec::new(),
        };
        let mut controls = self.controls.clone();
        // A base search reads one entry: no paging.
        if self.scope != Scope::Base {
            controls.push(RawControl::from(PagedResults {
                size: self.page_size,
                cookie,
            }));
        }
        let what = format!("search {} under {}", self.filter, self.base);
        let search = ldap
            .with_controls(controls)
            .with_timeout(timeouts.operation)
            .search(&self.base, self.scope, &self.filter, self.attrs.to_vec());
        let res = match tokio::time::timeout(timeouts.operation, search).await {
            Ok(r) => r.map_err(|e| transport(&what, e))?,
            Err(_) => {
                return Err(Failure::Transport {
                    timed_out: true,
                    detail: format!(
                        "{what}: no page within {} ms",
                        timeouts.operation.as_millis()
                    ),
                })
            }
        };
        let (entries, result) = (res.0, res.1);
        if result.rc != RC_SUCCESS {
            return Err(answer(&what, result.rc, &result.text));
        }
        let paged = result
            .ctrls
            .iter()
            .find(|c| c.1.ctype == OID_PAGED_RESULTS)
            .and_then(|c| c.1.val.as_deref())
            .and_then(paged_response);
        match paged {
            Some((size, next)) => {
                if size > 0 {
                    self.estimate = size;
                }
                self.cookie = Some(next);
            }
            // No paged-results answer: the DC sent everything at once.
            None => self.cookie = Some(Vec::new()),
        }
        let mut out = Vec::with_capacity(entries.len());
        for e in entries {
            if e.is_ref() || e.is_intermediate() {
                continue;
            }
            out.push(
                Entry::parse(e).ok_or_else(|| {
                    unexpected(format!("{what}: a malformed search result entry"))
                })?,
            );
        }
        Ok(Some(out))
    }
}

/// Progress of a run, logged at most every [`PROGRESS_EVERY`].
struct Progress<'a> {
    forest: &'a str,
    started: Instant,
    logged: Instant,
}

impl Progress<'_> {
    fn tick(&mut self, done: u64, estimated: Option<u64>) {
        if self.logged.elapsed() < PROGRESS_EVERY {
            return;
        }
        self.logged = Instant::now();
        let line = progress_line(self.forest, done, self.started.elapsed(), estimated);
        tracing::info!(forest = %self.forest, "{line}");
    }
}

/// "sync of corp.example.test: 8000 objects read, 4100/s, about 3 s left".
fn progress_line(forest: &str, done: u64, elapsed: Duration, estimated: Option<u64>) -> String {
    let secs = elapsed.as_secs_f64().max(0.001);
    let rate = done as f64 / secs;
    match estimated {
        Some(total) if total > done && rate >= 1.0 => {
            let left = ((total - done) as f64 / rate).ceil() as u64;
            format!("sync of {forest}: {done} objects read, {rate:.0}/s, about {left} s left")
        }
        _ => format!("sync of {forest}: {done} objects read, {rate:.0}/s"),
    }
}

/// The state of one run on one connection.
struct Run<'a> {
    forest: &'a str,
    run: &'a SyncRun,
    out: &'a Sender<SyncBatch>,
    timeouts: Timeouts,
    page_size: i32,
    objects: Vec<SyncObject>,
    present: Vec<Uuid>,
    /// Objects read so far (objects and present GUIDs).
    done: u64,
    /// Whether a batch was sent (a failure then ends the run: no other DC is tried).
    sent: bool,
    estimated_total: Option<u64>,
    progress: Progress<'a>,
    /// objectGUIDs sent as objects (not repeated in `present`).
    seen: HashSet<Uuid>,
}

/// What the DC said about itself before the searches.
struct RootDse {
    naming_context: String,
    dc_id: String,
    usn: i64,
}

impl Run<'_> {
    async fn flush(&mut self) -> Result<(), Failure> {
        if self.objects.is_empty() && self.present.is_empty() {
            return Ok(());
        }
        let batch = SyncBatch {
            run_id: self.run.run_id,
            objects: std::mem::take(&mut self.objects),
            present: std::mem::take(&mut self.present),
            done: self.done,
            estimated_total: self.estimated_total.map(|t| t.max(self.done)),
        };
        self.sent = true;
        self.out.send(batch).await.map_err(|_| {
            Failure::Final(DirectoryError::Abandoned {
                forest: self.forest.to_string(),
            })
        })
    }

    async fn push(&mut self, object: SyncObject) -> Result<(), Failure> {
        if let SyncObject::User(u) = &object {
            self.seen.insert(u.object_guid);
        } else if let SyncObject::Group(g) = &object {
            self.seen.insert(g.object_guid);
        }
        self.objects.push(object);
        self.added().await
    }

    async fn push_present(&mut self, guid: Uuid) -> Result<(), Failure> {
        if self.seen.contains(&guid) {
            return Ok(());
        }
        self.present.push(guid);
        self.added().await
    }

    async fn added(&mut self) -> Result<(), Failure> {
        self.done += 1;
        self.progress.tick(self.done, self.estimated_total);
        if self.objects.len() + self.present.len() >= MAX_BATCH_OBJECTS {
            self.flush().await?;
        }
        Ok(())
    }

    /// Sets the estimate from a search's first page: the DC's estimate when it gives one
    /// (`before` objects were read before this search), else `fallback`.
    fn estimate(&mut self, dc_estimate: u64, before: u64, fallback: Option<u64>) {
        self.estimated_total = if dc_estimate > 0 {
            Some(before + dc_estimate)
        } else {
            fallback
        };
    }

    async fn root_dse(&mut self, ldap: &mut Ldap) -> Result<RootDse, Failure> {
        let attrs = [
            "defaultNamingContext",
            "dsServiceName",
            "highestCommittedUSN",
        ];
        let mut pager = Pager::new("", Scope::Base, "(objectClass=*)".into(), &attrs);
        let entries = pager.next(ldap, &self.timeouts).await?.unwrap_or_default();
        let root = entries
            .first()
            .ok_or_else(|| unexpected("the rootDSE could not be read".to_string()))?;
        let naming_context = root
            .text("defaultNamingContext")
            .ok_or_else(|| unexpected("the rootDSE has no defaultNamingContext".to_string()))?;
        let service = root
            .text("dsServiceName")
            .ok_or_else(|| unexpected("the rootDSE has no dsServiceName".to_string()))?;
        let usn = root
            .text("highestCommittedUSN")
            .and_then(|u| u.trim().parse::<i64>().ok())
            .ok_or_else(|| {
                unexpected("the rootDSE has no valid highestCommittedUSN".to_string())
            })?;
        // The invocationId of the DC's NTDS Settings object survives renames, and changes
        // when the DC's database is restored (its USNs then mean something else).
        let inv_attrs = ["invocationId"];
        let mut pager = Pager::new(&service, Scope::Base, "(objectClass=*)".into(), &inv_attrs);
        let invocation = match pager.next(ldap, &self.timeouts).await {
            Ok(Some(e)) => e
                .first()
                .and_then(|e| e.bytes("invocationId"))
                .and_then(guid_from_bytes),
            Ok(None) | Err(Failure::Final(_)) => None,
            Err(e) => return Err(e),
        };
        let dc_id = invocation.map_or(service, |g| g.to_string());
        Ok(RootDse {
            naming_context,
            dc_id,
            usn,
        })
    }

    /// Users and groups matching `filter`, sent as objects.
    async fn read_objects(
        &mut self,
        ldap: &mut Ldap,
        base: &str,
        filter: String,
        fallback_estimate: Option<u64>,
    ) -> Result<(), Failure> {
        let before = self.done;
        let mut pager = Pager::new(base, Scope::Subtree, filter, &OBJECT_ATTRS)
            .with(extended_dn())
            .paged(self.page_size);
        let mut first = true;
        while let Some(page) = pager.next(ldap, &self.timeouts).await? {
            if first {
                self.estimate(pager.estimate, before, fallback_estimate);
                first = false;
            }
            for entry in page {
                let object = match objects::kind(&entry) {
                    Some(Kind::Group) => {
                        let (mut members, unreadable, next) = objects::members(&entry);
                        let mut unreadable = unreadable;
                        if let Some(start) = next {
                            unreadable += self
                                .rest_of_members(ldap, &entry, start, &mut members)
                                .await?;
                            // Members are unique; a DC that repeats values in its ranges
                            // does not duplicate them.
                            let mut unique = HashSet::new();
                            members.retain(|m| unique.insert(*m));
                        }
                        if unreadable > 0 {
                            tracing::warn!(
                                forest = %self.forest,
                                group = %objects::dn_of(&entry),
                                "{unreadable} member values without a readable GUID were left out"
                            );
                        }
                        objects::group(&entry, members).map(SyncObject::Group)
                    }
                    Some(Kind::User) => objects::user(&entry).map(SyncObject::User),
                    None => None,
                };
                match object {
                    Some(o) => self.push(o).await?,
                    None => tracing::warn!(
                        forest = %self.forest,
                        dn = %objects::dn_of(&entry),
                        "directory object skipped: not a user or group with a valid objectGUID"
                    ),
                }
            }
        }
        Ok(())
    }

    /// The members a DC held back (ranged retrieval), from range `start` on.
    async fn rest_of_members(
        &mut self,
        ldap: &mut Ldap,
        group: &Entry,
        mut start: u32,
        members: &mut Vec<Uuid>,
    ) -> Result<usize, Failure> {
        let guid = group
            .bytes("objectGUID")
            .and_then(guid_from_bytes)
            .ok_or_else(|| unexpected(format!("group {} has no valid objectGUID", group.dn)))?;
        let base = format!("<GUID={guid}>");
        let mut unreadable = 0;
        loop {
            let attr = format!("member;range={start}-*");
            let attrs = [attr.as_str()];
            let mut pager = Pager::new(&base, Scope::Base, "(objectClass=*)".into(), &attrs)
                .with(extended_dn());
            let page = pager.next(ldap, &self.timeouts).await?.unwrap_or_default();
            let Some(entry) = page.first() else {
                return Err(unexpected(format!(
                    "group {}: the rest of its members (from {start}) could not be read",
                    group.dn
                )));
            };
            let (more, bad, next) = objects::members(entry);
            members.extend(more);
            unreadable += bad;
            match next {
                Some(n) if n > start => start = n,
                Some(_) => {
                    return Err(unexpected(format!(
                        "group {}: the DC's member ranges do not advance",
                        group.dn
                    )))
                }
                // The last range (`member;range=N-*`), or an answer without ranges.
                None => return Ok(unreadable),
            }
        }
    }

    /// Whether the account can read the Deleted Objects container (and so its tombstones),
    /// and the container's DN.
    async fn tombstones_visible(
        &mut self,
        ldap: &mut Ldap,
        naming_context: &str,
    ) -> Result<Option<String>, Failure> {
        let base = format!("<WKGUID={WKGUID_DELETED_OBJECTS},{naming_context}>");
        let attrs = ["isDeleted"];
        let mut pager =
            Pager::new(&base, Scope::Base, "(objectClass=*)".into(), &attrs).with(show_deleted());
        match pager.next(ldap, &self.timeouts).await {
            Ok(Some(entries)) => Ok(entries.first().and_then(|e| {
                let deleted = e.text("isDeleted")?;
                deleted
                    .eq_ignore_ascii_case("TRUE")
                    .then(|| objects::dn_of(e))
            })),
            Ok(None) => Ok(None),
            Err(Failure::Final(DirectoryError::Unexpected(detail))) => {
                tracing::debug!(forest = %self.forest, "Deleted Objects not readable: {detail}");
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Tombstones of users and groups changed since `from_usn`.
    async fn read_tombstones(
        &mut self,
        ldap: &mut Ldap,
        container: &str,
        from_usn: i64,
    ) -> Result<(), Failure> {
        let filter = format!(
            "(&(isDeleted=TRUE)(uSNChanged>={from_usn})(|(objectClass=user)(objectClass=group)))"
        );
        let attrs = ["objectGUID"];
        let mut pager = Pager::new(container, Scope::OneLevel, filter, &attrs)
            .with(show_deleted())
            .paged(self.page_size);
        while let Some(page) = pager.next(ldap, &self.timeouts).await? {
            for e in page {
                if let Some(g) = e.bytes("objectGUID").and_then(guid_from_bytes) {
                    self.push(SyncObject::Deleted { object_guid: g }).await?;
                }
            }
        }
        Ok(())
    }

    /// Every in-scope objectGUID, sent as `present`.
    async fn reconcile(&mut self, ldap: &mut Ldap, base: &str) -> Result<(), Failure> {
        let attrs = ["objectGUID"];
        let mut pager =
            Pager::new(base, Scope::Subtree, objects::scope_filter(), &attrs).paged(self.page_size);
        let mut first = true;
        while let Some(page) = pager.next(ldap, &self.timeouts).await? {
            if first {
                if pager.estimate > 0 {
                    self.estimated_total = Some(pager.estimate.max(self.done));
                }
                first = false;
            }
            for e in page {
                if let Some(g) = e.bytes("objectGUID").and_then(guid_from_bytes) {
                    self.push_present(g).await?;
                }
            }
        }
        Ok(())
    }

    /// The run on a bound connection.
    async fn read(&mut self, ldap: &mut Ldap, dc_url: &str) -> Result<SyncDone, Failure> {
        let root = self.root_dse(ldap).await?;
        let watermark = Watermark {
            dc: root.dc_id.clone(),
            usn: root.usn,
        };
        let incremental_from = match &self.run.watermark {
            Some(w) if !self.run.full && w.dc == root.dc_id => Some(w.usn.saturating_add(1)),
            _ => None,
        };
        let base = root.naming_context.as_str();
        let complete = match incremental_from {
            None => {
                tracing::info!(forest = %self.forest, dc = %dc_url, "sync: full import");
                self.read_objects(ldap, base, objects::scope_filter(), self.run.previous_total)
                    .await?;
                true
            }
            Some(from) => {
                tracing::info!(forest = %self.forest, dc = %dc_url, from_usn = from, "sync: incremental");
                let filter = format!("(&(uSNChanged>={from}){})", objects::scope_filter());
                self.read_objects(ldap, base, filter, None).await?;
                match self.tombstones_visible(ldap, base).await? {
                    Some(container) => {
                        self.read_tombstones(ldap, &container, from).await?;
                        false
                    }
                    None if self.run.reconcile => {
                        tracing::debug!(
                            forest = %self.forest,
                            "tombstones are not visible to the service account: reconciling"
                        );
                        self.reconcile(ldap, base).await?;
                        true
                    }
                    None => {
                        tracing::debug!(
                            forest = %self.forest,
                            "tombstones are not visible: deletions wait for a reconciling run"
                        );
                        false
                    }
                }
            }
        };
        self.flush().await?;
        let millis = self.progress.started.elapsed().as_millis() as u64;
        let secs = (millis as f64 / 1000.0).max(0.001);
        tracing::info!(
            forest = %self.forest,
            dc = %dc_url,
            "sync of {} done: {} objects in {:.1} s ({:.0}/s), {}{}",
            self.forest,
            self.done,
            secs,
            self.done as f64 / secs,
            if incremental_from.is_none() { "full import" } else { "incremental" },
            if complete { ", complete" } else { "" }
        );
        Ok(SyncDone {
            run_id: self.run.run_id,
            watermark,
            complete,
            full: incremental_from.is_none(),
            objects: self.done,
            dc_url: dc_url.to_string(),
            millis,
        })
    }
}

/// One run on one DC: connect, bind as the service account, read.
async fn run_on(
    forest: &Forest,
    dc: &DomainController,
    creds: &SyncCredentials,
    run: &mut Run<'_>,
    timeouts: &Timeouts,
) -> Result<SyncDone, Failure> {
    let mut ldap = match dc.connect(&forest.tls, timeouts).await {
        Ok(l) => l,
        Err(DcFailure::Down { timed_out, detail }) => {
            return Err(Failure::Transport { timed_out, detail })
        }
        Err(DcFailure::Busy { detail }) => return Err(Failure::Busy(detail)),
        Err(DcFailure::Final(e)) => return Err(Failure::Final(e)),
    };
    let bind = ldap
        .with_timeout(timeouts.operation)
        .simple_bind(&creds.account, creds.password.as_str())
        .await
        .map_err(|e| transport("bind", e))?;
    match bind.rc {
        RC_SUCCESS => {}
        RC_INVALID_CREDENTIALS => {
            return Err(Failure::Final(DirectoryError::ServiceAccount {
                forest: forest.name.clone(),
                account: creds.account.clone(),
                win32: Win32::from_ad_diagnostic(&bind.text),
                detail: bind.text,
            }))
        }
        rc => return Err(answer("bind of the service account", rc, &bind.text)),
    }
    let result = run.read(&mut ldap, dc.url().as_str()).await;
    let _ = tokio::time::timeout(timeouts.operation, ldap.unbind()).await;
    result
}

impl Directory {
    /// The same directory, reading `page_size` entries per page in sync runs (clamped to
    /// 1..=1000, AD's default MaxPageSize; default [`DEFAULT_PAGE_SIZE`]).
    pub fn with_sync_page_size(mut self, page_size: u32) -> Directory {
        self.sync_page_size = page_size.clamp(1, 1000) as i32;
        self
    }

    /// One sync run of forest `forest` (its configured name) with its service account:
    /// sends [`SyncBatch`]es into `out` (each send awaited: the receiver paces the run) and
    /// returns the [`SyncDone`]. See the [module documentation](crate::sync).
    pub async fn sync_run(
        &self,
        forest: &str,
        creds: &SyncCredentials,
        run: &SyncRun,
        out: &Sender<SyncBatch>,
    ) -> Result<SyncDone, DirectoryError> {
        let f = self
            .forests
            .iter()
            .find(|f| f.name.eq_ignore_ascii_case(forest.trim()))
            .ok_or_else(|| {
                DirectoryError::Config(format!("no forest named {forest:?} is configured for sync"))
            })?;
        if creds.account.trim().is_empty() || creds.password.is_empty() {
            // An empty password would be an anonymous bind, which AD accepts.
            return Err(DirectoryError::ServiceAccount {
                forest: f.name.clone(),
                account: creds.account.clone(),
                win32: None,
                detail: "the account name or password is empty".to_string(),
            });
        }
        let started = Instant::now();
        let mut failures = Vec::new();
        let mut all_timed_out = true;
        for dc in f.candidates() {
            let mut state = Run {
                forest: &f.name,
                run,
                out,
                timeouts: self.timeouts,
                page_size: self.sync_page_size,
                objects: Vec::new(),
                present: Vec::new(),
                done: 0,
                sent: false,
                estimated_total: None,
                progress: Progress {
                    forest: &f.name,
                    started,
                    logged: Instant::now(),
                },
                seen: HashSet::new(),
            };
            match run_on(f, dc, creds, &mut state, &self.timeouts).await {
                Ok(done) => {
                    dc.mark_up();
                    return Ok(done);
                }
                Err(Failure::Final(e)) => {
                    if !matches!(e, DirectoryError::Abandoned { .. }) {
                        dc.mark_up();
                    }
                    return Err(e);
                }
                Err(Failure::Busy(detail)) => {
                    tracing::warn!(forest = %f.name, dc = %dc.url(), "sync: domain controller skipped: {detail}");
                    all_timed_out = false;
                    failures.push(format!("{}: {detail}", dc.url()));
                    if state.sent {
                        break;
                    }
                }
                Err(Failure::Transport { timed_out, detail }) => {
                    dc.mark_down(&detail);
                    all_timed_out &= timed_out;
                    failures.push(format!("{}: {detail}", dc.url()));
                    if state.sent {
                        failures.push(format!(
                            "the run stopped after {} objects were sent; the next run starts again \
                             from the same watermark",
                            state.done
                        ));
                        break;
                    }
                }
            }
        }
        let detail = failures.join("; ");
        let forest = f.name.clone();
        if all_timed_out {
            Err(DirectoryError::Timeout { forest, detail })
        } else {
            Err(DirectoryError::Unreachable { forest, detail })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_lines() {
        let f = "corp.example.test";
        assert_eq!(
            progress_line(f, 8000, Duration::from_secs(2), Some(20_000)),
            "sync of corp.example.test: 8000 objects read, 4000/s, about 3 s left"
        );
        assert_eq!(
            progress_line(f, 8000, Duration::from_secs(2), None),
            "sync of corp.example.test: 8000 objects read, 4000/s"
        );
        // Past the estimate, or nothing read yet: no ETA.
        assert_eq!(
            progress_line(f, 9, Duration::from_secs(3), Some(5)),
            "sync of corp.example.test: 9 objects read, 3/s"
        );
        assert_eq!(
            progress_line(f, 0, Duration::ZERO, Some(5)),
            "sync of corp.example.test: 0 objects read, 0/s"
        );
    }

    #[test]
    fn credentials_never_show_the_password() {
        let c = SyncCredentials {
            account: "svc@corp".into(),
            password: Zeroizing::new("Secret-123".into()),
        };
        let shown = format!("{c:?}");
        assert!(
            shown.contains("svc@corp") && !shown.contains("Secret-123"),
            "{shown}"
        );
    }

    #[test]
    fn extended_dn_control_asks_for_the_string_form() {
        let c = extended_dn();
        assert_eq!(c.ctype, OID_EXTENDED_DN);
        assert_eq!(c.val.as_deref(), Some(&[0x30, 0x03, 0x02, 0x01, 0x01][..]));
    }
}
