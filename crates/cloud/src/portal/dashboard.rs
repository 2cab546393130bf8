//! The dashboard: sign-ins per minute by result over the last hour, failures by reason,
//! pass-through latency percentiles and one card per agent.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use maud::{html, Markup};

use super::auth::{server_error, signed_in, Ctx};
use super::layout::{self, aadsts_text, hh_mm, text, time_s, win32_text};
use super::svg::{horizontal_bars, percentile, stacked_bars, Series};
use crate::admin_api::ops;
use crate::clock::unix_ms;
use crate::state::Shared;
use crate::sts::BaseUrl;

/// Minutes the sign-in chart covers.
const MINUTES: i64 = 60;
/// At most this many latencies are read for the percentiles.
const LATENCY_SAMPLE: i64 = 10_000;

/// The colour of a result in the charts.
fn color(result: &str) -> &'static str {
    match result {
        "success" => "#107c10",
        "failure" => "#c50f1f",
        _ => "#8a8886",
    }
}

/// One agent as the cards and the agents page show it.
#[derive(Debug, Clone)]
pub struct AgentView {
    pub id: String,
    pub host: String,
    pub version: String,
    pub status: String,
    pub in_flight: u64,
    pub served: u64,
    pub last_seen: Option<i64>,
    pub source_ip: Option<String>,
    pub cert_expires_at: i64,
    pub forests: Vec<String>,
    /// Domain controllers the agent reported, and those of them it skips (down).
    pub dcs: usize,
    pub dcs_down: Vec<String>,
    /// Median round trip of its recent answers, ms.
    pub latency_p50: Option<f64>,
    /// Denials and errors it reported, in all.
    pub failures: u64,
}

/// The tenant's agents with their live state (as `GET /admin/agents` reports it).
pub(crate) async fn agent_views(state: &Shared, ctx: &Ctx) -> Result<Vec<AgentView>, Response> {
    let agents = crate::admin_api::agents::agents(state, ctx.t.id)
        .await
        .map_err(server_error)?;
    Ok(agents
        .into_iter()
        .map(|a| AgentView {
            id: a.id.to_string(),
            host: a.host,
            version: a.version,
            status: a.status,
            in_flight: a.in_flight,
            served: a.requests_served,
            last_seen: a.last_seen,
            source_ip: a.source_ip,
            cert_expires_at: a.cert_expires_at,
            forests: a.forests,
            dcs_down: a
                .domain_controllers
                .iter()
                .filter(|d| !d.up)
                .map(|d| d.url.clone())
                .collect(),
            dcs: a.domain_controllers.len(),
            latency_p50: a.round_trip_ms.p50,
            failures: a.failures.values().sum::<u64>() + a.errors.values().sum::<u64>(),
        })
        .collect())
}

fn status_class(status: &str) -> &'static str {
    match status {
        "Active" => "ok",
        "Revoked" => "bad",
        _ => "muted",
    }
}

fn cards(agents: &[AgentView]) -> Markup {
    html! {
        @if agents.is_empty() {
            p class="empty" { "No authentication agent is registered." }
        } @else {
            div class="cards" {
                @for a in agents {
                    div class="card agent" {
                        h2 { (a.host) }
                        p class=(status_class(&a.status)) { strong { (a.status) } }
                        dl class="kv" {
                            dt { "Version" } dd { (a.version) }
                            dt { "In flight" } dd { (a.in_flight) }
                            dt { "Served" } dd { (a.served) }
                            dt { "Domain controllers" }
                            dd {
                                @if a.dcs == 0 {
                                    "-"
                                } @else {
                                    (a.dcs - a.dcs_down.len()) " of " (a.dcs) " up"
                                }
                            }
                            dt { "Last seen" }
                            dd { (a.last_seen.map(time_s).unwrap_or_else(|| "never".into())) }
                        }
                    }
                }
            }
        }
    }
}

fn latency_row(name: &str, mut values: Vec<i64>) -> Vec<Markup> {
    values.sort_unstable();
    let p = |q| {
        text(
            &percentile(&values, q)
                .map(|v| format!("{v} ms"))
                .unwrap_or_else(|| "-".into()),
        )
    };
    vec![text(name), html! { (values.len()) }, p(50), p(90), p(99)]
}

