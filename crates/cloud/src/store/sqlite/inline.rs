//! The SQLite store's hot statements, run on the calling thread.
//!
//! sqlx gives each SQLite connection a thread of its own: every statement is a message to
//! that thread and its answer a message back, two thread wake-ups that cost more than the
//! statement itself (42% of a refresh grant's CPU went to sqlx's worker threads, most of it
//! in the kernel switching to them: docs/performance.md, issue 20). The statements every
//! sign-in and token grant makes run here instead, through rusqlite on connections of their
//! own to the same file, on the request's thread, **when they can run at once**: SQLite's
//! busy timeout is zero on these connections, so a statement either runs now (readers never
//! wait in WAL mode; a writer runs when no other connection holds the write lock) or fails
//! with `SQLITE_BUSY` before changing anything. Then the same statement runs again on
//! Tokio's blocking pool, where it waits for the lock as sqlx's statements do. A request's
//! thread therefore never sleeps on a lock, and a statement's outcome does not depend on the
//! path it took.
//!
//! A closure given to [`Inline::run`] is one statement, or one `BEGIN IMMEDIATE`
//! transaction (rusqlite's `Transaction` rolls back when dropped): both fail with
//! `SQLITE_BUSY` before their first change, so running one again is safe.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use crate::store::{Result, StoreError};

/// Idle connections kept (more are opened when needed and closed when given back).
const IDLE_KEPT: usize = 16;
/// Statements waiting for the write lock at once on the blocking pool (the rest queue).
const WAITING_AT_MOST: usize = 8;
/// How long opening a connection waits for a lock (rusqlite's default is 5 s).
const OPEN_WAIT: Duration = Duration::from_millis(100);
/// Prepared statements each connection keeps.
const STATEMENT_CACHE: usize = 64;

/// Connections for the hot statements. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Inline {
    shared: Arc<Shared>,
}

struct Shared {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    /// Taken by a writer on a request's thread for the length of its statement: the
    /// process's own writers queue here for microseconds instead of failing on each other's
    /// write lock and going to the blocking pool.
    writer: Mutex<()>,
    waiting: tokio::sync::Semaphore,
    /// Statements that found the write lock held and ran on the blocking pool.
    waited: std::sync::atomic::AtomicU64,
    /// Set by [`Inline::close`]: no statement runs any more.
    closed: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for Inline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inline")
            .field("path", &self.shared.path)
            .finish_non_exhaustive()
    }
}

/// Whether SQLite refused because another connection holds a lock.
fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

impl Inline {
    /// Connections to the store file at `path` (opened when first needed; the file must
    /// exist and carry the schema, which [`super::SqliteStore::open`] sees to first).
    pub(crate) fn new(path: &Path) -> Inline {
        Inline {
            shared: Arc::new(Shared {
                path: path.to_path_buf(),
                idle: Mutex::new(Vec::new()),
                writer: Mutex::new(()),
                waiting: tokio::sync::Semaphore::new(WAITING_AT_MOST),
                waited: std::sync::atomic::AtomicU64::new(0),
                closed: std::sync::atomic::AtomicBool::new(false),
            }),
        }
    }

