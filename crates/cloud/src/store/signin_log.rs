//! The sign-in log's writer. A sign-in queues its line and goes on; one task writes the
//! queued lines in batches, one transaction each, so the log costs a sign-in neither a
//! store round trip nor a commit of its own. Every read of the log first waits for the lines
//! queued before it ([`Store::flush_sign_ins`]), so a reader always sees what came before;
//! [`Store::close`] writes what is left.

use sqlx::Sqlite;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use super::{SignIn, Store};

/// Lines the queue holds before a sign-in waits for the writer.
const QUEUE: usize = 10_000;
/// Lines written in one transaction at most.
const BATCH: usize = 512;
/// How long the writer waits for more lines after the first of a batch: at a few hundred
/// sign-ins a second, one write carries several, instead of each sign-in costing the store a
/// statement and a commit.
const LINGER: std::time::Duration = std::time::Duration::from_millis(5);
/// Lines in one INSERT statement.
const ROWS_PER_INSERT: usize = 64;

/// What the writer task receives.
#[derive(Debug)]
pub(crate) enum Queued {
    /// A line of a tenant's log.
    Line(Uuid, Box<SignIn>),
    /// Answer once everything queued before is written.
    Flush(oneshot::Sender<()>),
}

/// The sending side, shared by the store's clones.
pub(crate) type Writer = mpsc::Sender<Queued>;

/// Starts the writer task for `store` (whose own queue is not used by it).
pub(crate) fn start(store: Store) -> Writer {
    let (tx, mut rx) = mpsc::channel::<Queued>(QUEUE);
    tokio::spawn(async move {
        while let Some(first) = rx.recv().await {
            let (lines, flushes) = gather(first, &mut rx).await;
            if !lines.is_empty() {
                if let Err(e) = store.write_sign_ins(&lines).await {
                    tracing::error!(error = %e, lines = lines.len(), "could not write the sign-in log");
                }
            }
            for done in flushes {
                let _ = done.send(());
            }
        }
    });
    tx
}

/// A batch: `first`, then what follows it within [`LINGER`] (at once after a flush is
/// asked for), at most [`BATCH`] lines.
async fn gather(
    first: Queued,
    rx: &mut mpsc::Receiver<Queued>,
) -> (Vec<(Uuid, Box<SignIn>)>, Vec<oneshot::Sender<()>>) {
    let deadline = tokio::time::Instant::now() + LINGER;
    let mut lines = Vec::new();
    let mut flushes = Vec::new();
    let mut next = Some(first);
    while let Some(q) = next.take() {
        match q {
            Queued::Line(tenant, line) => lines.push((tenant, line)),
            Queued::Flush(done) => flushes.push(done),
        }
        if lines.len() >= BATCH {
            break;
        }
        next = match rx.try_recv() {
            Ok(q) => Some(q),
            Err(_) if !flushes.is_empty() => None,
            Err(_) => tokio::time::timeout_at(deadline, rx.recv())
                .await
                .ok()
                .flatten(),
        };
    }
    (lines, flushes)
}

impl Store {
    /// Queues a line of the sign-in log (written within milliseconds, in a batch).
    pub async fn log_sign_in(&self, tenant_id: Uuid, s: &SignIn) -> super::Result<()> {
        match &self.sign_in_writer {
            Some(w) => {
                if w.send(Queued::Line(tenant_id, Box::new(s.clone())))
                    .await
                    .is_ok()
                {
                    return Ok(());
                }
                // The writer is gone (the runtime is shutting down): write it here.
                self.write_sign_ins(&[(tenant_id, Box::new(s.clone()))])
                    .await
            }
            None => {
                self.write_sign_ins(&[(tenant_id, Box::new(s.clone()))])
                    .await
            }
        }
    }

    /// Waits until every line queued before this call is written.
    pub async fn flush_sign_ins(&self) {
        if let Some(w) = &self.sign_in_writer {
            let (done, written) = oneshot::channel();
            if w.send(Queued::Flush(done)).await.is_ok() {
                let _ = written.await;
            }
        }
    }

