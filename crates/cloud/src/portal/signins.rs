//! The sign-in log: filters (user, result, AADSTS code, app, agent, client address,
//! correlation id, a period or a date range), pages of [`PAGE_LINES`] with a link to the
//! next, apps and agents by name, a page per sign-in with what its codes mean and what to
//! do, and the CSV export of what the filters select.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::{html, Markup};
use serde::Deserialize;

use super::auth::{server_error, signed_in};
use super::layout::{self, aadsts_text, text, time_ms, win32_text};
use crate::admin_api::ops;
use crate::admin_api::signins::Names;
use crate::clock::unix_ms;
use crate::state::Shared;
use crate::store::admin::SignInFilter;
use crate::sts::BaseUrl;

/// Lines shown on a page.
pub(crate) const PAGE_LINES: i64 = 50;
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
    #[serde(default)]
    aadsts: String,
    #[serde(default)]
    app: String,
    #[serde(default)]
    agent: String,
    #[serde(default)]
    ip: String,
    #[serde(default)]
    correlation: String,
    /// A date (`YYYY-MM-DD`): lines on or after it (overrides `since`).
    #[serde(default)]
    from: String,
    /// A date: lines before the end of that day.
    #[serde(default)]
    to: String,
    /// The continuation of the previous page.
    #[serde(default)]
    after: String,
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
        let day = |d: &str| {
            let fmt = time::macros::format_description!("[year]-[month]-[day]");
            time::Date::parse(d.trim(), &fmt)
                .ok()
                .map(|d| d.midnight().assume_utc().unix_timestamp() * 1000)
        };
        let from = day(&self.from);
        let to = day(&self.to).map(|t| t + 86_400_000);
        let after = self.after.split_once('.').and_then(|(t, id)| {
            Some((
                t.trim().parse::<i64>().ok()?,
                id.trim().parse::<i64>().ok()?,
            ))
        });
        SignInFilter {
            aadsts: opt(&self.aadsts).and_then(|c| {
                c.trim_start_matches("AADSTS")
                    .trim_start_matches("aadsts")
                    .parse::<i64>()
                    .ok()
            }),
            client_id: opt(&self.app),
            agent_id: opt(&self.agent).and_then(|a| uuid::Uuid::parse_str(&a).ok()),
            client_ip: opt(&self.ip),
            correlation_id: opt(&self.correlation),
            after,
            user: opt(&self.user),
            result: opt(&self.result).map(|r| {
                r.trim_start_matches("AADSTS")
                    .trim_start_matches("aadsts")
                    .to_string()
            }),
            since_ms: from.or_else(|| (*ms > 0).then(|| unix_ms() - ms)),
            until_ms: to,
            limit,
        }
    }

    /// The filters (not the page) as a query string.
    fn query_string(&self) -> String {
        url::form_urlencoded::Serializer::new(String::new())
            .append_pair("user", self.user.trim())
            .append_pair("result", self.result.trim())
            .append_pair("aadsts", self.aadsts.trim())
            .append_pair("app", self.app.trim())
            .append_pair("agent", self.agent.trim())
            .append_pair("ip", self.ip.trim())
            .append_pair("correlation", self.correlation.trim())
            .append_pair("since", self.since().0)
            .append_pair("from", self.from.trim())
            .append_pair("to", self.to.trim())
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
    let names = match Names::of(&state, &ctx.t).await {
        Ok(n) => n,
        Err(e) => return server_error(e),
    };
    let t = &ctx.t.name;
    let rows: Vec<Vec<Markup>> = lines
        .iter()
        .map(|s| {
            vec![
                html! { a href={ "/" (t) "/portal/signins/" (s.id) } { (time_ms(s.time_ms)) } },
                text(&s.username),
                result_cell(&s.result),
                text(&s.aadsts.map(aadsts_text).unwrap_or_default()),
                text(&s.win32.map(win32_text).unwrap_or_default()),
                text(&s.latency_ms.map(|l| format!("{l} ms")).unwrap_or_default()),
                text(
                    &names
                        .app(s.client_id.as_deref())
                        .or_else(|| s.client_id.clone())
                        .unwrap_or_default(),
                ),
                text(
                    &names
                        .agent(s.agent_id)
                        .or_else(|| s.agent_id.map(|a| a.to_string()))
                        .unwrap_or_default(),
                ),
                text(s.client_ip.as_deref().unwrap_or("")),
                text(&s.correlation_id),
            ]
        })
        .collect();
    let since = q.since().0;
    let next = (lines.len() as i64 == PAGE_LINES)
        .then(|| lines.last().map(crate::admin_api::signins::skiptoken))
        .flatten();
    let mut apps: Vec<(&String, &String)> = names.apps.iter().collect();
    apps.sort_by(|a, b| a.1.cmp(b.1));
    let mut agents: Vec<(&uuid::Uuid, &String)> = names.agents.iter().collect();
    agents.sort_by(|a, b| a.1.cmp(b.1));
    let body = html! {
        h1 { "Sign-in log" }
        form class="filters" method="get" action={ "/" (t) "/portal/signins" } {
            label { "User" input type="text" name="user" id="user" value=(q.user.trim()) placeholder="user@domain"; }
            label {
                "Result"
                select name="result" id="result" {
                    option value="" selected[q.result.trim().is_empty()] { "Any" }
                    option value="success" selected[q.result.trim() == "success"] { "Success" }
                    option value="failure" selected[q.result.trim() == "failure"] { "Failure" }
                }
            }
            label { "AADSTS code" input type="text" name="aadsts" id="aadsts" value=(q.aadsts.trim()) placeholder="50126" inputmode="numeric"; }
            label {
                "App"
                select name="app" id="app" {
                    option value="" { "Any" }
                    @for (id, name) in &apps {
                        option value=(id) selected[q.app.trim() == id.as_str()] { (name) }
                    }
                }
            }
            label {
                "Agent"
                select name="agent" id="agent" {
                    option value="" { "Any" }
                    @for (id, host) in &agents {
                        @let id = id.to_string();
                        option value=(id) selected[q.agent.trim() == id] { (host) " (" (id[..8]) ")" }
                    }
                }
            }
            label { "Client address" input type="text" name="ip" id="ip" value=(q.ip.trim()); }
            label { "Correlation id" input type="text" name="correlation" id="correlation" value=(q.correlation.trim()); }
            label {
                "Period"
                select name="since" id="since" {
                    @for (v, label, _) in SINCE {
                        option value=(v) selected[*v == since] { (label) }
                    }
                }
            }
            label { "From (date, overrides the period)" input type="date" name="from" id="from" value=(q.from.trim()); }
            label { "To (date)" input type="date" name="to" id="to" value=(q.to.trim()); }
            button type="submit" class="primary" { "Filter" }
        }
        p {
            a id="csv" href={ "/" (t) "/portal/signins.csv?" (q.query_string()) } { "Download as CSV" }
            " "
            span class="muted" { "(" (lines.len()) " lines on this page, newest first)" }
        }
        (layout::table(
            "signins",
            &["Time", "User", "Result", "Error", "Win32", "Latency", "App", "Agent", "IP", "Correlation id"],
            &rows,
            "No sign-in matches these filters.",
        ))
        (layout::pager(
            &format!("/{t}/portal/signins?{}", q.query_string()),
            q.after.trim().is_empty(),
            next.as_deref(),
        ))
    };
    layout::page(StatusCode::OK, &ctx, "signins", "Sign-in log", body)
}

