//! The audit log against the admin API's router, in process: every changing operation writes
//! exactly one entry (whoever is refused by role writes none, reads write none), the entry
//! says who, how and what with the target's state before and after, and no secret of a
//! request or an answer reaches it.

use serde_json::json;

use super::ops::{self, GLOBAL_ADMIN};
use super::tests::{body_schema, request, server_with_roles};
use crate::store::{AuditEntry, AuditFilter};
use crate::test_state::{TestServer, ADMIN, TENANT};

async fn entries(s: &TestServer) -> anyhow::Result<Vec<AuditEntry>> {
    Ok(s.state
        .store
        .audit_entries(
            s.tenant_id,
            &AuditFilter {
                limit: 1000,
                ..Default::default()
            },
        )
        .await?)
}

#[tokio::test]
async fn every_change_writes_exactly_one_audit_entry() -> anyhow::Result<()> {
    let (s, tokens) = server_with_roles().await?;
    let doc = super::openapi::build("https://example");
    let [(ga, _), _, (nobody, _)] = &tokens;
    let mut problems = Vec::new();
    for op in ops::ALL {
        let body = body_schema(&doc, op).map(|_| json!({}));
        // A caller the table refuses writes nothing.
        let before = entries(&s).await?.len();
        let (status, _) = s.json(request(op, Some(nobody), body.as_ref())?).await?;
        if status != 403 || entries(&s).await?.len() != before {
            problems.push(format!(
                "{}: a refused caller ({status}) wrote an entry",
                op.id
            ));
        }
        let (status, v) = s.json(request(op, Some(ga), body.as_ref())?).await?;
        let after = entries(&s).await?;
        let want = usize::from(op.method != "GET");
        if after.len() != before + want {
            problems.push(format!(
                "{} {}: {} entries written, not {want} ({status} {v})",
                op.method,
                op.id,
                after.len() - before
            ));
            continue;
        }
        if want == 1 {
            let e = &after[0];
            let ok = e.operation == op.id
                && e.actor == ADMIN
                && e.via == "api"
                && e.status == status
                && e.client_ip.as_deref() == Some("127.0.0.1")
                && e.target
                    .starts_with(&op.path[..op.path.find('{').unwrap_or(op.path.len())]);
            if !ok {
                problems.push(format!("{}: entry {e:?} (answer {status})", op.id));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    s.done().await
}

#[tokio::test]
async fn entries_hold_the_state_before_and_after_and_no_secret() -> anyhow::Result<()> {
    let s = TestServer::start(None).await?;
    let ga = s.admin_token(s.tenant_id, ADMIN).await?;
    let call = |method: &str, path: &str, body: serde_json::Value| {
        axum::http::Request::builder()
            .method(method)
            .uri(format!("/{TENANT}/admin{path}"))
            .header("authorization", format!("Bearer {ga}"))
            .header("content-type", "application/json")
            .header("user-agent", "passthru-client/1.2.3")
            .body(axum::body::Body::from(body.to_string()))
    };
    const PASSWORD: &str = "Audit-Needle-Pa55word!";
    let (st, v) = s
        .json(call(
            "POST",
            "/users",
            json!({"upn": "bo@contoso.example", "password": PASSWORD}),
        )?)
        .await?;
    assert_eq!(st, 201, "{v}");
    let (st, v) = s
        .json(call(
            "POST",
            "/users/bo@contoso.example/disable",
            json!({}),
        )?)
        .await?;
    assert_eq!(st, 200, "{v}");
    let (st, app) = s
        .json(call("POST", "/apps", json!({"name": "web", "confidential": true, "redirect_uris": ["https://web.example/cb"]}))?)
        .await?;
    assert_eq!(st, 201, "{app}");
    let client_id = app["client_id"].as_str().unwrap_or_default().to_string();
    let (st, added) = s
        .json(call(
            "POST",
            &format!("/apps/{client_id}/credentials/secrets"),
            json!({}),
        )?)
        .await?;
    assert!(st == 200 || st == 201, "{added}");
    let secrets = [
        PASSWORD.to_string(),
        app["client_secret"]
            .as_str()
            .unwrap_or("absent-1")
            .to_string(),
        added["secret"].as_str().unwrap_or("absent-2").to_string(),
    ];
    let all = entries(&s).await?;
    assert_eq!(all.len(), 4, "{all:?}");
    let disable = all
        .iter()
        .find(|e| e.operation == ops::DISABLE_USER.id)
        .ok_or_else(|| anyhow::anyhow!("no disableUser entry"))?;
    let before: serde_json::Value =
        serde_json::from_str(disable.before.as_deref().unwrap_or("null"))?;
    let after: serde_json::Value =
        serde_json::from_str(disable.after.as_deref().unwrap_or("null"))?;
    assert_eq!(
        (before["enabled"].clone(), after["enabled"].clone()),
        (json!(true), json!(false))
    );
    assert_eq!(disable.via, "cli", "the CLI's user agent says cli");
    assert_eq!(disable.target, "/users/bo@contoso.example/disable");
    let add = all
        .iter()
        .find(|e| e.operation == ops::ADD_USER.id)
        .ok_or_else(|| anyhow::anyhow!("no addUser entry"))?;
    assert!(
        add.request
            .as_deref()
            .is_some_and(|r| r.contains(super::audit::REDACTED)),
        "{add:?}"
    );
    assert!(
        add.after
            .as_deref()
            .is_some_and(|a| a.contains("bo@contoso.example")),
        "{add:?}"
    );
    for e in &all {
        let text = format!("{:?} {:?} {:?}", e.request, e.before, e.after);
        for secret in &secrets {
            assert!(
                !secret.is_empty() && !text.contains(secret.as_str()),
                "a secret in {e:?}"
            );
        }
    }
    // The API reads the log back a page at a time, and only for a Global Administrator.
    let list = |q: &str| {
        axum::http::Request::builder()
            .uri(format!("/{TENANT}/admin/audit{q}"))
            .header("authorization", format!("Bearer {ga}"))
            .body(axum::body::Body::empty())
    };
    let (st, page) = s.json(list("?top=3")?).await?;
    assert_eq!(st, 200, "{page}");
    assert_eq!(page["entries"].as_array().map(Vec::len), Some(3));
    let next = page["next_skiptoken"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let (_, rest) = s.json(list(&format!("?top=3&skiptoken={next}"))?).await?;
    assert_eq!(rest["entries"].as_array().map(Vec::len), Some(1), "{rest}");
    assert!(rest["next_skiptoken"].is_null());
    let (_, only) = s.json(list("?operation=disableUser")?).await?;
    assert_eq!(
        only["entries"][0]["before"]["enabled"],
        json!(true),
        "{only}"
    );
    let (st, bad) = s.json(list("?skiptoken=x")?).await?;
    assert_eq!(st, 400, "{bad}");
    assert!(ops::LIST_AUDIT.roles == [GLOBAL_ADMIN]);
    s.done().await
}

/// Changes made at once, from 200 parallel requests, each write their one entry.
#[tokio::test]
async fn parallel_changes_each_write_one_entry() -> anyhow::Result<()> {
    let s = TestServer::start(None).await?;
    let ga = s.admin_token(s.tenant_id, ADMIN).await?;
    let calls = (0..200).map(|i| {
        let req = axum::http::Request::builder()
            .method("PUT")
            .uri(format!("/{TENANT}/admin/settings/lockout_threshold"))
            .header("authorization", format!("Bearer {ga}"))
            .header("content-type", "application/json")
            .body(axum::body::Body::from(
                json!({"value": (i % 50 + 1).to_string()}).to_string(),
            ));
        let s = &s;
        async move { s.json(req?).await }
    });
    let answers = futures_util::future::try_join_all(calls).await?;
    assert!(answers.iter().all(|(st, _)| *st == 200));
    assert_eq!(entries(&s).await?.len(), 200);
    s.done().await
}
