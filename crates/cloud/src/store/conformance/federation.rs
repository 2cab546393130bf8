//! Rules of the store's federation area, run on every backend.

use crate::secret_box::SecretBox;
use crate::store::federation::*;
use crate::store::*;
use uuid::Uuid;
use zeroize::Zeroizing;

async fn store(backend: TestBackend) -> anyhow::Result<(Store, std::path::PathBuf, Uuid)> {
    let (s, dir) = empty_test_store(backend, "fed").await?;
    let tid = Uuid::new_v4();
    s.create_tenant(tid, "contoso", 1).await?;
    Ok((s, dir, tid))
}

fn sb() -> SecretBox {
    SecretBox::from_key(&[3u8; 32])
}

fn cfg(tid: Uuid) -> FederationConfig {
    FederationConfig {
        domain: "Fab.Example".into(),
        tenant_id: tid,
        issuer: "https://idp.example/t/v2.0".into(),
        client_id: "client-1".into(),
        client_secret: Zeroizing::new("s3cret-value".into()),
    }
}

super::on_every_backend! {
    #[tokio::test]
    async fn federated_domains_and_their_users(backend: TestBackend) -> anyhow::Result<()> {
        let (s, dir, tid) = store(backend).await?;
        s.add_federated_domain(&cfg(tid), "code", 1, &sb()).await?;
        assert!(s.domain("fab.example").await?.is_none(), "unverified");
        s.set_domain_verified(tid, "fab.example").await?;
        let d = s
            .domain("fab.example")
            .await?
            .ok_or_else(|| anyhow::anyhow!("no domain"))?;
        assert_eq!(d.kind, DomainKind::Federated);
        let f = s
            .federation("FAB.example", &sb())
            .await?
            .ok_or_else(|| anyhow::anyhow!("no federation"))?;
        assert_eq!(f.client_secret.as_str(), "s3cret-value");
        assert!(
            !format!("{f:?}").contains("s3cret"),
            "Debug hides the secret"
        );

        // Users keyed by (issuer, sub): stable id, UPN follows the identity provider.
        let mut u = FederatedUser {
            tenant_id: tid,
            issuer: &f.issuer,
            subject: "sub-1",
            upn: "a@fab.example",
            display_name: Some("A"),
            mail: None,
        };
        let first = s.upsert_federated_user(&u, 5).await?;
        assert_eq!(first.source, "federated");
        u.display_name = Some("A2");
        let again = s.upsert_federated_user(&u, 6).await?;
        assert_eq!(
            (again.id, again.display_name.as_deref()),
            (first.id, Some("A2"))
        );
        // Another subject takes the UPN over: the stale record is released.
        u.subject = "sub-2";
        let other = s.upsert_federated_user(&u, 7).await?;
        assert_ne!(other.id, first.id);
        assert_eq!(
            s.user_by_upn(tid, "a@fab.example").await?.map(|x| x.id),
            Some(other.id)
        );

        // Conversion (its own rules are in `store::conformance::federation`): the domain is
        // managed from then on.
        assert_eq!(
            s.convert_to_managed(tid, "fab.example").await?,
            Conversion::Converted
        );
        assert_eq!(
            s.domain("fab.example").await?.map(|d| d.kind),
            Some(DomainKind::Managed)
        );
        // At the user's first pass-through sign-in, the on-premises record takes the UPN
        // over from the federated one.
        let onprem_id = Uuid::new_v4();
        let onprem = s
            .upsert_onprem_user(
                &super::super::OnpremUser {
                    tenant_id: tid,
                    id: onprem_id,
                    immutable_id: "guid-a",
                    upn: "a@fab.example",
                    display_name: None,
                    mail: None,
                },
                8,
            )
            .await?;
        assert_eq!(onprem.source, "onprem");
        assert_eq!(
            s.user_by_upn(tid, "a@fab.example").await?.map(|x| x.id),
            Some(onprem_id)
        );
        assert!(s
            .user_by_id(tid, other.id)
            .await?
            .is_some_and(|x| x.upn.contains("#released-")));
        s.close().await;
        std::fs::remove_dir_all(&dir)?;
        Ok(())
    }
}
