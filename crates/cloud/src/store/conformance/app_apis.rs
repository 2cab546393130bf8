//! Rules of the APIs apps expose: platforms (single-page apps), the ID-token algorithm, an
//! identifier URI unique in its tenant, scopes and app roles, and the roles assigned to users,
//! groups and apps (kept when assigned twice, dropped with the role or the app). Written
//! against the traits ([`Backend`]) only.

use futures_util::future::join_all;
use uuid::Uuid;

use crate::store::{App, Backend, PrincipalKind, RoleAssignment, StoreError};

fn app(t: Uuid, client_id: &str) -> App {
    App {
        client_id: client_id.into(),
        tenant_id: t,
        name: format!("app {client_id}"),
        redirect_uris: vec![format!("https://{client_id}.example/cb")],
        ..Default::default()
    }
}

fn assignment(resource: &str, role: &str, kind: PrincipalKind, id: &str) -> RoleAssignment {
    RoleAssignment {
        resource_client_id: resource.into(),
        role: role.into(),
        principal_kind: kind,
        principal_id: id.into(),
        created_at: 5,
    }
}

/// Every rule of this file, on a fresh backend with no tenant yet.
pub(super) async fn app_apis<S: Backend + ?Sized>(s: &S) -> anyhow::Result<()> {
    let t = Uuid::new_v4();
    let other = Uuid::new_v4();
    s.create_tenant(t, "fabrikam", 1).await?;
    s.create_tenant(other, "northwind", 1).await?;
    let mut spa = app(t, "spa-1");
    spa.spa = true;
    spa.public = true;
    spa.redirect_uris = vec![
        "http://localhost:3000/".into(),
        "https://spa.example/a/b".into(),
    ];
    s.add_app(&spa, 1).await?;
    s.add_app(&app(t, "api-1"), 1).await?;
    s.add_app(&app(t, "daemon-1"), 1).await?;
    let mut theirs = app(other, "spa-2");
    theirs.spa = true;
    s.add_app(&theirs, 1).await?;

    // Platforms and the ID-token algorithm.
    let got = s
        .app(t, "spa-1")
        .await?
        .ok_or_else(|| anyhow::anyhow!("spa-1"))?;
    anyhow::ensure!(got.spa && got.id_token_alg() == "ES256");
    let mut ours = s.spa_redirect_uris(Some(t)).await?;
    ours.sort();
    ensure_eq!(
        ours,
        vec![
            "http://localhost:3000/".to_string(),
            "https://spa.example/a/b".into()
        ]
    );
    ensure_eq!(s.spa_redirect_uris(None).await?.len(), 3);
    s.set_app_spa(t, "spa-1", false).await?;
    ensure_eq!(s.spa_redirect_uris(Some(t)).await?.len(), 0);
    s.set_app_id_token_alg(t, "API-1", "RS256").await?;
    let api = s
        .app(t, "api-1")
        .await?
        .ok_or_else(|| anyhow::anyhow!("api-1"))?;
    ensure_eq!(api.id_token_alg(), "RS256");
    anyhow::ensure!(
        matches!(
            s.set_app_spa(other, "api-1", true).await,
            Err(StoreError::NotFound(_))
        ),
        "an update stays in its tenant"
    );
    ensure_eq!(s.app_anywhere("API-1").await?.map(|a| a.tenant_id), Some(t));
    anyhow::ensure!(s.app_anywhere("nobody").await?.is_none());

    // The API: identifier URIs unique in a tenant (of many parallel claims one wins), free
    // in another tenant.
    let roles = vec!["Reader".to_string(), "Writer".into()];
    let scopes = vec!["read".to_string(), "write".into()];
    s.set_app_api(t, "api-1", Some("api://orders"), &scopes, &roles)
        .await?;
    let claims =
        join_all((0..20).map(|_| s.set_app_api(t, "daemon-1", Some("api://orders"), &[], &[])))
            .await;
    anyhow::ensure!(
        claims
            .iter()
            .all(|r| matches!(r, Err(StoreError::Conflict(_)))),
        "{claims:?}"
    );
    s.add_app(&app(other, "api-2"), 1).await?;
    s.set_app_api(other, "api-2", Some("api://orders"), &[], &[])
        .await?;
    let found = s
        .app_by_identifier_uri(t, "api://orders")
        .await?
        .ok_or_else(|| anyhow::anyhow!("api://orders"))?;
    ensure_eq!(found.client_id, "api-1");
    ensure_eq!(found.api_scopes, scopes);
    ensure_eq!(found.app_roles, roles);
    ensure_eq!(
        s.app_by_identifier_uri(other, "api://orders")
            .await?
            .map(|a| a.client_id),
        Some("api-2".to_string())
    );

    // Assignments: idempotent under parallel repeats; roles of a set of principals.
    let user = Uuid::new_v4().to_string();
    let group = Uuid::new_v4().to_string();
    let reader = assignment("api-1", "Reader", PrincipalKind::User, &user);
    let twice = join_all((0..20).map(|_| s.assign_app_role(t, &reader))).await;
    anyhow::ensure!(twice.iter().all(|r| r.is_ok()), "{twice:?}");
    s.assign_app_role(
        t,
        &assignment("api-1", "Writer", PrincipalKind::Group, &group),
    )
    .await?;
    s.assign_app_role(
        t,
        &assignment("api-1", "Writer", PrincipalKind::App, "daemon-1"),
    )
    .await?;
    ensure_eq!(s.app_role_assignments(t, "api-1").await?.len(), 3);
    ensure_eq!(s.app_role_assignments(other, "api-1").await?.len(), 0);
    let of_user = s
        .roles_of(
            t,
            "api-1",
            &[
                (PrincipalKind::User, user.clone()),
                (PrincipalKind::Group, group.clone()),
            ],
        )
        .await?;
    ensure_eq!(of_user, roles);
    ensure_eq!(
        s.roles_of(t, "api-1", &[(PrincipalKind::User, user.clone())])
            .await?,
        vec!["Reader".to_string()]
    );
    ensure_eq!(
        s.roles_of(t, "api-1", &[(PrincipalKind::App, "daemon-1".into())])
            .await?,
        vec!["Writer".to_string()]
    );
    anyhow::ensure!(
        s.roles_of(t, "api-1", &[(PrincipalKind::Group, user.clone())])
            .await?
            .is_empty(),
        "a user's id does not count as a group's"
    );
    anyhow::ensure!(s
        .roles_of(other, "api-1", &[(PrincipalKind::User, user.clone())])
        .await?
        .is_empty());
    anyhow::ensure!(s.roles_of(t, "api-1", &[]).await?.is_empty());

    // Unassigning; a role dropped from the app takes its assignments.
    s.unassign_app_role(
        t,
        &assignment("api-1", "Reader", PrincipalKind::User, &user),
    )
    .await?;
    anyhow::ensure!(matches!(
        s.unassign_app_role(
            t,
            &assignment("api-1", "Reader", PrincipalKind::User, &user)
        )
        .await,
        Err(StoreError::NotFound(_))
    ));
    s.set_app_api(
        t,
        "api-1",
        Some("api://orders"),
        &scopes,
        &["Reader".to_string()],
    )
    .await?;
    anyhow::ensure!(
        s.app_role_assignments(t, "api-1").await?.is_empty(),
        "Writer's assignments went with the role"
    );

    // Deleting an app deletes the assignments it is the resource or the principal of.
    s.assign_app_role(
        t,
        &assignment("api-1", "Reader", PrincipalKind::App, "daemon-1"),
    )
    .await?;
    s.assign_app_role(
        t,
        &assignment("api-1", "Reader", PrincipalKind::User, &user),
    )
    .await?;
    s.delete_app(t, "daemon-1").await?;
    ensure_eq!(s.app_role_assignments(t, "api-1").await?.len(), 1);
    s.delete_app(t, "api-1").await?;
    ensure_eq!(s.app_role_assignments(t, "api-1").await?.len(), 0);
    Ok(())
}
