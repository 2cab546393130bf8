//! The sign-in log's writer. A sign-in queues its line and goes on; one task writes the
//! queued lines in batches, one transaction each, so the log costs a sign-in neither a
//! store round trip nor a commit of its own. Every read of the log first waits for the lines
//! queued before it ([`Store::flush_sign_ins`]), so a reader always sees what came before;
//! [`Store::close`] writes what is left.

use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use std::sync::Arc;

use super::{Backend, SignIn, Store};

/// Lines the queue holds before a sign-in waits for the writer.
const QUEUE: usize = 10_000;
/// Lines written in one transaction at most.
const BATCH: usize = 512;
/// How long the writer waits for more lines after the first of a batch: at a few hundred
/// sign-ins a second, one write carries a dozen or more, instead of each sign-in costing
/// the store a statement and a commit (and, with SQLite, every other connection its page
/// cache: a commit makes them read their pages again). A reader of the log never waits for
/// it (it flushes first); a crash loses at most this much of the log.
const LINGER: std::time::Duration = std::time::Duration::from_millis(50);

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

/// Starts the writer task, which writes to `backend`.
pub(crate) fn start(backend: Arc<dyn Backend>) -> Writer {
    let (tx, mut rx) = mpsc::channel::<Queued>(QUEUE);
    tokio::spawn(async move {
        while let Some(first) = rx.recv().await {
            let (lines, flushes) = gather(first, &mut rx).await;
            if !lines.is_empty() {
                if let Err(e) = backend.write_sign_ins(&lines).await {
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
    /// Queues a line of the sign-in log (written within [`LINGER`], in a batch).
    pub async fn log_sign_in(&self, tenant_id: Uuid, s: &SignIn) -> super::Result<()> {
        let line = Box::new(s.clone());
        match self
            .sign_in_writer
            .send(Queued::Line(tenant_id, line))
            .await
        {
            Ok(()) => Ok(()),
            // The writer is gone (the runtime is shutting down): write it here.
            Err(mpsc::error::SendError(Queued::Line(t, line))) => {
                self.backend.write_sign_ins(&[(t, line)]).await
            }
            Err(_) => Ok(()),
        }
    }

    /// Waits until every line queued before this call is written.
    pub async fn flush_sign_ins(&self) {
        let (done, written) = oneshot::channel();
        if self.sign_in_writer.send(Queued::Flush(done)).await.is_ok() {
            let _ = written.await;
        }
    }
}
