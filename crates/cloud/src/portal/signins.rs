//! The sign-in log with filters (user, result, since) and its CSV export.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::{html, Markup};
use serde::Deserialize;

use super::auth::{server_error, signed_in};
use super::layout::{self, aadsts_text, text, time_ms, win32_text};
use crate::admin_api::ops;
use crate::clock::unix_ms;
use crate::state::Shared;
use crate::store::admin::SignInFilter;
use crate::sts::BaseUrl;

/// Lines shown on the page.
const PAGE_LINES: i64 = 200;
/// Lines in one CSV export.
const CSV_LINES: i64 = 50_000;
/// The choices of the `since` filter: value, label, milliseconds (0: everything).
const SINCE: &[(&str, &str, i64)] = &[
    ("1h", "Last hour", 3_600_000),
    ("24h", "Last 24 hours", 86_400_000),
    ("7d", "Last 7 days", 7 * 86_400_000),
    ("30d", "Last 30 days", 30 * 86_400_000),
    ("all", "Everything kept", 0),
];

/// The filters as typed.
#[derive(Debug, Deserialize, Default, Clone)]
pub struct LogQuery {
    #[serde(default)]
    user: String,
    #[serde(default)]
    result: String,
    #[serde(default)]
    since: String,
}

impl LogQuery {
    fn since(&self) -> &'static (&'static str, &'static str, i64) {
        SINCE
            .iter()
            .find(|(v, _, _)| *v == self.since)
            .unwrap_or(&SINCE[1])
    }

    fn filter(&self, limit: i64) -> SignInFilter {
        let opt = |s: &str| {
            let s = s.trim();
            (!s.is_empty()).then(|| s.to_string())
        };
        let (_, _, ms) = self.since();
        SignInFilter {
            user: opt(&self.user),
            result: opt(&self.result).map(|r| {
                r.trim_start_matches("AADSTS")
                    .trim_start_matches("aadsts")
                    .to_string()
            }),
            since_ms: (*ms > 0).then(|| unix_ms() - ms),
            until_ms: None,
            limit,
        }
    }

    fn query_string(&self) -> String {
        url::form_urlencoded::Serializer::new(String::new())
            .append_pair("user", self.user.trim())
            .append_pair("result", self.result.trim())
            .append_pair("since", self.since().0)
            .finish()
    }
}

/// The signed-in reader of the log and the lines its filter selects, at most `limit`.
async fn signed_in_lines(
    state: &Shared,
    tenant: &str,
    base: &str,
    headers: &HeaderMap,
    q: &LogQuery,
    limit: i64,
) -> Result<(super::auth::Ctx, Vec<crate::store::SignIn>), Response> {
    let ctx = signed_in(state, tenant, base, headers, ops::LIST_SIGNINS.roles).await?;
    let lines = state
        .store
        .sign_ins_filtered(ctx.t.id, &q.filter(limit))
        .await
        .map_err(server_error)?;
    Ok((ctx, lines))
}

/// `GET /{tenant}/portal/signins?user=&result=&since=`
pub async fn page(
    State(state): State<Shared>,
    Path(tenant): Path<String>,
    BaseUrl(base): BaseUrl,
    headers: HeaderMap,
    Query(q): Query<LogQuery>,
) -> Response {
    let (ctx, lines) = match signed_in_lines(&state, &tenant, &base, &headers, &q, PAGE_LINES).await
    {
        Ok(x) => x,
        Err(r) => return r,
    };
    let rows: Vec<Vec<Markup>> = lines
        .iter()
        .map(|s| {
            vec![
                text(&time_ms(s.time_ms)),
                text(&s.username),
                if s.result == "success" {
                    html! { span class="ok" { "success" } }
                } else {
                    html! { span class="bad" { (s.result) } }
                },
                text(&s.aadsts.map(aadsts_text).unwrap_or_default()),
                text(&s.win32.map(win32_text).unwrap_or_default()),
                text(&s.latency_ms.map(|l| format!("{l} ms")).unwrap_or_default()),
                text(s.client_id.as_deref().unwrap_or("")),
                text(&s.agent_id.map(|a| a.to_string()).unwrap_or_default()),
                text(s.client_ip.as_deref().unwrap_or("")),
                text(&s.correlation_id),
            ]
        })
        .collect();
    let t = &ctx.t.name;
    let since = q.since().0;
    let body = html! {
        h1 { "Sign-in log" }
        form class="filters" method="get" action={ "/" (t) "/portal/signins" } {
            label { "User" input type="text" name="user" id="user" value=(q.user.trim()) placeholder="user@domain"; }
            label { "Result" input type="text" name="result" id="result" value=(q.result.trim()) placeholder="success, failure or 50126"; }
            label {
                "Since"
                select name="since" id="since" {
                    @for (v, label, _) in SINCE {
                        option value=(v) selected[*v == since] { (label) }
                    }
                }
            }
            button type="submit" class="primary" { "Filter" }
        }
        p {
            a id="csv" href={ "/" (t) "/portal/signins.csv?" (q.query_string()) } { "Download as CSV" }
            " "
            span class="muted" { "(" (lines.len()) " lines shown, newest first, at most " (PAGE_LINES) ")" }
        }
        (layout::table(
            "signins",
            &["Time", "User", "Result", "Error", "Win32", "Latency", "App", "Agent", "IP", "Correlation id"],
            &rows,
            "No sign-in matches these filters.",
        ))
    };
    layout::page(StatusCode::OK, &ctx, "signins", "Sign-in log", body)
}

/// `GET /{tenant}/portal/signins.csv?user=&result=&since=`
pub async fn csv(
    State(state): State<Shared>,
    Path(tenant): Path<String>,
    BaseUrl(base): BaseUrl,
    headers: HeaderMap,
    Query(q): Query<LogQuery>,
) -> Response {
    let (_, lines) = match signed_in_lines(&state, &tenant, &base, &headers, &q, CSV_LINES).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let mut r = (StatusCode::OK, crate::admin_api::signins::to_csv(&lines)).into_response();
    layout::secure(&mut r, "'none'");
    let h = r.headers_mut();
    h.insert(
        "content-type",
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    h.insert(
        "content-disposition",
        HeaderValue::from_static("attachment; filename=\"signins.csv\""),
    );
    r
}
