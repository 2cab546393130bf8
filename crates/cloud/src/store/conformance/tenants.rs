//! Rules of the store's tenants area, run on every backend.

use crate::store::*;

super::on_every_backend! {
    #[tokio::test]
    async fn tenant_domain_user_round_trip(backend: TestBackend) -> anyhow::Result<()> {
        let (store, dir) = empty_test_store(backend, "store").await?;
        let tid = Uuid::new_v4();
        store.create_tenant(tid, "contoso", 1).await?;
        assert!(matches!(
            store.create_tenant(Uuid::new_v4(), "CONTOSO", 1).await,
            Err(StoreError::Conflict(_))
        ));
        let t = store
            .tenant("Contoso")
            .await?
            .ok_or_else(|| anyhow::anyhow!("no tenant"))?;
        assert_eq!(t.id, tid);
        assert!(store.tenant(&tid.to_string()).await?.is_some());
        store
            .add_domain(tid, "Corp.Example.Test", DomainKind::Managed, None, 1)
            .await?;
        let d = store
            .domain("corp.example.test")
            .await?
            .ok_or_else(|| anyhow::anyhow!("no domain"))?;
        assert_eq!(d.kind, DomainKind::Managed);
        let oid = Uuid::new_v4();
        let mut rec = OnpremUser {
            tenant_id: tid,
            id: oid,
            immutable_id: "guid-1",
            upn: "a@corp.example.test",
            display_name: Some("A"),
            mail: None,
        };
        let u = store.upsert_onprem_user(&rec, 5).await?;
        assert_eq!(u.id, oid);
        rec.display_name = Some("A2");
        let again = store.upsert_onprem_user(&rec, 6).await?;
        assert_eq!(again.display_name.as_deref(), Some("A2"));
        store.close().await;
        std::fs::remove_dir_all(&dir)?;
        Ok(())
    }
}
