//! Rules of the store's mfa area, run on every backend.

use crate::store::{test_store_on, DomainKind};

super::on_every_backend! {
    #[tokio::test]
    async fn deleting_a_user_deletes_its_second_factor(backend: TestBackend) -> anyhow::Result<()> {
        let (s, dir, t) = test_store_on(backend, "mfa", "contoso.example", DomainKind::Cloud).await?;
        let u = s
            .add_cloud_user(t, "a@contoso.example", "x", "none", 1)
            .await?;
        s.start_mfa_enrolment(t, u, b"sealed-a").await?;
        let other = s
            .add_cloud_user(t, "b@contoso.example", "x", "none", 1)
            .await?;
        // Deleting the user deletes the rows.
        s.start_mfa_enrolment(t, other, b"sealed-b").await?;
        s.delete_user(t, other).await?;
        let gone = s.mfa(t, other).await?;
        assert!(
            gone.sealed_secret.is_none() && !gone.enrolled,
            "the record went"
        );
        assert!(
            s.mfa(t, u).await?.sealed_secret.is_some(),
            "the other user's stays"
        );
        s.close().await;
        let _ = std::fs::remove_dir_all(dir);
        Ok(())
    }
}
