//! The sign-in log: filters, JSON or CSV.

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::Json;
use passthru_admin::api::{self, SignInQuery};
use uuid::Uuid;

use super::{authorize, ops};
use crate::oauth_error::ApiError;
use crate::state::Shared;
use crate::store::admin::SignInFilter;
use crate::store::SignIn;

/// Parses a time filter: RFC 3339 (`2026-11-29T10:00:00Z`), a date (`2026-11-29`), or a
/// duration back from `now_ms` (`15m`, `2h`, `7d`). Returns Unix ms.
pub fn parse_time(s: &str, now_ms: i64) -> Result<i64, String> {
    let s = s.trim();
    let bad = || {
        format!(
            "'{}' is not a time: use RFC 3339 (2026-11-29T10:00:00Z), a date (2026-11-29) or an age (30m, 2h, 7d).",
            s.chars().take(64).collect::<String>()
        )
    };
    if let Some((num, unit)) = s
        .char_indices()
        .last()
        .map(|(i, c)| (&s[..i], c))
        .filter(|(n, _)| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
    {
        let n: i64 = num.parse().map_err(|_| bad())?;
        let ms = match unit {
            's' => 1_000,
            'm' => 60_000,
            'h' => 3_600_000,
            'd' => 86_400_000,
            _ => return Err(bad()),
        };
        return n.checked_mul(ms).map(|d| now_ms - d).ok_or_else(bad);
    }
    let rfc = time::format_description::well_known::Rfc3339;
    if let Ok(t) = time::OffsetDateTime::parse(s, &rfc) {
        return Ok((t.unix_timestamp_nanos() / 1_000_000) as i64);
    }
    let date = time::macros::format_description!("[year]-[month]-[day]");
    if let Ok(d) = time::Date::parse(s, &date) {
        return Ok(d.midnight().assume_utc().unix_timestamp() * 1000);
    }
    Err(bad())
}

/// The filter of a query, validated.
pub fn filter(q: &SignInQuery, now_ms: i64) -> Result<SignInFilter, ApiError> {
    let limit = q.top.unwrap_or(500);
    if !(1..=10_000).contains(&limit) {
        return Err(ApiError::bad_request("top must be 1 to 10000."));
    }
    let result = q.result.as_deref().map(str::trim).filter(|r| !r.is_empty());
    if let Some(r) = result {
        let ok = r.eq_ignore_ascii_case("success")
            || r.eq_ignore_ascii_case("failure")
            || r.parse::<u32>().is_ok();
        if !ok {
            return Err(ApiError::bad_request(
                "result must be success, failure, or an AADSTS code such as 50126.",
            ));
        }
    }
    let time = |v: &Option<String>| {
        v.as_deref()
            .map(|s| parse_time(s, now_ms))
            .transpose()
            .map_err(ApiError::bad_request)
    };
    let text = |v: &Option<String>| {
        v.as_deref()
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_string)
    };
    let agent_id = match text(&q.agent) {
        Some(a) => Some(
            Uuid::parse_str(&a)
                .map_err(|_| ApiError::bad_request("agent must be an agent id (`agents list`)."))?,
        ),
        None => None,
    };
    let after = match text(&q.skiptoken) {
        Some(token) => Some(parse_skiptoken(&token).ok_or_else(|| {
            ApiError::bad_request("skiptoken is not one this API gave: pass next_skiptoken as is.")
        })?),
        None => None,
    };
    Ok(SignInFilter {
        aadsts: q.aadsts.map(i64::from),
        client_id: text(&q.app),
        agent_id,
        client_ip: text(&q.client_ip),
        correlation_id: text(&q.correlation_id),
        after,
        user: q
            .user
            .as_deref()
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .map(str::to_string),
        result: result.map(str::to_string),
        since_ms: time(&q.since)?,
        until_ms: time(&q.until)?,
        limit,
    })
}

/// The sentence of an AADSTS code the sign-in log holds.
pub fn aadsts_text(code: u32) -> String {
    match passthru_proto::Aadsts::from_code(code) {
        Some(a) => format!("AADSTS{code}: {}", a.description()),
        None => format!("AADSTS{code}"),
    }
}

/// A Win32 code with its meaning, when known.
pub fn win32_text(code: u32) -> String {
    match passthru_proto::codes::Win32::from_code(code) {
        Some(w) => format!("Win32 {code}: {}", w.message()),
        None => format!("Win32 {code}"),
    }
}

/// The continuation token of a page whose last line is `s`.
pub fn skiptoken(s: &SignIn) -> String {
    format!("{}.{}", s.time_ms, s.id)
}

