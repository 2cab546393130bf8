//! The sign-in log's writer. A sign-in queues its line and goes on; one task writes the
//! queued lines in batches, one transaction each, so the log costs a sign-in neither a
//! store round trip nor a commit of its own. Every read of the log first waits for the lines
//! queued before it ([`Store::flush_sign_ins`]), so a reader always sees what came before;
//! [`Store::close`] writes what is left.

use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use super::{SignIn, Store};

/// Lines the queue holds before a sign-in waits for the writer.
const QUEUE: usize = 10_000;
/// Lines written in one transaction at most.
const BATCH: usize = 512;

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
            let mut lines = Vec::new();
            let mut flushes = Vec::new();
            let mut next = Some(first);
            while let Some(q) = next.take() {
                match q {
                    Queued::Line(tenant, line) => lines.push((tenant, line)),
                    Queued::Flush(done) => flushes.push(done),
                }
                if lines.len() < BATCH {
                    next = rx.try_recv().ok();
                }
            }
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

    /// Writes lines in one transaction.
    pub(crate) async fn write_sign_ins(&self, lines: &[(Uuid, Box<SignIn>)]) -> super::Result<()> {
        let mut tx = self.pool.begin().await?;
        for (tenant_id, s) in lines {
            sqlx::query(
                "INSERT INTO signins (tenant_id, time_ms, username, client_id, result, aadsts, win32, agent_id, other_agents, latency_ms, correlation_id, client_ip)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(tenant_id.to_string())
            .bind(s.time_ms)
            .bind(&s.username)
            .bind(&s.client_id)
            .bind(&s.result)
            .bind(s.aadsts.map(i64::from))
            .bind(s.win32.map(i64::from))
            .bind(s.agent_id.map(|a| a.to_string()))
            .bind((!s.other_agents.is_empty()).then(|| {
                s.other_agents
                    .iter()
                    .map(Uuid::to_string)
                    .collect::<Vec<_>>()
                    .join(",")
            }))
            .bind(s.latency_ms)
            .bind(&s.correlation_id)
            .bind(&s.client_ip)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}
