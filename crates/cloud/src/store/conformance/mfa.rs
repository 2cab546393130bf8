//! Rules of the store's mfa area, run against the backend `test_store` opens.

use crate::store::{test_store, DomainKind};

#[tokio::test]
async fn deleting_a_user_deletes_its_second_factor() -> anyhow::Result<()> {
    let (s, dir, t) = test_store("mfa", "contoso.example", DomainKind::Cloud).await?;
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
    let _ = std::fs::remove_dir_all(dir);
    Ok(())
}