/// `GET /{tenant}/portal/`
pub async fn page(
    State(state): State<Shared>,
    Path(tenant): Path<String>,
    BaseUrl(base): BaseUrl,
    headers: HeaderMap,
) -> Response {
    let ctx = match signed_in(&state, &tenant, &base, &headers, ops::LIST_SIGNINS.roles).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let now_ms = unix_ms();
    let last_minute = now_ms.div_euclid(60_000);
    let first_minute = last_minute - MINUTES + 1;
    let hour_ago = first_minute * 60_000;
    let per_minute = match state.store.sign_ins_per_minute(ctx.t.id, hour_ago).await {
        Ok(v) => v,
        Err(e) => return server_error(e),
    };
    let mut results: Vec<String> = vec!["success".into(), "failure".into()];
    for m in &per_minute {
        if !results.contains(&m.result) {
            results.push(m.result.clone());
        }
    }
    let series: Vec<Series> = results
        .iter()
        .map(|r| {
            let mut values = vec![0u64; MINUTES as usize];
            for m in per_minute.iter().filter(|m| &m.result == r) {
                if let Some(slot) = values.get_mut((m.minute - first_minute) as usize) {
                    *slot += m.count.max(0) as u64;
                }
            }
            Series {
                name: r.clone(),
                color: color(r),
                values,
            }
        })
        .collect();
    let labels: Vec<String> = (first_minute..=last_minute).map(hh_mm).collect();
    // The chart's numbers as a table (for screen readers, and to read exact counts): the
    // minutes that had sign-ins, one column per result.
    let mut head: Vec<&str> = vec!["Minute (UTC)"];
    head.extend(results.iter().map(String::as_str));
    let minute_rows: Vec<Vec<maud::Markup>> = (0..labels.len())
        .filter(|i| {
            series
                .iter()
                .any(|s| s.values.get(*i).copied().unwrap_or(0) > 0)
        })
        .map(|i| {
            let mut row = vec![layout::text(&labels[i])];
            row.extend(series.iter().map(|s| {
                let n = s.values.get(i).copied().unwrap_or(0);
                maud::html! { (n) }
            }));
            row
        })
        .collect();
    let minute_table = layout::table(
        "signins-per-minute",
        &head,
        &minute_rows,
        "No sign-ins in the last 60 minutes.",
    );
    let chart = stacked_bars(
        "Sign-ins per minute by result, last 60 minutes (UTC)",
        "sign-ins",
        &labels,
        10,
        &series,
        "No sign-ins in the last 60 minutes",
    );
    let day_ago = now_ms - 24 * 3_600_000;
    let failures = match state.store.failures_by_reason(ctx.t.id, day_ago, 12).await {
        Ok(v) => v,
        Err(e) => return server_error(e),
    };
    let reasons: Vec<(String, u64)> = failures
        .iter()
        .map(|f| {
            let mut label = f
                .aadsts
                .map(aadsts_text)
                .unwrap_or_else(|| "No AADSTS code".into());
            if let Some(w) = f.win32 {
                label.push_str(&format!(" ({})", win32_text(w)));
            }
            (label, f.count.max(0) as u64)
        })
        .collect();
    let failure_chart = horizontal_bars(
        "Failed sign-ins by reason, last 24 hours",
        &reasons,
        "#c50f1f",
        "No failed sign-ins in the last 24 hours.",
    );
    let (pta, all) = match (
        state
            .store
            .sign_in_latencies(ctx.t.id, hour_ago, true, LATENCY_SAMPLE)
            .await,
        state
            .store
            .sign_in_latencies(ctx.t.id, hour_ago, false, LATENCY_SAMPLE)
            .await,
    ) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => return server_error(e),
    };
    let latency = layout::table(
        "latency",
        &["Sign-ins", "Count", "p50", "p90", "p99"],
        &[
            latency_row("Pass-through", pta),
            latency_row("All sign-ins", all),
        ],
        "",
    );
    let agents = match agent_views(&state, &ctx).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let body = html! {
        h1 { "Dashboard" }
        div class="grid" {
            section class="card" id="signins-chart" {
                h2 { "Sign-ins per minute by result" }
                p class="muted" { "Last 60 minutes, UTC" }
                (chart)
                details id="signins-table" {
                    summary { "The same as a table" }
                    (minute_table)
                }
            }
            section class="card" id="failures" {
                h2 { "Failures by reason" }
                p class="muted" { "Last 24 hours" }
                (failure_chart)
            }
            section class="card" id="latency-card" {
                h2 { "Pass-through latency" }
                p class="muted" { "Last 60 minutes" }
                (latency)
            }
        }
        h2 class="section" { "Agent health" }
        (cards(&agents))
    };
    layout::page(StatusCode::OK, &ctx, "", "Dashboard", body)
}
