//! Rules of the directory areas the other files leave out: tenants' pass-through switch,
//! domains per tenant and their removal, users' names and password hashes, apps (client ids
//! unique across the service, changes, deletion with their tokens), the sign-in log written in batches, the
//! sync holder and a failed run, and the purge of expired rows. Written against the traits
//! ([`Backend`]) only.

use futures_util::future::join_all;
use uuid::Uuid;

use super::request;
use crate::store::{App, Backend, DomainKind, RefreshRecord, SignIn, StoreError};

/// Every rule of this file, on a fresh backend with no tenant yet.
pub(super) async fn directory<S: Backend + ?Sized>(s: &S) -> anyhow::Result<()> {
    let t = Uuid::new_v4();
    let other = Uuid::new_v4();
    s.create_tenant(t, "fabrikam", 1).await?;
    s.create_tenant(other, "northwind", 1).await?;
    tenants_and_domains(s, t, other).await?;
    users(s, t).await?;
    apps(s, t, other).await?;
    sign_in_log(s, t, other).await?;
    sync_state(s, t).await?;
    purge(s, t).await?;
    Ok(())
}

async fn tenants_and_domains<S: Backend + ?Sized>(
    s: &S,
    t: Uuid,
    other: Uuid,
) -> anyhow::Result<()> {
    s.set_pta(t, true).await?;
    let got = s.tenant("FABRIKAM").await?;
    ensure_eq!(got.map(|x| x.pta_enabled), Some(true));
    s.set_pta(t, false).await?;
    ensure_eq!(
        s.tenant(&t.to_string()).await?.map(|x| x.pta_enabled),
        Some(false)
    );

    s.add_domain(t, "fabrikam.test", DomainKind::Managed, None, 1)
        .await?;
    s.add_domain(t, "pending.test", DomainKind::Managed, Some("code"), 1)
        .await?;
    s.add_domain(other, "northwind.test", DomainKind::Cloud, None, 1)
        .await?;
    // A name is unique across the service, whatever its case.
    anyhow::ensure!(matches!(
        s.add_domain(other, "Fabrikam.TEST", DomainKind::Cloud, None, 1)
            .await,
        Err(StoreError::Conflict(_))
    ));
    let names: Vec<String> = s.domains(t).await?.into_iter().map(|d| d.name).collect();
    ensure_eq!(
        names,
        vec!["fabrikam.test".to_string(), "pending.test".into()]
    );
    // Sign-in finds only a verified domain.
    anyhow::ensure!(s.domain("pending.test").await?.is_none());
    s.set_domain_verified(t, "pending.test").await?;
    anyhow::ensure!(s.domain("pending.test").await?.is_some());
    // Another tenant cannot remove it; its own can.
    s.remove_domain(other, "pending.test").await.ok();
    anyhow::ensure!(s.domain_any("pending.test").await?.is_some());
    s.remove_domain(t, "pending.test").await?;
    anyhow::ensure!(s.domain_any("pending.test").await?.is_none());
    Ok(())
}

async fn users<S: Backend + ?Sized>(s: &S, t: Uuid) -> anyhow::Result<()> {
    let a = s
        .add_cloud_user(t, "ann@fabrikam.test", "hash-1", "none", 1)
        .await?;
    anyhow::ensure!(matches!(
        s.add_cloud_user(t, "ANN@fabrikam.test", "hash-2", "none", 1)
            .await,
        Err(StoreError::Conflict(_))
    ));
    s.set_display_name(t, a, "Ann Example").await?;
    s.set_password_hash(t, a, "hash-3", 2).await?;
    s.touch_sign_in(a, 3).await?;
    let u = s
        .user_by_upn(t, "Ann@Fabrikam.test")
        .await?
        .ok_or_else(|| anyhow::anyhow!("ann not found"))?;
    ensure_eq!(u.display_name.as_deref(), Some("Ann Example"));
    ensure_eq!(u.password_hash.as_deref(), Some("hash-3"));
    ensure_eq!(u.source.as_str(), "cloud");
    let all: Vec<Uuid> = s.users(t).await?.into_iter().map(|u| u.id).collect();
    ensure_eq!(all, vec![a]);
    // A changed password ends the user's refresh tokens.
    s.add_refresh_token("rt-ann", &refresh(t, a, "fam-ann"))
        .await?;
    s.set_password_hash(t, a, "hash-4", 4).await?;
    anyhow::ensure!(!matches!(
        s.use_refresh_token("rt-ann", 5).await?,
        crate::store::oidc::RefreshUse::Fresh(_)
    ));
    Ok(())
}

fn refresh(t: Uuid, user: Uuid, family: &str) -> RefreshRecord {
    RefreshRecord {
        user_id: user,
        ..super::refresh(t, family)
    }
}

fn app(t: Uuid, client_id: &str) -> App {
    App {
        client_id: client_id.into(),
        tenant_id: t,
        name: format!("app {client_id}"),
        public: false,
        redirect_uris: vec!["https://app.example/cb".into()],
        secret_hash: Some("secret-1".into()),
        groups_claim: false,
        ..Default::default()
    }
}