    /// A connection with the settings sqlx's connections have (WAL is the file's).
    fn open(&self) -> rusqlite::Result<Connection> {
        let c = Connection::open_with_flags(
            &self.shared.path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        // Reading the schema (some pragmas do) waits briefly for a lock, never long: this
        // runs on a request's thread.
        c.busy_timeout(OPEN_WAIT)?;
        c.pragma_update(None, "foreign_keys", "ON")?;
        c.pragma_update(None, "secure_delete", "ON")?;
        c.pragma_update(None, "synchronous", "NORMAL")?;
        c.pragma_update(
            None,
            "wal_autocheckpoint",
            super::base::AUTOCHECKPOINT_PAGES,
        )?;
        c.busy_timeout(Duration::ZERO)?;
        c.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        Ok(c)
    }

    /// Closes the idle connections; from now on every statement fails (as sqlx's do once
    /// its pool is closed), and connections in use are closed when given back.
    pub(crate) fn close(&self) {
        self.shared
            .closed
            .store(true, std::sync::atomic::Ordering::SeqCst);
        self.shared.waiting.close();
        if let Ok(mut idle) = self.shared.idle.lock() {
            idle.clear();
        }
    }

    /// How many statements found the write lock held and waited on the blocking pool.
    #[cfg(test)]
    pub(crate) fn waited(&self) -> u64 {
        self.shared
            .waited
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    fn is_closed(&self) -> bool {
        self.shared.closed.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn take(&self) -> rusqlite::Result<Connection> {
        let idle = self.shared.idle.lock().ok().and_then(|mut v| v.pop());
        match idle {
            Some(c) => Ok(c),
            None => self.open(),
        }
    }

    fn give_back(&self, c: Connection) {
        if self.is_closed() {
            return;
        }
        if let Ok(mut idle) = self.shared.idle.lock() {
            if idle.len() < IDLE_KEPT {
                idle.push(c);
            }
        }
    }

    /// Runs `f`, which only reads, on this thread (readers never wait for a lock in WAL
    /// mode; should one still find the database busy, it runs on the blocking pool).
    pub(crate) async fn read<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: Fn(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        self.run(false, f).await
    }

    /// Runs `f`, which writes, on this thread when no other connection holds the write
    /// lock, else on the blocking pool, waiting there for the lock (module docs).
    pub(crate) async fn write<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: Fn(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        self.run(true, f).await
    }

    async fn run<T, F>(&self, writes: bool, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: Fn(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        if self.is_closed() {
            return Err(StoreError::Unavailable("the store is closed".into()));
        }
        let mut conn = self.take()?;
        let now = {
            let _writer = writes.then(|| self.shared.writer.lock());
            f(&mut conn)
        };
        match now {
            Err(e) if is_busy(&e) => {}
            done => {
                self.give_back(conn);
                return done.map_err(StoreError::from);
            }
        }
        self.shared
            .waited
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let _turn = self
            .shared
            .waiting
            .acquire()
            .await
            .map_err(|_| StoreError::Unavailable("the store is closed".into()))?;
        let this = self.clone();
        let waited = tokio::task::spawn_blocking(move || {
            conn.busy_timeout(super::base::BUSY_TIMEOUT)?;
            let done = f(&mut conn);
            if conn.busy_timeout(Duration::ZERO).is_ok() {
                this.give_back(conn);
            }
            done
        })
        .await
        .map_err(|e| StoreError::Unavailable(format!("a store statement did not finish: {e}")))?;
        waited.map_err(StoreError::from)
    }
}

/// Reads a UUID stored as text.
pub(crate) fn uuid(row: &rusqlite::Row<'_>, col: &str) -> rusqlite::Result<uuid::Uuid> {
    let s: String = row.get(col)?;
    uuid::Uuid::parse_str(&s).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
    })
}

/// A `users` row (as `base::user_row` reads one through sqlx).
pub(crate) fn user(row: &rusqlite::Row<'_>) -> rusqlite::Result<crate::store::User> {
    Ok(crate::store::User {
        id: uuid(row, "id")?,
        tenant_id: uuid(row, "tenant_id")?,
        upn: row.get("upn")?,
        display_name: row.get("display_name")?,
        mail: row.get("mail")?,
        password_hash: row.get("password_hash")?,
        source: row.get("source")?,
        immutable_id: row.get("immutable_id")?,
        role: row.get("role")?,
        enabled: row.get::<_, i64>("enabled")? != 0,
        created_at: row.get("created_at")?,
        updated_at: row.get("updated_at")?,
        last_sign_in: row.get("last_sign_in")?,
        sync: row
            .get::<_, Option<String>>("sync_attrs")?
            .and_then(|j| serde_json::from_str(&j).ok()),
        writeback_allowed: row.get::<_, i64>("writeback_allowed")? != 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Removes the directory when dropped.
    struct Dir(std::path::PathBuf);
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    async fn store() -> anyhow::Result<(Dir, super::super::SqliteStore)> {
        let dir =
            Dir(std::env::temp_dir().join(format!("passthru-inline-{}", uuid::Uuid::new_v4())));
        std::fs::create_dir_all(&dir.0)?;
        let s = super::super::SqliteStore::open(&dir.0.join("t.db"), true).await?;
        sqlx::query("CREATE TABLE t (k TEXT PRIMARY KEY)")
            .execute(&s.pool)
            .await?;
        Ok((dir, s))
    }

    const ADD: &str = "INSERT INTO t (k) VALUES (?1)";

    #[tokio::test]
    async fn runs_at_once_and_sees_what_sqlx_wrote() -> anyhow::Result<()> {
        let (_d, s) = store().await?;
        sqlx::query("INSERT INTO t (k) VALUES ('a')")
            .execute(&s.pool)
            .await?;
        let n: i64 = s
            .inline
            .read(|c| c.query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0)))
            .await?;
        assert_eq!(n, 1);
        s.inline.write(|c| c.execute(ADD, ["b"])).await?;
        let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM t")
            .fetch_one(&s.pool)
            .await?;
        assert_eq!(n, 2);
        Ok(())
    }

    /// A write while another connection holds the write lock waits for it (on the blocking
    /// pool) instead of failing, and lands after the other transaction.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_write_behind_a_held_lock_waits_and_lands() -> anyhow::Result<()> {
        let (_d, s) = store().await?;
        let mut tx = s.write_tx().await?;
        sqlx::query("INSERT INTO t (k) VALUES ('first')")
            .execute(&mut *tx)
            .await?;
        let inline = s.inline.clone();
        let write = tokio::spawn(async move { inline.write(|c| c.execute(ADD, ["second"])).await });
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!write.is_finished(), "the write must wait for the lock");
        tx.commit().await?;
        assert_eq!(write.await??, 1);
        let keys: Vec<(String,)> = sqlx::query_as("SELECT k FROM t ORDER BY rowid")
            .fetch_all(&s.pool)
            .await?;
        assert_eq!(keys, vec![("first".into(),), ("second".into(),)]);
        Ok(())
    }

