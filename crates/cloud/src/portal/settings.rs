//! The settings page: every key with its value and help; a Global Administrator gets a form
//! per key (CSRF token bound to the session), validated by [`Settings::set`].

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{html, Markup};
use serde::Deserialize;

use super::auth::{signed_in, Ctx};
use super::layout;
use crate::admin_api::ops;
use crate::issue::secrets_equal;
use crate::model::settings::{Settings, KEYS};
use crate::state::Shared;
use crate::sts::BaseUrl;

/// Query of the settings page.
#[derive(Debug, Deserialize, Default)]
pub struct SettingsQuery {
    saved: Option<String>,
}

fn render(ctx: &Ctx, status: StatusCode, notice: Markup, error: Option<(&str, &str)>) -> Response {
    let editable = ctx.may(ops::SET_SETTING.roles);
    let t = &ctx.t.name;
    let rows: Vec<Vec<Markup>> = KEYS
        .iter()
        .map(|k| {
            let current = ctx.t.settings.get(k.name).unwrap_or_default();
            let value = match error {
                Some((key, typed)) if key == k.name => typed.to_string(),
                _ => current.clone(),
            };
            let mut row = vec![
                html! { code { (k.name) } },
                html! { span id={ "value-" (k.name) } { (current) } },
                html! { span class="help" { (k.help) } },
            ];
            if editable {
                row.push(html! {
                    form class="setting" method="post" action={ "/" (t) "/portal/settings" } {
                        (crate::pages::hidden("csrf", &ctx.session.csrf))
                        (crate::pages::hidden("key", k.name))
                        label { "New value" input type="text" name="value" id={ "input-" (k.name) } value=(value) required; }
                        button type="submit" class="primary" id={ "save-" (k.name) } { "Save" }
                    }
                });
            }
            row
        })
        .collect();
    let mut head = vec!["Key", "Value", "What it does"];
    if editable {
        head.push("Change");
    }
    let body = html! {
        h1 { "Settings" }
        (notice)
        @if !editable {
            p class="muted" { "Only a Global Administrator can change settings." }
        }
        (layout::table("settings", &head, &rows, ""))
    };
    layout::page(status, ctx, "settings", "Settings", body)
}

/// `GET /{tenant}/portal/settings`
pub async fn page(
    State(state): State<Shared>,
    Path(tenant): Path<String>,
    BaseUrl(base): BaseUrl,
    headers: HeaderMap,
    Query(q): Query<SettingsQuery>,
) -> Response {
    let ctx = match signed_in(&state, &tenant, &base, &headers, ops::GET_SETTINGS.roles).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let saved = q
        .saved
        .as_deref()
        .filter(|k| KEYS.iter().any(|key| key.name == *k));
    let notice = html! {
        @if let Some(k) = saved {
            p class="notice" role="status" id="notice" { "Saved " (k) "." }
        }
    };
    render(&ctx, StatusCode::OK, notice, None)
}

/// The form of one setting.
#[derive(Debug, Deserialize)]
pub struct SettingForm {
    csrf: String,
    key: String,
    value: String,
}

/// `POST /{tenant}/portal/settings`: sets one key through the admin API (in-process, so the
/// change is checked and audited as the CLI's is).
pub async fn save(
    State(state): State<Shared>,
    Path(tenant): Path<String>,
    BaseUrl(base): BaseUrl,
    axum::Extension(client): axum::Extension<crate::http::ClientInfo>,
    headers: HeaderMap,
    axum::Form(f): axum::Form<SettingForm>,
) -> Response {
    let ctx = match signed_in(&state, &tenant, &base, &headers, ops::SET_SETTING.roles).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    if !secrets_equal(&ctx.session.csrf, &f.csrf) {
        return layout::message(
            StatusCode::FORBIDDEN,
            "Form expired",
            "This form was not ours or has expired (wrong CSRF token). Reload the page and try again.",
        );
    }
    if !KEYS.iter().any(|k| k.name == f.key) {
        let e = Settings::default()
            .set(&f.key, &f.value)
            .err()
            .map(|e| e.to_string());
        let error = crate::pages::alert(e.as_deref());
        return render(
            &ctx,
            StatusCode::BAD_REQUEST,
            error,
            Some((f.key.as_str(), f.value.as_str())),
        );
    }
    let path = format!("/settings/{}", f.key);
    let body = serde_json::json!({ "value": f.value });
    let answer = match super::act::admin_call(&state, &ctx, &client, "PUT", &path, Some(body)).await
    {
        Ok(a) => a,
        Err(r) => return r,
    };
    if !answer.status.is_success() {
        let error = crate::pages::alert(Some(&answer.error()));
        return render(
            &ctx,
            if answer.status.is_client_error() {
                StatusCode::BAD_REQUEST
            } else {
                StatusCode::BAD_GATEWAY
            },
            error,
            Some((f.key.as_str(), f.value.as_str())),
        );
    }
    let key = url::form_urlencoded::byte_serialize(f.key.as_bytes()).collect::<String>();
    Redirect::to(&format!("/{}/portal/settings?saved={key}", ctx.t.name)).into_response()
}
