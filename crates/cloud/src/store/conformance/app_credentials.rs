//! Rules of the store's app credentials, run on every backend: at most
//! [`MAX_CREDENTIALS_PER_APP`] per app however many adds run at once, a certificate once per
//! app, every field reads back, removal of one credential only (and only of its app and
//! tenant), secrets replaced together with the certificates kept, nothing for an app that
//! does not exist.

use futures_util::future::join_all;
use uuid::Uuid;

use crate::store::app_credentials::{
    AppCredential, CertificateKey, CredentialKey, MAX_CREDENTIALS_PER_APP,
};
use crate::store::{App, Backend, StoreError};

fn app(t: Uuid, client_id: &str) -> App {
    App {
        client_id: client_id.into(),
        tenant_id: t,
        name: format!("app {client_id}"),
        public: false,
        redirect_uris: Vec::new(),
        secret_hash: None,
        groups_claim: false,
        ..Default::default()
    }
}

fn secret(t: Uuid, client_id: &str, hash: &str, created_at: i64) -> AppCredential {
    AppCredential {
        id: Uuid::new_v4(),
        tenant_id: t,
        client_id: client_id.into(),
        key: CredentialKey::Secret { hash: hash.into() },
        hint: Some(hash.chars().take(3).collect()),
        created_at,
        starts_at: None,
        expires_at: Some(created_at + 180 * 86_400),
    }
}

fn certificate(t: Uuid, client_id: &str, n: u8, created_at: i64) -> AppCredential {
    AppCredential {
        id: Uuid::new_v4(),
        tenant_id: t,
        client_id: client_id.into(),
        key: CredentialKey::Certificate(CertificateKey {
            sha1: hex::encode([n; 20]),
            sha256: hex::encode([n; 32]),
            // Every byte value survives the round trip.
            public_key: (0..=255u8).chain([n]).collect(),
            subject: format!("CN=app {n}"),
        }),
        hint: None,
        created_at,
        starts_at: Some(created_at - 60),
        expires_at: Some(created_at + 365 * 86_400),
    }
}