fn parse_skiptoken(token: &str) -> Option<(i64, i64)> {
    let (t, id) = token.split_once('.')?;
    Some((t.parse().ok()?, id.parse().ok()?))
}

/// Names of a tenant's apps and agents, for showing a line by name rather than by id.
#[derive(Debug, Default)]
pub struct Names {
    pub apps: std::collections::HashMap<String, String>,
    pub agents: std::collections::HashMap<Uuid, String>,
}

impl Names {
    /// The names of `t`'s apps (with the built-in clients) and agents.
    pub async fn of(
        state: &Shared,
        t: &crate::store::Tenant,
    ) -> Result<Names, crate::store::StoreError> {
        let mut apps: std::collections::HashMap<String, String> = state
            .store
            .apps(t.id)
            .await?
            .into_iter()
            .map(|a| (a.client_id, a.name))
            .collect();
        apps.insert(
            crate::model::PORTAL_CLIENT_ID.into(),
            "Passthru administration portal".into(),
        );
        apps.insert(
            passthru_proto::admin::ADMIN_CLIENT_ID.into(),
            passthru_proto::admin::ADMIN_CLIENT_NAME.into(),
        );
        let agents = state
            .store
            .agents(t.id)
            .await?
            .into_iter()
            .map(|a| (a.id, a.host))
            .collect();
        Ok(Names { apps, agents })
    }

    pub fn app(&self, client_id: Option<&str>) -> Option<String> {
        client_id.and_then(|c| self.apps.get(c).cloned())
    }

    pub fn agent(&self, id: Option<Uuid>) -> Option<String> {
        id.and_then(|a| self.agents.get(&a).cloned())
    }
}

fn iso(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

/// A line of the sign-in log as the API shows it (with `time` in RFC 3339).
pub(crate) fn sign_in_json(s: &SignIn, names: &Names) -> api::SignIn {
    api::SignIn {
        id: s.id,
        app_name: names.app(s.client_id.as_deref()),
        agent_host: names.agent(s.agent_id),
        time_ms: s.time_ms,
        time: iso(s.time_ms),
        username: s.username.clone(),
        client_id: s.client_id.clone(),
        result: s.result.clone(),
        aadsts: s.aadsts,
        win32: s.win32,
        agent_id: s.agent_id,
        other_agents: s.other_agents.clone(),
        latency_ms: s.latency_ms,
        correlation_id: s.correlation_id.clone(),
        client_ip: s.client_ip.clone(),
    }
}

/// One CSV cell (RFC 4180), with spreadsheet formulas neutralised.
pub fn csv_cell(v: &str) -> String {
    let v = if v.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{v}")
    } else {
        v.to_string()
    };
    if v.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", v.replace('"', "\"\""))
    } else {
        v
    }
}

/// The log as CSV, header first.
pub fn to_csv(lines: &[SignIn]) -> String {
    let mut out = String::from(
        "time,user,app,result,aadsts,win32,agent_id,other_agent_ids,round_trip_ms,correlation_id,client_ip\r\n",
    );
    for s in lines {
        let cells = [
            iso(s.time_ms),
            s.username.clone(),
            s.client_id.clone().unwrap_or_default(),
            s.result.clone(),
            s.aadsts.map(|c| c.to_string()).unwrap_or_default(),
            s.win32.map(|c| c.to_string()).unwrap_or_default(),
            s.agent_id.map(|a| a.to_string()).unwrap_or_default(),
            s.other_agents
                .iter()
                .map(Uuid::to_string)
                .collect::<Vec<_>>()
                .join(" "),
            s.latency_ms.map(|l| l.to_string()).unwrap_or_default(),
            s.correlation_id.clone(),
            s.client_ip.clone().unwrap_or_default(),
        ];
        out.push_str(
            &cells
                .iter()
                .map(|c| csv_cell(c))
                .collect::<Vec<_>>()
                .join(","),
        );
        out.push_str("\r\n");
    }
    out
}

