//! One connection's life: wait for `Welcome`, say `Hello`, then validate each `Validate`
//! concurrently (bounded by a semaphore), answering through one writer task; ping every
//! heartbeat and give up after two silent intervals; on shutdown, say `Draining`, finish the
//! validations in flight (bounded wait), and close.

use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt as _, StreamExt as _};
use passthru_proto::sync::{SyncBatch, SyncFailed, SyncRun};
use passthru_proto::wire::{AgentToCloud, CloudToAgent, PROTOCOL_VERSION};
use passthru_proto::{Outcome, SealedRequest};
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::{Instant, MissedTickBehavior};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;

use crate::admission::Admission;
use crate::clock;
use crate::connect::{classify_ws_error, AgentSocket, Endpoint};
use crate::link_error::LinkError;
use crate::stats::AgentStats;
use crate::trace_log::TraceLog;
use crate::validation::validate_remembering;
use crate::validator::Validator;

/// How long the cloud has to send `Welcome` after the upgrade.
pub const WELCOME_TIMEOUT: Duration = Duration::from_secs(15);
/// How long one frame may take to send.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a drain waits for validations in flight.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// Heartbeat when the cloud's `Welcome` says 0.
pub const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(10);
/// Frames waiting for the writer.
const OUTBOX: usize = 1024;

/// What the agent announces in `Hello`.
#[derive(Debug, Clone)]
pub struct HelloInfo {
    /// The agent's version.
    pub version: String,
    /// The agent's host name.
    pub host: String,
    /// Every forest's UPN suffixes, lower case.
    pub upn_suffixes: Vec<String>,
    /// The forests this agent can sync.
    pub sync_forests: Vec<passthru_proto::sync::SyncForest>,
}

/// What every connection of the process shares.
#[derive(Debug)]
pub struct AgentContext<V> {
    /// Request checks and the replay cache (shared across reconnects).
    pub admission: Admission,
    /// The directory.
    pub validator: V,
    /// Bounds validations running at once.
    pub limit: Arc<Semaphore>,
    /// Where failures are traced.
    pub trace: TraceLog,
    /// What to say in `Hello`.
    pub hello: HelloInfo,
    /// Clock difference to the cloud worth a warning at connect.
    pub skew_tolerance: Duration,
    /// The agent's own counters, reported to the cloud every heartbeat.
    pub stats: AgentStats,
    /// Recent wrong passwords, by user (keyed digests, in memory only).
    pub wrong_passwords: crate::wrong_passwords::WrongPasswords,
    /// The agent's credentials over time, when it renews its certificate (`None`: never,
    /// as in tests that connect with fixed credentials).
    pub renewal: Option<crate::renewal::Renewal>,
    /// Signed auto-update, when on (`None`: the agent never asks for a release).
    pub updater: Option<Arc<crate::update::Updater>>,
    /// The admin log (connection changes, renewal).
    pub admin_log: crate::admin_log::AdminLog,
}

/// How a session ended without an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SessionEnd {
    /// Shutdown was asked: the agent drained and closed the connection.
    Drained,
    /// The certificate was renewed: the agent drained and closed the connection, to connect
    /// again with the renewed certificate.
    Renewed,
}

type Sink = SplitSink<AgentSocket, Message>;
type Stream = SplitStream<AgentSocket>;

fn text(message: &AgentToCloud) -> Option<Message> {
    serde_json::to_string(message).ok().map(Message::text)
}

/// Reads frames until a cloud message arrives.
async fn next_message(stream: &mut Stream, endpoint: &Endpoint) -> Result<CloudToAgent, LinkError> {
    loop {
        match stream.next().await {
            None => {
                return Err(LinkError::Closed {
                    detail: "the cloud closed the connection".into(),
                })
            }
            Some(Err(e)) => return Err(classify_ws_error(endpoint, e)),
            Some(Ok(Message::Text(t))) => {
                return serde_json::from_str(t.as_str()).map_err(|e| LinkError::Protocol {
                    detail: format!("unreadable message from the cloud: {e}"),
                })
            }
            Some(Ok(Message::Close(frame))) => {
                return Err(LinkError::Closed {
                    detail: close_detail(frame.as_ref()),
                })
            }
            Some(Ok(_)) => {}
        }
    }
}

fn close_detail(frame: Option<&CloseFrame>) -> String {
    match frame {
        Some(f) if !f.reason.is_empty() => format!("the cloud closed the connection: {}", f.reason),
        _ => "the cloud closed the connection".to_string(),
    }
}