/// A result in words and a mark, never by colour alone.
pub(crate) fn result_cell(result: &str) -> Markup {
    if result == "success" {
        html! { span class="ok" { "\u{2714} success" } }
    } else {
        html! { span class="bad" { "\u{2716} " (result) } }
    }
}

/// `GET /{tenant}/portal/signins/{id}`: every field of one sign-in, with what its codes
/// mean and what to do.
pub async fn detail(
    State(state): State<Shared>,
    Path((tenant, id)): Path<(String, String)>,
    BaseUrl(base): BaseUrl,
    headers: HeaderMap,
) -> Response {
    let ctx = match signed_in(&state, &tenant, &base, &headers, ops::SHOW_SIGNIN.roles).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let line = match id.parse::<i64>() {
        Ok(id) => state.store.sign_in(ctx.t.id, id).await,
        Err(_) => Ok(None),
    };
    let line = match line {
        Ok(Some(l)) => l,
        Ok(None) => {
            return layout::page(
                StatusCode::NOT_FOUND,
                &ctx,
                "signins",
                "Sign-in not found",
                html! { h1 { "Sign-in not found" } p { "This sign-in is not in the log (it may be past retention)." } },
            )
        }
        Err(e) => return server_error(e),
    };
    let names = match Names::of(&state, &ctx.t).await {
        Ok(n) => n,
        Err(e) => return server_error(e),
    };
    let d = crate::admin_api::signins::detail(&line, &names);
    let s = &d.signin;
    let t = &ctx.t.name;
    let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    let body = html! {
        p { a href={ "/" (t) "/portal/signins" } { "\u{2190} Sign-in log" } }
        h1 { "Sign-in of " (s.username) }
        div class="card" {
            dl class="kv" id="signin-detail" {
                dt { "Time" } dd { (time_ms(s.time_ms)) }
                dt { "User" } dd { (s.username) }
                dt { "Result" } dd { (result_cell(&s.result)) }
                dt { "AADSTS" } dd { (opt(&d.aadsts_text)) }
                dt { "Win32" } dd { (opt(&d.win32_text)) }
                dt { "What to do" } dd id="what-to-do" { (d.win32_action.clone().unwrap_or_else(|| if s.result == "success" { "Nothing: the sign-in succeeded.".into() } else { "See the AADSTS sentence above.".into() })) }
                dt { "App" } dd { (opt(&s.app_name)) " " span class="muted" { (opt(&s.client_id)) } }
                dt { "Agent" } dd { (opt(&s.agent_host)) " " span class="muted" { (s.agent_id.map(|a| a.to_string()).unwrap_or_default()) } }
                dt { "Agents passed over" } dd { (s.other_agents.iter().map(|a| names.agents.get(a).cloned().unwrap_or_else(|| a.to_string())).collect::<Vec<_>>().join(", ")) }
                dt { "Agent round trip" } dd { (s.latency_ms.map(|l| format!("{l} ms")).unwrap_or_else(|| "-".into())) }
                dt { "Client address" } dd { (opt(&s.client_ip)) }
                dt { "Correlation id" } dd { (s.correlation_id) }
            }
        }
    };
    layout::page(StatusCode::OK, &ctx, "signins", "Sign-in", body)
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