/// `GET /{tenant}/admin/signins?user=&result=&since=&until=&top=&format=json|csv`
#[utoipa::path(
    get,
    path = "/signins",
    operation_id = ops::LIST_SIGNINS.id,
    summary = ops::LIST_SIGNINS.summary,
    params(api::SignInQuery),
    responses((status = 200, description = "Done.", content((api::SignInList = "application/json"), (String = "text/csv"))))
)]
pub async fn list(
    State(state): State<Shared>,
    Path(tenant): Path<String>,
    Query(q): Query<SignInQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (t, _) = authorize(&state, &tenant, &headers, ops::LIST_SIGNINS).await?;
    let f = filter(&q, crate::clock::unix_ms())?;
    let lines = state.store.sign_ins_filtered(t.id, &f).await?;
    let next = (lines.len() as i64 == f.limit)
        .then(|| lines.last().map(skiptoken))
        .flatten();
    match q.format.as_deref().unwrap_or("json") {
        "json" => Ok(Json(api::SignInList {
            signins: {
                let names = Names::of(&state, &t).await?;
                lines.iter().map(|s| sign_in_json(s, &names)).collect()
            },
            retention_days: t.settings.signin_retention_days,
            next_skiptoken: next,
        })
        .into_response()),
        "csv" => Ok((
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
                (
                    header::CONTENT_DISPOSITION,
                    format!("attachment; filename=\"signins-{}.csv\"", t.name),
                ),
            ],
            to_csv(&lines),
        )
            .into_response()),
        _ => Err(ApiError::bad_request("format must be json or csv.")),
    }
}

/// The detail of a line: the line, and what its codes mean and what to do.
pub fn detail(s: &SignIn, names: &Names) -> api::SignInDetail {
    use passthru_proto::codes::Win32;
    let win32 = s.win32.and_then(Win32::from_code);
    api::SignInDetail {
        signin: sign_in_json(s, names),
        aadsts_text: s.aadsts.map(aadsts_text),
        win32_text: s.win32.map(win32_text),
        win32_action: win32.map(|w| w.admin_action().to_string()),
    }
}

/// `GET /{tenant}/admin/signins/{id}`
#[utoipa::path(
    get,
    path = "/signins/{id}",
    operation_id = ops::SHOW_SIGNIN.id,
    summary = ops::SHOW_SIGNIN.summary,
    responses((status = 200, description = "Done.", body = api::SignInDetail))
)]
pub async fn show(
    State(state): State<Shared>,
    Path((tenant, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<api::SignInDetail>, ApiError> {
    let (t, _) = authorize(&state, &tenant, &headers, ops::SHOW_SIGNIN).await?;
    let not_found = || {
        ApiError::not_found(format!(
            "No sign-in '{}' in this tenant's log (it may be past retention).",
            id.chars().take(32).collect::<String>()
        ))
    };
    let id: i64 = id.trim().parse().map_err(|_| not_found())?;
    let line = state.store.sign_in(t.id, id).await?.ok_or_else(not_found)?;
    let names = Names::of(&state, &t).await?;
    Ok(Json(detail(&line, &names)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        let now = 1_800_000_000_000;
        assert_eq!(parse_time("30m", now), Ok(now - 1_800_000));
        assert_eq!(parse_time("2026-11-29", now), Ok(1_795_910_400_000));
        assert_eq!(
            parse_time("2026-11-29T10:00:00Z", now),
            Ok(1_795_946_400_000)
        );
        assert!(parse_time("yesterday", now).is_err());
        assert!(parse_time("m", now).is_err());
        assert!(parse_time("99999999999999999d", now).is_err());
    }

    #[test]
    fn csv_quoting_and_formulas() {
        assert_eq!(csv_cell("plain"), "plain");
        assert_eq!(csv_cell("a,b"), "\"a,b\"");
        assert_eq!(csv_cell("say \"hi\""), r#""say ""hi""""#);
        assert_eq!(csv_cell("=HYPERLINK(1)"), "'=HYPERLINK(1)");
        assert_eq!(csv_cell("-1+2"), "'-1+2");
        assert_eq!(csv_cell("@x,y"), "\"'@x,y\"");
        assert_eq!(csv_cell("two\r\nlines"), "\"two\r\nlines\"");
        assert_eq!(csv_cell(""), "");
    }

    #[test]
    fn csv_has_a_header_and_one_line_per_sign_in() {
        let s = SignIn {
            id: 0,
            time_ms: 0,
            username: "=cmd|' /C calc'!A0".into(),
            client_id: Some("app".into()),
            result: "failure".into(),
            aadsts: Some(50126),
            win32: None,
            agent_id: None,
            other_agents: vec![uuid::Uuid::nil(), uuid::Uuid::max()],
            latency_ms: Some(12),
            correlation_id: "c".into(),
            client_ip: Some("127.0.0.1".into()),
        };
        let text = to_csv(&[s]);
        let lines: Vec<&str> = text.split("\r\n").collect();
        assert_eq!(lines.len(), 3, "{text:?}");
        assert_eq!(
            lines[1],
            "1970-01-01T00:00:00Z,'=cmd|' /C calc'!A0,app,failure,50126,,,00000000-0000-0000-0000-000000000000 ffffffff-ffff-ffff-ffff-ffffffffffff,12,c,127.0.0.1"
        );
    }
}