/// Frames written at once, at most.
const WRITE_BATCH: usize = 64;

/// Writes `first` and whatever else is already in the outbox (up to [`WRITE_BATCH`], never
/// past a Close frame) and flushes once: answers ready together share one TLS write. Returns
/// whether a Close frame was written.
async fn send_queued(
    sink: &mut Sink,
    outbox: &mut mpsc::Receiver<Message>,
    first: Message,
) -> Result<bool, tokio_tungstenite::tungstenite::Error> {
    let mut next = Some(first);
    let mut fed = 0;
    let mut closing = false;
    while let Some(message) = next.take() {
        closing = matches!(message, Message::Close(_));
        sink.feed(message).await?;
        fed += 1;
        if !closing && fed < WRITE_BATCH {
            next = outbox.try_recv().ok();
        }
    }
    sink.flush().await?;
    Ok(closing)
}

/// Sends frames from the outbox, each batch with a time-out; ends after sending a Close frame.
fn spawn_writer(
    mut sink: Sink,
    mut outbox: mpsc::Receiver<Message>,
) -> JoinHandle<Result<(), String>> {
    tokio::spawn(async move {
        while let Some(message) = outbox.recv().await {
            match tokio::time::timeout(WRITE_TIMEOUT, send_queued(&mut sink, &mut outbox, message))
                .await
            {
                Ok(Ok(false)) => {}
                Ok(Ok(true)) => break,
                Ok(Err(e)) => return Err(format!("sending failed: {e}")),
                Err(_) => return Err("sending timed out".to_string()),
            }
        }
        let _ = tokio::time::timeout(WRITE_TIMEOUT, sink.close()).await;
        Ok(())
    })
}

fn outcome_kind(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Success(_) => "success".to_string(),
        Outcome::Denied { win32 } => format!("denied {win32}"),
        Outcome::Error { error } => format!("error {}", error.describe()),
        Outcome::PolicyRefused { refusal } => {
            format!("refused by the password policy ({refusal:?})")
        }
        _ => "other".to_string(),
    }
}

/// Whether the outcome came from the directory (rather than from the admission checks).
fn asked_directory(outcome: &Outcome) -> bool {
    use passthru_proto::AgentError as E;
    match outcome {
        Outcome::Success(_) | Outcome::Denied { .. } | Outcome::PolicyRefused { .. } => true,
        Outcome::Error { error } => matches!(
            error,
            E::DirectoryUnreachable | E::DirectoryTimeout | E::DirectoryError
        ),
        _ => false,
    }
}

/// Validates one request in its own task and queues the answer.
fn spawn_validation<V: Validator>(
    tasks: &mut JoinSet<()>,
    ctx: &Arc<AgentContext<V>>,
    outbox: &mpsc::Sender<Message>,
    request: SealedRequest,
) {
    let ctx = Arc::clone(ctx);
    let outbox = outbox.clone();
    let received = Instant::now();
    tasks.spawn(async move {
        let Ok(_permit) = Arc::clone(&ctx.limit).acquire_owned().await else {
            return;
        };
        let started = Instant::now();
        let validated = validate_remembering(
            &ctx.admission,
            &ctx.validator,
            Some(&ctx.wrong_passwords),
            &request,
            clock::now_ms(),
        )
        .await;
        let outcome = &validated.outcome;
        ctx.stats
            .record(outcome, asked_directory(outcome).then(|| started.elapsed()));
        if let Err(e) = ctx.trace.record(clock::now_utc(), request.request_id, outcome) {
            tracing::error!(error = %e, "cannot write the trace log");
        }
        let agent_micros = u64::try_from(received.elapsed().as_micros()).unwrap_or(u64::MAX);
        tracing::debug!(request = %request.request_id, result = %outcome_kind(outcome), agent_micros, "validated");
        // Authenticated with the key of the context that opened the envelope.
        let answer = validated.answer(request.request_id, agent_micros);
        if let Some(message) = text(&answer) {
            // If the connection is gone the cloud has already given the request to another
            // agent; nothing to do.
            let _ = outbox.send(message).await;
        }
    });
}

