//! The audit log: filters (period, administrator, operation, target), pages, and its CSV
//! export.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::{html, Markup};
use passthru_admin::api::AuditQuery;
use serde::Deserialize;

use super::auth::{server_error, signed_in, Ctx};
use super::layout::{self, text, time_ms};
use crate::admin_api::audit_log;
use crate::admin_api::ops;
use crate::state::Shared;
use crate::store::AuditEntry;
use crate::sts::BaseUrl;

/// Entries on a page.
const PAGE: i64 = 50;
/// Entries in one CSV export.
const CSV_ENTRIES: i64 = 1000;

/// The filters as typed.
#[derive(Debug, Deserialize, Default, Clone)]
pub struct Filters {
    #[serde(default)]
    since: String,
    #[serde(default)]
    actor: String,
    #[serde(default)]
    operation: String,
    #[serde(default)]
    target: String,
    #[serde(default)]
    after: String,
}

impl Filters {
    fn query(&self, top: i64) -> AuditQuery {
        let opt = |s: &str| Some(s.trim().to_string()).filter(|s| !s.is_empty());
        AuditQuery {
            since: opt(&self.since),
            until: None,
            actor: opt(&self.actor),
            operation: opt(&self.operation),
            target: opt(&self.target),
            top: Some(top),
            skiptoken: opt(&self.after),
            format: None,
        }
    }

    fn query_string(&self) -> String {
        url::form_urlencoded::Serializer::new(String::new())
            .append_pair("since", self.since.trim())
            .append_pair("actor", self.actor.trim())
            .append_pair("operation", self.operation.trim())
            .append_pair("target", self.target.trim())
            .finish()
    }
}

async fn entries(
    state: &Shared,
    tenant: &str,
    base: &str,
    headers: &HeaderMap,
    f: &Filters,
    top: i64,
) -> Result<(Ctx, Result<Vec<AuditEntry>, String>, i64), Response> {
    let ctx = signed_in(state, tenant, base, headers, ops::LIST_AUDIT.roles).await?;
    let filter = match audit_log::filter(&f.query(top), crate::clock::unix_ms()) {
        Ok(x) => x,
        Err(e) => return Ok((ctx, Err(e.description), top)),
    };
    let found = state
        .store
        .audit_entries(ctx.t.id, &filter)
        .await
        .map_err(server_error)?;
    Ok((ctx, Ok(found), filter.limit))
}

fn status_cell(status: u16) -> Markup {
    if (200..300).contains(&status) {
        html! { span class="ok" { "\u{2714} done (" (status) ")" } }
    } else {
        html! { span class="bad" { "\u{2716} refused (" (status) ")" } }
    }
}

/// `GET /{tenant}/portal/audit`
pub async fn page(
    State(state): State<Shared>,
    Path(tenant): Path<String>,
    BaseUrl(base): BaseUrl,
    headers: HeaderMap,
    Query(f): Query<Filters>,
) -> Response {
    let (ctx, found, limit) = match entries(&state, &tenant, &base, &headers, &f, PAGE).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let (found, error) = match found {
        Ok(e) => (e, None),
        Err(e) => (Vec::new(), Some(e)),
    };
    let rows: Vec<Vec<Markup>> = found
        .iter()
        .map(|e| {
            vec![
                text(&time_ms(e.time_ms)),
                text(&e.actor),
                text(&e.via),
                text(e.client_ip.as_deref().unwrap_or("")),
                text(&e.operation),
                text(&e.target),
                status_cell(e.status),
                html! {
                    details {
                        summary { "Before and after" }
                        dl class="kv" {
                            dt { "Request" } dd { code { (e.request.as_deref().unwrap_or("-")) } }
                            dt { "Before" } dd { code { (e.before.as_deref().unwrap_or("-")) } }
                            dt { "After" } dd { code { (e.after.as_deref().unwrap_or("-")) } }
                            dt { "Correlation id" } dd { (e.correlation_id) }
                        }
                    }
                },
            ]
        })
        .collect();
    let t = &ctx.t.name;
    let next = audit_log::next_token(&found, limit);
    let body = html! {
        h1 { "Audit log" }
        p class="muted" { "Every change made by an administrator, through the portal, the CLI or the admin API; kept " (ctx.t.settings.audit_retention_days) " days." }
        form class="filters" method="get" action={ "/" (t) "/portal/audit" } {
            label { "Since (date or age: 2026-12-01, 24h, 7d)" input type="text" name="since" id="since" value=(f.since.trim()); }
            label { "Administrator (UPN)" input type="text" name="actor" id="actor" value=(f.actor.trim()); }
            label {
                "Operation"
                select name="operation" id="operation" {
                    option value="" { "Any" }
                    @for op in ops::ALL.iter().filter(|o| o.method != "GET") {
                        option value=(op.id) selected[f.operation.trim() == op.id] { (op.id) }
                    }
                }
            }
            label { "Target contains" input type="text" name="target" id="target" value=(f.target.trim()); }
            button type="submit" class="primary" { "Filter" }
        }
        @if let Some(e) = &error {
            p class="error" role="alert" id="error" { (e) }
        }
        p { a id="csv" href={ "/" (t) "/portal/audit.csv?" (f.query_string()) } { "Download as CSV" } }
        (layout::table(
            "audit",
            &["Time", "Administrator", "Through", "From", "Operation", "Target", "Result", "Details"],
            &rows,
            "No change matches these filters.",
        ))
        (layout::pager(
            &format!("/{t}/portal/audit?{}", f.query_string()),
            f.after.trim().is_empty(),
            next.as_deref(),
        ))
    };
    layout::page(StatusCode::OK, &ctx, "audit", "Audit log", body)
}

/// `GET /{tenant}/portal/audit.csv`
pub async fn csv(
    State(state): State<Shared>,
    Path(tenant): Path<String>,
    BaseUrl(base): BaseUrl,
    headers: HeaderMap,
    Query(f): Query<Filters>,
) -> Response {
    let found = match entries(&state, &tenant, &base, &headers, &f, CSV_ENTRIES).await {
        Ok((_, Ok(e), _)) => e,
        Ok((ctx, Err(e), _)) => {
            return layout::page(
                StatusCode::BAD_REQUEST,
                &ctx,
                "audit",
                "Audit log",
                html! { p class="error" role="alert" { (e) } },
            )
        }
        Err(r) => return r,
    };
    let mut r = (StatusCode::OK, audit_log::to_csv(&found)).into_response();
    layout::secure(&mut r, "'none'");
    let h = r.headers_mut();
    h.insert(
        "content-type",
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    h.insert(
        "content-disposition",
        HeaderValue::from_static("attachment; filename=\"audit.csv\""),
    );
    r
}
