//! Printing answers (text or `--json`) and building request paths.

use serde::de::DeserializeOwned;
use serde_json::Value;
use utoipa::ToSchema;
use zeroize::Zeroizing;

use crate::api;

/// One path segment, percent-encoded.
pub(super) fn seg(v: &str) -> String {
    percent_encoding::utf8_percent_encode(v, percent_encoding::NON_ALPHANUMERIC).to_string()
}

pub(super) fn query(pairs: &[(&str, Option<String>)]) -> String {
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        if let Some(v) = v {
            q.append_pair(k, v);
        }
    }
    let q = q.finish();
    if q.is_empty() {
        q
    } else {
        format!("?{q}")
    }
}

pub(super) fn print_user(u: &api::User) {
    for (key, value) in [
        ("upn", u.upn.clone()),
        ("id", u.id.to_string()),
        ("display_name", dash(u.display_name.as_ref())),
        ("mail", dash(u.mail.as_ref())),
        ("source", u.source.clone()),
        ("immutable_id", dash(u.immutable_id.as_ref())),
        ("role", u.role.clone()),
        ("enabled", u.enabled.to_string()),
        ("writeback_allowed", u.writeback_allowed.to_string()),
    ] {
        println!("{key:<14}{value}");
    }
    for (key, time) in [
        ("created_at", Some(u.created_at)),
        ("updated_at", u.updated_at),
        ("last_sign_in", u.last_sign_in),
    ] {
        println!("{key:<14}{}", format_time(time));
    }
    if let Some(mfa) = &u.mfa {
        println!(
            "{:<14}policy {}, effective {}, {}",
            "mfa",
            mfa.policy,
            mfa.effective,
            if mfa.enrolled {
                format!(
                    "enrolled ({} recovery codes left)",
                    dash(mfa.recovery_codes_left)
                )
            } else {
                "not enrolled".to_string()
            }
        );
        if let Some(until) = mfa.locked_until {
            println!("{:<14}{}", "mfa locked", format_time(Some(until)));
        }
    }
    if let Some(synced) = &u.synced {
        println!("synced from Active Directory (read-only):");
        for (key, value) in [
            ("forest", synced.forest.clone()),
            ("distinguished_name", synced.distinguished_name.clone()),
            ("sam_account_name", dash(synced.sam_account_name.as_ref())),
            ("given_name", dash(synced.given_name.as_ref())),
            ("surname", dash(synced.surname.as_ref())),
            ("account_enabled", synced.account_enabled.to_string()),
            ("account_expires", dash(synced.account_expires.as_ref())),
            ("object_guid", synced.object_guid.to_string()),
            ("when_changed", dash(synced.when_changed.as_ref())),
            ("last_change", dash(synced.last_change.as_ref())),
        ] {
            println!("  {key:<20}{value}");
        }
        for g in synced.groups.iter().flatten() {
            println!("  {:<20}{g}", "member of");
        }
    }
}

pub(super) fn print_domain(d: &api::Domain) {
    println!(
        "{}\t{}\t{}",
        d.name,
        d.kind,
        if d.verified { "verified" } else { "unverified" }
    );
    if !d.verified {
        let v = d.verification.as_ref();
        println!(
            "  Publish: {} TXT \"{}\" (TTL {})",
            dash(v.map(|v| &v.name)),
            dash(v.map(|v| &v.value)),
            dash(v.map(|v| v.ttl))
        );
        println!("  {}", dash(v.map(|v| &v.next)));
    }
}

pub(super) fn print_app(a: &api::App) {
    println!(
        "{}\t{}\t{}",
        a.client_id,
        match (a.spa, a.public) {
            (true, _) => "spa",
            (false, true) => "public",
            (false, false) => "confidential",
        },
        a.name
    );
    for u in &a.redirect_uris {
        println!("  redirect {u}");
    }
    if a.groups_claim == Some(true) {
        println!("  tokens carry the groups claim");
    }
    if a.id_token_alg.as_deref() == Some("RS256") {
        println!("  ID tokens signed with RS256");
    }
    if let Some(uri) = &a.identifier_uri {
        println!("  identifier URI {uri}");
    }
    for s in &a.api_scopes {
        println!("  scope {s}");
    }
    for r in &a.app_roles {
        println!("  app role {r}");
    }
}

pub(super) fn user_password() -> anyhow::Result<Zeroizing<String>> {
    if let Ok(p) = std::env::var("PASSTHRU_USER_PASSWORD") {
        return Ok(Zeroizing::new(p));
    }
    let p = rpassword::prompt_password("New user's password: ").map_err(|e| {
        anyhow::anyhow!("cannot prompt for the password ({e}): set PASSTHRU_USER_PASSWORD")
    })?;
    Ok(Zeroizing::new(p))
}

/// Prints the answer `v` as JSON with `--json` (as the cloud sent it), else reads it as the
/// API's answer type `T` and prints it as text.
pub(super) fn emit_as<T: DeserializeOwned + ToSchema>(
    json: bool,
    v: &Value,
    text: impl FnOnce(&T),
) -> anyhow::Result<()> {
    if json {
        print_json(v);
    } else {
        text(&answer::<T>(v)?);
    }
    Ok(())
}

/// The answer `v` read as the API's type `T`.
pub(super) fn answer<T: DeserializeOwned + ToSchema>(v: &Value) -> anyhow::Result<T> {
    serde_json::from_value(v.clone())
        .map_err(|e| anyhow::anyhow!("the cloud's answer is not a {} ({e})", T::name()))
}

/// A value that may be absent, `-` when it is.
pub(super) fn dash(v: Option<impl std::fmt::Display>) -> String {
    v.map_or_else(|| "-".to_string(), |v| v.to_string())
}

/// Prints each line.
pub(super) fn print_lines(lines: &[String]) {
    for l in lines {
        println!("{l}");
    }
}

/// A JSON number as JSON writes it (`12.0`, `3.5`), `-` for what JSON cannot carry.
pub(super) fn json_number(x: f64) -> String {
    serde_json::Number::from_f64(x).map_or_else(|| "-".to_string(), |n| n.to_string())
}

pub(super) fn print_json(v: &Value) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

pub(super) fn format_time(unix: Option<i64>) -> String {
    unix.and_then(|t| time::OffsetDateTime::from_unix_timestamp(t).ok())
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| "never".into())
}