/// Runs a sync the cloud asked for: its batches go out as they are read (awaiting room in
/// the outbox), then its end.
fn spawn_sync<V: Validator>(
    syncs: &mut JoinSet<()>,
    ctx: &Arc<AgentContext<V>>,
    outbox: &mpsc::Sender<Message>,
    run: SyncRun,
) {
    let ctx = Arc::clone(ctx);
    let outbox = outbox.clone();
    syncs.spawn(async move {
        let run_id = run.run_id;
        let forest = run.forest.clone();
        let (batches, mut rx) = mpsc::channel::<SyncBatch>(2);
        let forward = async {
            while let Some(batch) = rx.recv().await {
                let Some(m) = text(&AgentToCloud::SyncBatch(batch)) else {
                    continue;
                };
                if outbox.send(m).await.is_err() {
                    break;
                }
            }
        };
        let (result, ()) = tokio::join!(ctx.validator.sync(run, batches), forward);
        let end = match result {
            Ok(done) => AgentToCloud::SyncDone(done),
            Err(error) => {
                tracing::warn!(%forest, %error, "sync run failed");
                AgentToCloud::SyncFailed(SyncFailed { run_id, error })
            }
        };
        if let Some(m) = text(&end) {
            let _ = outbox.send(m).await;
        }
    });
}

/// Serves one connection until it fails (`Err`) or a shutdown drains it (`Ok`).
pub async fn serve<V: Validator>(
    ctx: Arc<AgentContext<V>>,
    endpoint: &Endpoint,
    socket: AgentSocket,
    shutdown: watch::Receiver<bool>,
) -> Result<SessionEnd, LinkError> {
    serve_reporting(ctx, endpoint, socket, shutdown, || {}).await
}

