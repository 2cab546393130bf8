//! The admin API's user rules, in process: who can be added where, what a password must be,
//! the roles, the guards against locking oneself out, and on-premises users read-only.

use serde_json::json;

use super::tests::call;
use crate::model::records::GLOBAL_ADMIN;
use crate::store::DomainKind;
use crate::test_state::{TestServer, ADMIN};

#[tokio::test]
async fn cloud_users_follow_the_rules() -> anyhow::Result<()> {
    let s = TestServer::start(None).await?;
    let ga = s.admin_token(s.tenant_id, ADMIN).await?;
    let now = crate::clock::unix_now();
    // An unverified domain of the tenant, and a verified one of another tenant.
    s.state
        .store
        .add_domain(
            s.tenant_id,
            "pending.example",
            DomainKind::Managed,
            Some("proof"),
            now,
        )
        .await?;
    let pending = s.state.store.domain_any("pending.example").await?;
    assert!(
        pending
            .as_ref()
            .is_some_and(|d| !d.verified && d.tenant_id == s.tenant_id),
        "{pending:?} {}",
        s.tenant_id
    );
    let other = s.add_tenant("beta", "admin@beta.example").await?;
    assert_ne!(other, s.tenant_id);

    for (upn, password, why) in [
        ("no-at-sign", "Long-enough-1", "look like name@domain"),
        ("two words@contoso.example", "Long-enough-1", "no spaces"),
        ("x@pending.example", "Long-enough-1", "not verified"),
        (
            "x@beta.example",
            "Long-enough-1",
            "not a domain of this tenant",
        ),
        (
            "x@nowhere.example",
            "Long-enough-1",
            "not a domain of this tenant",
        ),
        ("x@contoso.example", "short", "at least 8 characters"),
    ] {
        let (status, v) = call(
            &s,
            &ga,
            "POST",
            "/users",
            Some(json!({"upn": upn, "password": password})),
        )
        .await?;
        assert_eq!(status, 400, "{upn}: {v}");
        let d = v["error_description"].as_str().unwrap_or_default();
        assert!(d.contains(why), "{upn}: {d}");
        assert!(
            !v.to_string().contains(password),
            "the password was echoed: {v}"
        );
    }
    let (status, v) = call(
        &s,
        &ga,
        "POST",
        "/users",
        Some(json!({"upn": "Kim@contoso.example", "password": "Long-enough-1", "display_name": "Kim"})),
    )
    .await?;
    assert_eq!(status, 201, "{v}");
    assert!(!v.to_string().contains("Long-enough-1"), "{v}");
    assert_eq!(v["role"], "none", "{v}");
    // The same name in another case is the same user.
    let (status, v) = call(
        &s,
        &ga,
        "POST",
        "/users",
        Some(json!({"upn": "kim@CONTOSO.example", "password": "Long-enough-2"})),
    )
    .await?;
    assert_eq!(status, 409, "{v}");

    // Roles: only the known ones.
    let (status, v) = call(
        &s,
        &ga,
        "PUT",
        "/users/kim@contoso.example/role",
        Some(json!({"role": "Owner"})),
    )
    .await?;
    assert_eq!(status, 400, "{v}");
    let (status, v) = call(
        &s,
        &ga,
        "PUT",
        "/users/kim@contoso.example/role",
        Some(json!({"role": "hybrididentityadministrator"})),
    )
    .await?;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["role"], "HybridIdentityAdministrator");

    // An administrator cannot block or delete themselves, nor demote the last one.
    for (method, path, body) in [
        ("POST", format!("/users/{ADMIN}/disable"), None),
        ("DELETE", format!("/users/{ADMIN}"), None),
        (
            "PUT",
            format!("/users/{ADMIN}/role"),
            Some(json!({"role": "none"})),
        ),
    ] {
        let (status, v) = call(&s, &ga, method, &path, body).await?;
        assert_eq!(status, 409, "{method} {path}: {v}");
    }
    assert_eq!(
        s.state.store.count_role(s.tenant_id, GLOBAL_ADMIN).await?,
        1
    );

    // Deleted: gone, and its name free again.
    let (status, _) = call(&s, &ga, "DELETE", "/users/kim@contoso.example", None).await?;
    assert_eq!(status, 200);
    let (status, _) = call(&s, &ga, "GET", "/users/kim@contoso.example", None).await?;
    assert_eq!(status, 404);
    s.done().await
}
