//! Printing answers (text or `--json`) and building request paths.

use serde_json::Value;
use zeroize::Zeroizing;

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

pub(super) fn print_user(u: &Value) {
    for key in [
        "upn",
        "id",
        "display_name",
        "mail",
        "source",
        "immutable_id",
        "role",
        "enabled",
        "writeback_allowed",
    ] {
        println!("{key:<14}{}", s(u, key));
    }
    for key in ["created_at", "updated_at", "last_sign_in"] {
        println!("{key:<14}{}", format_time(u[key].as_i64()));
    }
    let mfa = &u["mfa"];
    if mfa.is_object() {
        println!(
            "{:<14}policy {}, effective {}, {}",
            "mfa",
            s(mfa, "policy"),
            s(mfa, "effective"),
            if mfa["enrolled"] == true {
                format!(
                    "enrolled ({} recovery codes left)",
                    s(mfa, "recovery_codes_left")
                )
            } else {
                "not enrolled".to_string()
            }
        );
        if let Some(until) = mfa["locked_until"].as_i64() {
            println!("{:<14}{}", "mfa locked", format_time(Some(until)));
        }
    }
    let synced = &u["synced"];
    if synced.is_object() {
        println!("synced from Active Directory (read-only):");
        for key in [
            "forest",
            "distinguished_name",
            "sam_account_name",
            "given_name",
            "surname",
            "account_enabled",
            "account_expires",
            "object_guid",
            "when_changed",
            "last_change",
        ] {
            println!("  {key:<20}{}", s(synced, key));
        }
        for g in synced["groups"].as_array().into_iter().flatten() {
            println!("  {:<20}{}", "member of", g.as_str().unwrap_or_default());
        }
    }
}

pub(super) fn print_domain(d: &Value) {
    println!(
        "{}\t{}\t{}",
        s(d, "name"),
        s(d, "kind"),
        if d["verified"] == true {
            "verified"
        } else {
            "unverified"
        }
    );
    if d["verified"] == false {
        let v = &d["verification"];
        println!(
            "  Publish: {} TXT \"{}\" (TTL {})",
            s(v, "name"),
            s(v, "value"),
            s(v, "ttl")
        );
        println!("  {}", s(v, "next"));
    }
}

pub(super) fn print_app(a: &Value) {
    println!(
        "{}\t{}\t{}",
        s(a, "client_id"),
        if a["public"] == true {
            "public"
        } else {
            "confidential"
        },
        s(a, "name")
    );
    for u in a["redirect_uris"].as_array().into_iter().flatten() {
        println!("  redirect {}", u.as_str().unwrap_or_default());
    }
    if a["groups_claim"] == true {
        println!("  tokens carry the groups claim");
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

pub(super) fn s(v: &Value, key: &str) -> String {
    match v.get(key) {
        Some(Value::String(x)) => x.clone(),
        Some(Value::Null) | None => "-".into(),
        Some(other) => other.to_string(),
    }
}

/// Prints `v` as JSON with `--json`, else as text.
pub(super) fn emit(json: bool, v: &Value, text: impl FnOnce(&Value)) {
    if json {
        print_json(v);
    } else {
        text(v);
    }
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