async fn apps<S: Backend + ?Sized>(s: &S, t: Uuid, other: Uuid) -> anyhow::Result<()> {
    // Of many parallel adds of one client id, exactly one wins.
    let web = app(t, "web");
    let adds = join_all((0..50).map(|_| s.add_app(&web, 1))).await;
    ensure_eq!(adds.iter().filter(|r| r.is_ok()).count(), 1);
    anyhow::ensure!(adds
        .iter()
        .all(|r| r.is_ok() || matches!(r, Err(StoreError::Conflict(_)))));
    s.add_app(&app(t, "api"), 1).await?;
    // A client id is unique across the service: another tenant cannot take it.
    anyhow::ensure!(matches!(
        s.add_app(&app(other, "web"), 1).await,
        Err(StoreError::Conflict(_))
    ));
    s.add_app(&app(other, "web-n"), 1).await?;
    anyhow::ensure!(
        s.app(other, "web").await?.is_none(),
        "apps stay in their tenant"
    );
    let names: Vec<String> = s.apps(t).await?.into_iter().map(|a| a.client_id).collect();
    ensure_eq!(names, vec!["api".to_string(), "web".into()]);

    s.set_app_redirect_uris(t, "web", &["https://new.example/cb".into()])
        .await?;
    s.set_app_groups_claim(t, "web", true).await?;
    let web = s
        .app(t, "WEB")
        .await?
        .ok_or_else(|| anyhow::anyhow!("web not found"))?;
    ensure_eq!(
        web.redirect_uris,
        vec!["https://new.example/cb".to_string()]
    );
    anyhow::ensure!(web.groups_claim);
    // The secret it was added with is its first credential, without an expiry; the app
    // itself keeps no secret.
    ensure_eq!(web.secret_hash, None);
    let first = s.app_credentials(t, "web").await?;
    ensure_eq!(first.len(), 1);
    ensure_eq!(
        first
            .first()
            .map(|c| (&c.key, c.expires_at, c.hint.clone())),
        Some((
            &crate::store::app_credentials::CredentialKey::Secret {
                hash: "secret-1".into()
            },
            None,
            None
        ))
    );
    anyhow::ensure!(
        s.app_credentials(other, "web").await?.is_empty(),
        "credentials stay in their tenant"
    );

    // Deleting an app deletes its refresh tokens.
    let mut r = super::refresh(t, "fam-web");
    r.client_id = "web".into();
    s.add_refresh_token("rt-web", &r).await?;
    s.delete_app(t, "web").await?;
    anyhow::ensure!(s.app(t, "web").await?.is_none());
    anyhow::ensure!(s.app_credentials(t, "web").await?.is_empty());
    anyhow::ensure!(s.app(other, "web-n").await?.is_some());
    anyhow::ensure!(!matches!(
        s.use_refresh_token("rt-web", 2).await?,
        crate::store::oidc::RefreshUse::Fresh(_)
    ));
    Ok(())
}

fn line(i: i64) -> Box<SignIn> {
    Box::new(SignIn {
        id: 0,
        time_ms: i,
        username: format!("u{i}@fabrikam.test"),
        client_id: None,
        result: if i % 2 == 0 { "success" } else { "failure" }.into(),
        aadsts: (i % 2 == 1).then_some(50126),
        win32: None,
        agent_id: None,
        other_agents: Vec::new(),
        latency_ms: Some(i),
        correlation_id: format!("c{i}"),
        client_ip: None,
    })
}

async fn sign_in_log<S: Backend + ?Sized>(s: &S, t: Uuid, other: Uuid) -> anyhow::Result<()> {
    // Batches of every size, written at once from many tasks, each line kept once.
    let batches: Vec<Vec<(Uuid, Box<SignIn>)>> = (0..20)
        .map(|b| (0..(b * 7 + 1)).map(|i| (t, line(b * 1000 + i))).collect())
        .collect();
    let written = join_all(batches.iter().map(|b| s.write_sign_ins(b))).await;
    anyhow::ensure!(written.iter().all(|r| r.is_ok()), "{written:?}");
    s.write_sign_ins(&[(other, line(1))]).await?;
    let total: usize = batches.iter().map(Vec::len).sum();
    let mine = s.sign_ins(t, 100_000).await?;
    ensure_eq!(mine.len(), total);
    let mut times: Vec<i64> = mine.iter().map(|l| l.time_ms).collect();
    times.sort_unstable();
    times.dedup();
    ensure_eq!(times.len(), total, "each line once");
    ensure_eq!(s.sign_ins(other, 10).await?.len(), 1);
    Ok(())
}

async fn sync_state<S: Backend + ?Sized>(s: &S, t: Uuid) -> anyhow::Result<()> {
    let agent = Uuid::new_v4();
    s.ensure_sync_forest(t, "fabrikam.test", 1).await?;
    s.set_sync_holder(t, "fabrikam.test", Some(agent), 10)
        .await?;
    s.sync_run_failed(t, "fabrikam.test", "the DC did not answer", 11)
        .await?;
    let f = s
        .sync_forests(t)
        .await?
        .into_iter()
        .find(|f| f.forest == "fabrikam.test")
        .ok_or_else(|| anyhow::anyhow!("forest not found"))?;
    ensure_eq!(f.holder_agent_id, Some(agent));
    ensure_eq!(f.last_error.as_deref(), Some("the DC did not answer"));
    ensure_eq!(f.last_run_at, Some(11));
    s.set_sync_holder(t, "fabrikam.test", None, 12).await?;
    let f = s.sync_forests(t).await?;
    ensure_eq!(f.first().and_then(|f| f.holder_agent_id), None);
    Ok(())
}

async fn purge<S: Backend + ?Sized>(s: &S, t: Uuid) -> anyhow::Result<()> {
    let before = s.count_rows("authz_requests").await?;
    s.put_authz(&request(t, "old"), 100).await?;
    s.put_authz(&request(t, "live"), 10_000).await?;
    ensure_eq!(s.count_rows("authz_requests").await?, before + 2);
    let gone = s.purge_expired(5_000).await?;
    anyhow::ensure!(gone >= 1, "purged {gone}");
    ensure_eq!(s.count_rows("authz_requests").await?, before + 1);
    anyhow::ensure!(s.authz(t, "live", 5_000).await?.is_some());
    Ok(())
}
