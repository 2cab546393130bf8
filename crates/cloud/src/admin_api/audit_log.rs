//! Reading the audit log: filters, pages, JSON or CSV (written by [`super::audit`]).

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::Json;
use passthru_admin::api;

use super::signins::{csv_cell, parse_time};
use super::{authorize, ops};
use crate::oauth_error::ApiError;
use crate::state::Shared;
use crate::store::{AuditEntry, AuditFilter};

/// The filter of a query, validated.
pub fn filter(q: &api::AuditQuery, now_ms: i64) -> Result<AuditFilter, ApiError> {
    let limit = q.top.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad_request("top must be 1 to 1000."));
    }
    let text = |v: &Option<String>| {
        v.as_deref()
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(|v| v.chars().take(256).collect::<String>())
    };
    let time = |v: &Option<String>| {
        v.as_deref()
            .filter(|v| !v.trim().is_empty())
            .map(|s| parse_time(s, now_ms))
            .transpose()
            .map_err(ApiError::bad_request)
    };
    let before_id = match text(&q.skiptoken) {
        Some(t) => Some(t.parse::<i64>().map_err(|_| {
            ApiError::bad_request("skiptoken is not one this API gave: pass next_skiptoken as is.")
        })?),
        None => None,
    };
    Ok(AuditFilter {
        since_ms: time(&q.since)?,
        until_ms: time(&q.until)?,
        actor: text(&q.actor),
        operation: text(&q.operation),
        target: text(&q.target),
        before_id,
        limit,
    })
}

/// An entry as the API shows it.
pub fn entry_json(e: &AuditEntry) -> api::AuditEntry {
    let json = |s: &Option<String>| {
        s.as_deref().map(|s| {
            serde_json::from_str(s).unwrap_or_else(|_| serde_json::Value::String(s.to_string()))
        })
    };
    api::AuditEntry {
        id: e.id,
        time: crate::clock::rfc3339(e.time_ms.div_euclid(1000)),
        time_ms: e.time_ms,
        actor_id: e.actor_id,
        actor: e.actor.clone(),
        client_ip: e.client_ip.clone(),
        via: e.via.clone(),
        operation: e.operation.clone(),
        target: e.target.clone(),
        status: e.status,
        correlation_id: e.correlation_id.clone(),
        request: json(&e.request),
        before: json(&e.before),
        after: json(&e.after),
    }
}

/// The entries as CSV, header first.
pub fn to_csv(entries: &[AuditEntry]) -> String {
    let mut out = String::from(
        "time,actor,via,client_ip,operation,target,status,correlation_id,request,before,after\r\n",
    );
    for e in entries {
        let cells = [
            crate::clock::rfc3339(e.time_ms.div_euclid(1000)),
            e.actor.clone(),
            e.via.clone(),
            e.client_ip.clone().unwrap_or_default(),
            e.operation.clone(),
            e.target.clone(),
            e.status.to_string(),
            e.correlation_id.clone(),
            e.request.clone().unwrap_or_default(),
            e.before.clone().unwrap_or_default(),
            e.after.clone().unwrap_or_default(),
        ];
        let line: Vec<String> = cells.iter().map(|c| csv_cell(c)).collect();
        out.push_str(&line.join(","));
        out.push_str("\r\n");
    }
    out
}

/// The continuation token of a page whose last entry is `entries.last()`, when the page is
/// full.
pub fn next_token(entries: &[AuditEntry], limit: i64) -> Option<String> {
    (entries.len() as i64 == limit)
        .then(|| entries.last().map(|e| e.id.to_string()))
        .flatten()
}

/// `GET /{tenant}/admin/audit?since=&until=&actor=&operation=&target=&top=&skiptoken=&format=`
#[utoipa::path(
    get,
    path = "/audit",
    operation_id = ops::LIST_AUDIT.id,
    summary = ops::LIST_AUDIT.summary,
    params(api::AuditQuery),
    responses((status = 200, description = "Done.", content((api::AuditList = "application/json"), (String = "text/csv"))))
)]
pub async fn list(
    State(state): State<Shared>,
    Path(tenant): Path<String>,
    Query(q): Query<api::AuditQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (t, _) = authorize(&state, &tenant, &headers, ops::LIST_AUDIT).await?;
    let f = filter(&q, crate::clock::unix_ms())?;
    let entries = state.store.audit_entries(t.id, &f).await?;
    match q.format.as_deref().unwrap_or("json") {
        "json" => Ok(Json(api::AuditList {
            entries: entries.iter().map(entry_json).collect(),
            retention_days: t.settings.audit_retention_days,
            next_skiptoken: next_token(&entries, f.limit),
        })
        .into_response()),
        "csv" => Ok((
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
                (
                    header::CONTENT_DISPOSITION,
                    format!("attachment; filename=\"audit-{}.csv\"", t.name),
                ),
            ],
            to_csv(&entries),
        )
            .into_response()),
        _ => Err(ApiError::bad_request("format must be json or csv.")),
    }
}