    /// Many presentations of one refresh token and of one code, on four threads, while
    /// another connection takes the write lock again and again (so some statements run on
    /// the request's thread and some wait on the blocking pool): the token is fresh for
    /// exactly one of them, and the code is taken exactly once.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn one_winner_across_threads_and_both_paths() -> anyhow::Result<()> {
        use crate::store::oidc::{OidcStore, RefreshUse};
        let (_d, s) = store().await?;
        let t = uuid::Uuid::new_v4();
        let rec = crate::store::RefreshRecord {
            tenant_id: t,
            user_id: uuid::Uuid::new_v4(),
            client_id: "client".into(),
            scope: "openid".into(),
            expires_at: 100,
            family: "race".into(),
            auth_time: 1,
        };
        s.add_refresh_token("rt", &rec).await?;
        let code = crate::store::oidc::AuthCode {
            tenant_id: t,
            client_id: "client".into(),
            redirect_uri: "https://app.test/cb".into(),
            user_id: rec.user_id,
            scope: "openid".into(),
            nonce: None,
            code_challenge: None,
            auth_time: 1,
            expires_at: 100,
        };
        s.add_code("code", &code).await?;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let holder = {
            let (s, stop) = (s.clone(), stop.clone());
            tokio::spawn(async move {
                let mut held = 0u32;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let tx = s.write_tx().await?;
                    tokio::time::sleep(Duration::from_millis(2)).await;
                    tx.commit().await?;
                    held += 1;
                    // SQLite's lock is not fair: a writer that took it back at once would
                    // starve the others' busy handlers (as no writer of the cloud does).
                    tokio::time::sleep(Duration::from_millis(3)).await;
                }
                anyhow::Ok(held)
            })
        };
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..200 {
            let s = s.clone();
            tasks.spawn(async move {
                let used = s.use_refresh_token("rt", 10).await?;
                let taken = s.take_code("code").await?;
                anyhow::Ok((matches!(used, RefreshUse::Fresh(_)), taken.is_some()))
            });
        }
        let (mut fresh, mut taken) = (0, 0);
        while let Some(done) = tasks.join_next().await {
            let (f, c) = done??;
            fresh += usize::from(f);
            taken += usize::from(c);
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let held = holder.await??;
        assert!(held > 0, "the other writer never held the lock");
        assert!(
            s.inline.waited() > 0,
            "no statement waited on the blocking pool"
        );
        assert_eq!(fresh, 1, "fresh for {fresh} of 200");
        assert_eq!(taken, 1, "the code was taken {taken} times");
        Ok(())
    }

    /// A closed store runs nothing more.
    #[tokio::test]
    async fn a_closed_store_refuses() -> anyhow::Result<()> {
        let (_d, s) = store().await?;
        s.inline.write(|c| c.execute(ADD, ["k"])).await?;
        s.inline.close();
        let after = s.inline.write(|c| c.execute(ADD, ["l"])).await;
        assert!(
            matches!(after, Err(StoreError::Unavailable(_))),
            "{after:?}"
        );
        Ok(())
    }

    /// A statement's own error (here a constraint) comes back as it is, not retried.
    #[tokio::test]
    async fn an_error_is_returned() -> anyhow::Result<()> {
        let (_d, s) = store().await?;
        s.inline.write(|c| c.execute(ADD, ["k"])).await?;
        let again = s.inline.write(|c| c.execute(ADD, ["k"])).await;
        assert!(again.is_err(), "{again:?}");
        Ok(())
    }
}