/// [`serve`], calling `connected` once the link is up (the cloud's `Welcome` checked and
/// `Hello` sent).
pub async fn serve_reporting<V: Validator>(
    ctx: Arc<AgentContext<V>>,
    endpoint: &Endpoint,
    socket: AgentSocket,
    mut shutdown: watch::Receiver<bool>,
    connected: impl FnOnce(),
) -> Result<SessionEnd, LinkError> {
    let (mut sink, mut stream) = socket.split();

    let welcome = tokio::time::timeout(WELCOME_TIMEOUT, next_message(&mut stream, endpoint))
        .await
        .map_err(|_| LinkError::Timeout {
            endpoint: endpoint.authority(),
            stage: "waiting for the cloud's welcome",
        })??;
    let heartbeat = match welcome {
        CloudToAgent::Welcome {
            agent_id,
            tenant_id,
            server_time_ms,
            heartbeat_seconds,
        } => {
            let (our_tenant, our_agent) = ctx.admission.identity();
            if agent_id != our_agent || tenant_id != our_tenant {
                return Err(LinkError::NotUs {
                    cloud_agent: agent_id,
                    cloud_tenant: tenant_id,
                    our_agent,
                    our_tenant,
                });
            }
            let skew_ms = clock::now_ms().abs_diff(server_time_ms);
            if u128::from(skew_ms) > ctx.skew_tolerance.as_millis() {
                tracing::warn!(
                    skew_ms,
                    tolerance_s = ctx.skew_tolerance.as_secs(),
                    "this computer's clock differs from the cloud's beyond the tolerance: \
                     requests will fail with AADSTS80013 until the time is synchronised (NTP)"
                );
            }
            if heartbeat_seconds == 0 {
                DEFAULT_HEARTBEAT
            } else {
                Duration::from_secs(heartbeat_seconds.min(3600))
            }
        }
        CloudToAgent::Goodbye { reason } => return Err(LinkError::Goodbye { reason }),
        _ => {
            return Err(LinkError::Protocol {
                detail: "the cloud did not start with a welcome".into(),
            })
        }
    };

    let hello = AgentToCloud::Hello {
        protocol: PROTOCOL_VERSION,
        version: ctx.hello.version.clone(),
        host: ctx.hello.host.clone(),
        upn_suffixes: ctx.hello.upn_suffixes.clone(),
        agent_time_ms: clock::now_ms(),
        sync_forests: ctx.hello.sync_forests.clone(),
        sealed_sessions: true,
    };
    let hello = text(&hello).ok_or_else(|| LinkError::Protocol {
        detail: "cannot encode hello".into(),
    })?;
    match tokio::time::timeout(WRITE_TIMEOUT, sink.send(hello)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(classify_ws_error(endpoint, e)),
        Err(_) => {
            return Err(LinkError::Timeout {
                endpoint: endpoint.authority(),
                stage: "sending hello",
            })
        }
    }
    tracing::info!(
        heartbeat_s = heartbeat.as_secs(),
        "connected to the cloud at {}",
        endpoint.address()
    );
    connected();

    let (outbox, outbox_rx) = mpsc::channel::<Message>(OUTBOX);
    let mut writer = spawn_writer(sink, outbox_rx);
    let mut tasks: JoinSet<()> = JoinSet::new();
    // Sync runs: aborted when the session ends (the cloud gives the lease to another agent).
    let mut syncs: JoinSet<()> = JoinSet::new();
    let mut ticker = tokio::time::interval_at(Instant::now() + heartbeat, heartbeat);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut last_heard = Instant::now();
    // Whether this connection asked for a renewal (the cloud answers one per connection).
    let mut renewal_asked = false;
    ask_renewal(&ctx, &outbox, &mut renewal_asked);
    ask_update(&ctx, &outbox);

    let ended: Result<SessionEnd, LinkError> = loop {
        tokio::select! {
            frame = stream.next() => {
                let message = match frame {
                    None => break Err(LinkError::Closed { detail: "the cloud closed the connection".into() }),
                    Some(Err(e)) => break Err(classify_ws_error(endpoint, e)),
                    Some(Ok(m)) => m,
                };
                last_heard = Instant::now();
                match message {
                    Message::Text(t) => match serde_json::from_str::<CloudToAgent>(t.as_str()) {
                        Ok(CloudToAgent::Validate(request)) => {
                            spawn_validation(&mut tasks, &ctx, &outbox, request);
                        }
                        Ok(CloudToAgent::SyncRun(run)) => spawn_sync(&mut syncs, &ctx, &outbox, run),
                        Ok(CloudToAgent::PasswordChanged { user }) => {
                            tracing::debug!(user = %user, "password changed through the cloud: remembered wrong passwords forgotten");
                            ctx.wrong_passwords.forget(&user);
                        }
                        Ok(CloudToAgent::Goodbye { reason }) => break Err(LinkError::Goodbye { reason }),
                        Ok(CloudToAgent::CertificateRenewed { certificate_pem, not_after }) => {
                            let Some(renewal) = &ctx.renewal else { continue };
                            match renewal.accept(&certificate_pem) {
                                Ok(_) => {
                                    tracing::info!(not_after, "certificate renewed: reconnecting with the renewed certificate");
                                    ctx.admin_log.record("renewal", &format!("the cloud issued a renewed certificate (not after {not_after}, Unix time): reconnecting with it"));
                                    break Ok(SessionEnd::Renewed);
                                }
                                Err(e) => tracing::error!(error = %e, "the renewed certificate was not taken; the current one stays in use"),
                            }
                        }
                        Ok(CloudToAgent::RenewalRefused { reason }) => {
                            tracing::warn!(%reason, "the cloud refused to renew the certificate; the current one stays in use");
                            if let Some(renewal) = &ctx.renewal {
                                renewal.forget_asked();
                            }
                        }
                        Ok(CloudToAgent::UpdateOffer { signed_manifest }) => {
                            if let Some(updater) = &ctx.updater {
                                let tls = ctx.renewal.as_ref().map(|r| r.dial_set().tls);
                                // The download takes the connection's way out (its proxy).
                                updater.offer(signed_manifest, endpoint.address(), tls, endpoint.proxy().cloned());
                            }
                        }
                        Ok(CloudToAgent::NoUpdate { reason }) => tracing::debug!(%reason, "no update"),
                        Ok(_) => tracing::debug!("unexpected message from the cloud ignored"),
                        Err(e) => tracing::warn!(error = %e, "unreadable message from the cloud ignored"),
                    },
                    Message::Close(frame) => break Err(LinkError::Closed { detail: close_detail(frame.as_ref()) }),
                    _ => {}
                }
            }
            _ = ticker.tick() => {
                let silent = last_heard.elapsed();
                if silent >= heartbeat * 2 {
                    break Err(LinkError::Silent { seconds: silent.as_secs() });
                }
                // A full outbox means the writer is stuck; its own time-out will end the link.
                let _ = outbox.try_send(Message::Ping(Default::default()));
                let in_flight = u64::try_from(tasks.len()).unwrap_or(u64::MAX);
                let mut report = ctx.stats.report(in_flight);
                report.domain_controllers = ctx.validator.domain_controllers();
                if let Some(m) = text(&AgentToCloud::Stats(report)) {
                    let _ = outbox.try_send(m);
                }
                ask_renewal(&ctx, &outbox, &mut renewal_asked);
                ask_update(&ctx, &outbox);
            }
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            Some(_) = syncs.join_next(), if !syncs.is_empty() => {}
            written = &mut writer => {
                let detail = match written {
                    Ok(Err(e)) => e,
                    _ => "the writer stopped".to_string(),
                };
                break Err(LinkError::Closed { detail });
            }
            _ = shutdown.wait_for(|stop| *stop) => break Ok(SessionEnd::Drained),
        }
    };

    match ended {
        Err(e) => {
            if let Some(renewal) = &ctx.renewal {
                renewal.forget_asked();
            }
            // Let validations in flight finish on their own (their answers are dropped), so a
            // directory bind is never cut in the middle.
            tasks.detach_all();
            writer.abort();
            Err(e)
        }
        Ok(end) => {
            drain(&ctx, endpoint, &mut stream, &mut tasks, outbox, writer).await;
            Ok(end)
        }
    }
}