    /// Writes lines: one statement per [`ROWS_PER_INSERT`] lines, in one transaction when
    /// there are more.
    pub(crate) async fn write_sign_ins(&self, lines: &[(Uuid, Box<SignIn>)]) -> super::Result<()> {
        if lines.len() <= ROWS_PER_INSERT {
            insert_sign_ins(lines).build().execute(&self.pool).await?;
            return Ok(());
        }
        let mut tx = self.pool.begin().await?;
        for chunk in lines.chunks(ROWS_PER_INSERT) {
            insert_sign_ins(chunk).build().execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

/// One INSERT of `lines` (at most [`ROWS_PER_INSERT`]: 12 parameters each).
fn insert_sign_ins(lines: &[(Uuid, Box<SignIn>)]) -> sqlx::QueryBuilder<'_, Sqlite> {
    let mut q = sqlx::QueryBuilder::new(
        "INSERT INTO signins (tenant_id, time_ms, username, client_id, result, aadsts, win32, agent_id, other_agents, latency_ms, correlation_id, client_ip) ",
    );
    q.push_values(lines, |mut row, (tenant_id, s)| {
        row.push_bind(tenant_id.to_string())
            .push_bind(s.time_ms)
            .push_bind(s.username.as_str())
            .push_bind(s.client_id.as_deref())
            .push_bind(s.result.as_str())
            .push_bind(s.aadsts.map(i64::from))
            .push_bind(s.win32.map(i64::from))
            .push_bind(s.agent_id.map(|a| a.to_string()))
            .push_bind((!s.other_agents.is_empty()).then(|| {
                s.other_agents
                    .iter()
                    .map(Uuid::to_string)
                    .collect::<Vec<_>>()
                    .join(",")
            }))
            .push_bind(s.latency_ms)
            .push_bind(s.correlation_id.as_str())
            .push_bind(s.client_ip.as_deref());
    });
    q
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use crate::store::{test_store, DomainKind, SignIn};

    fn line(i: i64, other: Vec<Uuid>) -> SignIn {
        SignIn {
            time_ms: i,
            username: format!("u{i}@corp.test"),
            client_id: (i % 2 == 0).then(|| "app".to_string()),
            result: "failure".into(),
            aadsts: Some(50126),
            win32: Some(1326),
            agent_id: Some(Uuid::nil()),
            other_agents: other,
            latency_ms: Some(i),
            correlation_id: format!("c{i}"),
            client_ip: None,
        }
    }

    /// Lines queued in bursts of every size (one, under one statement's rows, over it, over a
    /// batch) are all written, in order, each with its values, once a flush returns.
    #[tokio::test]
    async fn every_queued_line_is_written_once() -> anyhow::Result<()> {
        let (s, dir, t) = test_store("signinlog", "corp.test", DomainKind::Managed).await?;
        let passed_over = vec![Uuid::new_v4(), Uuid::new_v4()];
        let mut n = 0;
        for burst in [1, 63, 64, 65, 700] {
            for _ in 0..burst {
                n += 1;
                let other = if n == 100 {
                    passed_over.clone()
                } else {
                    Vec::new()
                };
                s.log_sign_in(t, &line(n, other)).await?;
            }
            s.flush_sign_ins().await;
            let (count, max): (i64, i64) =
                sqlx::query_as("SELECT COUNT(*), MAX(time_ms) FROM signins WHERE tenant_id = ?")
                    .bind(t.to_string())
                    .fetch_one(&s.pool)
                    .await?;
            assert_eq!((count, max), (n, n), "after a burst of {burst}");
        }
        let row: (String, Option<String>, Option<String>, Option<i64>) = sqlx::query_as(
            "SELECT username, client_id, other_agents, latency_ms FROM signins WHERE time_ms = 100",
        )
        .fetch_one(&s.pool)
        .await?;
        let joined = format!("{},{}", passed_over[0], passed_over[1]);
        assert_eq!(
            row,
            (
                "u100@corp.test".into(),
                Some("app".into()),
                Some(joined),
                Some(100)
            )
        );
        std::fs::remove_dir_all(dir)?;
        Ok(())
    }
}