pub(crate) async fn app_credentials(b: &dyn Backend, t: Uuid, other: Uuid) -> anyhow::Result<()> {
    // No app, no credential.
    match b.add_app_credential(&secret(t, "nope", "aa", 1)).await {
        Err(StoreError::NotFound(_)) => {}
        r => anyhow::bail!("a credential of a missing app was not refused: {r:?}"),
    }
    b.add_app(&app(t, "web"), 1).await?;
    b.add_app(&app(other, "theirs"), 1).await?;
    // Another tenant's app is not this tenant's.
    match b.add_app_credential(&secret(t, "theirs", "aa", 1)).await {
        Err(StoreError::NotFound(_)) => {}
        r => anyhow::bail!("a credential of another tenant's app was not refused: {r:?}"),
    }
    anyhow::ensure!(b.app_credentials(t, "web").await?.is_empty());

    // Every field reads back, oldest first.
    let s1 = secret(t, "web", "s1-hash", 10);
    let c1 = certificate(t, "web", 1, 20);
    b.add_app_credential(&s1).await?;
    b.add_app_credential(&c1).await?;
    ensure_eq!(
        b.app_credentials(t, "WEB").await?,
        vec![s1.clone(), c1.clone()]
    );
    anyhow::ensure!(b.app_credentials(other, "web").await?.is_empty());

    // A certificate once per app.
    let again = AppCredential {
        id: Uuid::new_v4(),
        ..c1.clone()
    };
    match b.add_app_credential(&again).await {
        Err(StoreError::Conflict(_)) => {}
        r => anyhow::bail!("the same certificate twice was not refused: {r:?}"),
    }

    // Removal: one credential, of its app and tenant only.
    let s2 = secret(t, "web", "s2-hash", 30);
    b.add_app_credential(&s2).await?;
    for (tenant, client) in [(other, "web"), (t, "theirs")] {
        match b.remove_app_credential(tenant, client, s1.id).await {
            Err(StoreError::NotFound(_)) => {}
            r => anyhow::bail!("{tenant}/{client} removed web's credential: {r:?}"),
        }
    }
    b.remove_app_credential(t, "web", s1.id).await?;
    ensure_eq!(
        b.app_credentials(t, "web").await?,
        vec![c1.clone(), s2.clone()]
    );
    match b.remove_app_credential(t, "web", s1.id).await {
        Err(StoreError::NotFound(_)) => {}
        r => anyhow::bail!("a removed credential was removed again: {r:?}"),
    }

    // Rotation: every secret replaced by the new one, the certificates kept.
    b.add_app_credential(&secret(t, "web", "s3-hash", 40))
        .await?;
    let rotated = secret(t, "web", "s4-hash", 50);
    b.replace_app_secrets(&rotated).await?;
    ensure_eq!(
        b.app_credentials(t, "web").await?,
        vec![c1.clone(), rotated]
    );
    match b.replace_app_secrets(&secret(t, "nope", "x", 1)).await {
        Err(StoreError::NotFound(_)) => {}
        r => anyhow::bail!("rotation of a missing app was not refused: {r:?}"),
    }

    // The cap holds however many adds run at once: of 30 parallel adds to a new app, exactly
    // MAX_CREDENTIALS_PER_APP win, the others are refused for the cap and leave nothing.
    b.add_app(&app(t, "busy"), 1).await?;
    let adds = join_all((0..30u8).map(|i| async move {
        if i % 2 == 0 {
            b.add_app_credential(&secret(t, "busy", &format!("h{i}"), 100 + i64::from(i)))
                .await
        } else {
            b.add_app_credential(&certificate(t, "busy", i, 100 + i64::from(i)))
                .await
        }
    }))
    .await;
    ensure_eq!(
        adds.iter().filter(|r| r.is_ok()).count(),
        MAX_CREDENTIALS_PER_APP,
        "{adds:?}"
    );
    anyhow::ensure!(
        adds.iter().all(|r| matches!(
            r,
            Ok(())
                | Err(StoreError::TooManyCredentials {
                    max: MAX_CREDENTIALS_PER_APP
                })
        )),
        "{adds:?}"
    );
    ensure_eq!(
        b.app_credentials(t, "busy").await?.len(),
        MAX_CREDENTIALS_PER_APP
    );
    // A full app refuses a rotation that would not fit beside its certificates, and keeps
    // its secrets.
    let full = b.app_credentials(t, "busy").await?;
    let certs = full
        .iter()
        .filter(|c| matches!(c.key, CredentialKey::Certificate(_)))
        .count();
    if certs == MAX_CREDENTIALS_PER_APP {
        match b.replace_app_secrets(&secret(t, "busy", "new", 500)).await {
            Err(StoreError::TooManyCredentials { .. }) => {}
            r => anyhow::bail!("a rotation past the cap was not refused: {r:?}"),
        }
        ensure_eq!(b.app_credentials(t, "busy").await?, full);
    } else {
        b.replace_app_secrets(&secret(t, "busy", "new", 500))
            .await?;
        ensure_eq!(b.app_credentials(t, "busy").await?.len(), certs + 1);
    }
    // Another app of the tenant has its own count.
    b.add_app_credential(&secret(t, "web", "s5-hash", 600))
        .await?;

    // Deleting an app deletes its credentials (and only its own).
    b.delete_app(t, "busy").await?;
    anyhow::ensure!(b.app_credentials(t, "busy").await?.is_empty());
    ensure_eq!(b.app_credentials(t, "web").await?.len(), 3);
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::store::{test_store_on, DomainKind};

    super::super::on_every_backend! {
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn keeps_the_app_credential_rules(backend: TestBackend) -> anyhow::Result<()> {
            let (s, dir, t) =
                test_store_on(backend, "conformance", "corp.test", DomainKind::Managed).await?;
            let other = uuid::Uuid::new_v4();
            s.create_tenant(other, "fabrikam", 1).await?;
            super::app_credentials(s.backend(), t, other).await?;
            s.close().await;
            std::fs::remove_dir_all(dir)?;
            Ok(())
        }
    }
}