/// Asks the cloud to renew the certificate when it is time (once per connection).
fn ask_renewal<V>(ctx: &AgentContext<V>, outbox: &mpsc::Sender<Message>, asked: &mut bool) {
    let Some(renewal) = &ctx.renewal else { return };
    let now = i64::try_from(clock::now_ms() / 1000).unwrap_or(i64::MAX);
    if *asked || !renewal.due(now) {
        return;
    }
    match renewal.ask() {
        Ok(request) => {
            let Some(m) = text(&request) else { return };
            if outbox.try_send(m).is_ok() {
                *asked = true;
                tracing::info!(
                    not_after = renewal.current_validity().not_after,
                    "a third of the certificate's lifetime is left: asking the cloud to renew it"
                );
            } else {
                renewal.forget_asked();
            }
        }
        Err(e) => tracing::error!(error = %e, "cannot make keys for the certificate renewal"),
    }
}

/// Asks the cloud for a release when a check is due.
fn ask_update<V>(ctx: &AgentContext<V>, outbox: &mpsc::Sender<Message>) {
    let Some(updater) = &ctx.updater else { return };
    let Some(check) = updater.check_due(Instant::now()) else {
        return;
    };
    if let Some(m) = text(&check) {
        tracing::debug!("asking the cloud for a release");
        let _ = outbox.try_send(m);
    }
}

/// Says `Draining`, waits (at most [`DRAIN_TIMEOUT`]) for validations in flight, and closes.
async fn drain<V: Validator>(
    ctx: &Arc<AgentContext<V>>,
    endpoint: &Endpoint,
    stream: &mut Stream,
    tasks: &mut JoinSet<()>,
    outbox: mpsc::Sender<Message>,
    writer: JoinHandle<Result<(), String>>,
) {
    tracing::info!(
        in_flight = tasks.len(),
        "draining: no new work; finishing validations in flight"
    );
    if let Some(m) = text(&AgentToCloud::Draining) {
        let _ = outbox.send(m).await;
    }
    let deadline = Instant::now() + DRAIN_TIMEOUT;
    while !tasks.is_empty() {
        tokio::select! {
            _ = tokio::time::sleep_until(deadline) => {
                tracing::warn!(in_flight = tasks.len(), "validations still running after the drain time-out; closing anyway");
                break;
            }
            Some(_) = tasks.join_next() => {}
            frame = stream.next() => match frame {
                Some(Ok(Message::Text(t))) => {
                    // Sent before the cloud saw `Draining`: answer it rather than let it time out.
                    if let Ok(CloudToAgent::Validate(request)) = serde_json::from_str::<CloudToAgent>(t.as_str()) {
                        spawn_validation(tasks, ctx, &outbox, request);
                    }
                }
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => {
                    tracing::info!(endpoint = %endpoint.authority(), "the cloud closed the connection while draining");
                    break;
                }
                Some(Ok(_)) => {}
            }
        }
    }
    tasks.detach_all();
    let close = Message::Close(Some(CloseFrame {
        code: CloseCode::Normal,
        reason: "the agent is stopping".into(),
    }));
    let _ = tokio::time::timeout(WRITE_TIMEOUT, outbox.send(close)).await;
    drop(outbox);
    if tokio::time::timeout(WRITE_TIMEOUT, writer).await.is_err() {
        tracing::warn!("the connection did not close in time");
    }
    tracing::info!("drained and disconnected");
}
