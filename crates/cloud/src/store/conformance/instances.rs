//! Instances sharing a store: deployment settings, and directory-sync leases that exactly
//! one of many concurrent claimants gets, that their holder renews, that expire, and that a
//! holder gives back.

use futures_util::future::join_all;
use uuid::Uuid;

use crate::store::Backend;

pub(crate) async fn instances(b: &dyn Backend, tenant_id: Uuid) -> anyhow::Result<()> {
    // Settings: unset, then the first of 50 concurrent initialisations wins for everyone.
    anyhow::ensure!(b.meta("nothing").await?.is_none());
    let values: Vec<String> = (0..50).map(|i| format!("v{i}")).collect();
    let got = join_all(values.iter().map(|v| b.init_meta("race", v))).await;
    let got: Vec<String> = got.into_iter().collect::<Result<_, _>>()?;
    let first = got[0].clone();
    anyhow::ensure!(
        got.iter().all(|g| *g == first),
        "one value for all: {got:?}"
    );
    b.set_meta("race", "replaced").await?;
    ensure_eq!(b.meta("race").await?, Some("replaced".to_string()));
    let id = b.deployment_id().await?;
    ensure_eq!(
        b.deployment_id().await?,
        id,
        "the deployment id never changes"
    );

    // Leases: 50 instances claim one forest at once; exactly one gets it.
    let holders: Vec<Uuid> = (0..50).map(|_| Uuid::new_v4()).collect();
    let claims = join_all(
        holders
            .iter()
            .map(|h| b.claim_sync_lease(tenant_id, "corp.test", *h, 1_000, 11_000)),
    )
    .await;
    let won: Vec<Uuid> = claims
        .into_iter()
        .zip(&holders)
        .filter_map(|(r, h)| match r {
            Ok(true) => Some(Ok(*h)),
            Ok(false) => None,
            Err(e) => Some(Err(e)),
        })
        .collect::<Result<_, _>>()?;
    ensure_eq!(won.len(), 1, "exactly one claimant holds the lease");
    let holder = won[0];
    let other = *holders
        .iter()
        .find(|h| **h != holder)
        .ok_or_else(|| anyhow::anyhow!("no other"))?;
    // The forest name is compared without case; another forest is free.
    anyhow::ensure!(
        !b.claim_sync_lease(tenant_id, "CORP.test", other, 5_000, 15_000)
            .await?
    );
    anyhow::ensure!(
        b.claim_sync_lease(tenant_id, "fabrikam.test", other, 5_000, 15_000)
            .await?
    );
    // The holder renews; the lease then outlives the first expiry.
    anyhow::ensure!(
        b.claim_sync_lease(tenant_id, "corp.test", holder, 10_000, 20_000)
            .await?
    );
    anyhow::ensure!(
        !b.claim_sync_lease(tenant_id, "corp.test", other, 15_000, 25_000)
            .await?
    );
    // Expired: taken over, and the old holder no longer renews it.
    anyhow::ensure!(
        b.claim_sync_lease(tenant_id, "corp.test", other, 20_000, 30_000)
            .await?
    );
    anyhow::ensure!(
        !b.claim_sync_lease(tenant_id, "corp.test", holder, 21_000, 31_000)
            .await?
    );
    // Given back by someone else: nothing happens; by the holder: free at once.
    b.release_sync_lease(tenant_id, "corp.test", holder).await?;
    anyhow::ensure!(
        !b.claim_sync_lease(tenant_id, "corp.test", holder, 22_000, 32_000)
            .await?
    );
    b.release_sync_lease(tenant_id, "corp.test", other).await?;
    anyhow::ensure!(
        b.claim_sync_lease(tenant_id, "corp.test", holder, 22_000, 32_000)
            .await?
    );
    Ok(())
}

/// Shared smart lockout places: of 100 concurrent takers, exactly `threshold - failures`
/// get one; a place given back frees one; a lapsed one counts no more; a locked account
/// gets none.
pub(crate) async fn check_places(b: &dyn Backend, tenant_id: Uuid) -> anyhow::Result<()> {
    let (now, now_ms) = (1_000_000, 1_000_000_000);
    b.record_wrong_password(tenant_id, "user:a", 5, 60, now)
        .await?;
    let takes = join_all(
        (0..100).map(|_| b.take_check_place(tenant_id, "user:a", 5, now, now_ms, now_ms + 10_000)),
    )
    .await;
    let got: Vec<Uuid> = takes
        .into_iter()
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .flatten()
        .collect();
    ensure_eq!(got.len(), 4, "5 - 1 failure on record");
    anyhow::ensure!(b
        .take_check_place(tenant_id, "user:other", 5, now, now_ms, now_ms + 10_000)
        .await?
        .is_some());
    b.give_back_check_place(got[0]).await?;
    anyhow::ensure!(b
        .take_check_place(tenant_id, "user:a", 5, now, now_ms, now_ms + 10_000)
        .await?
        .is_some());
    anyhow::ensure!(b
        .take_check_place(tenant_id, "user:a", 5, now, now_ms, now_ms + 10_000)
        .await?
        .is_none());
    // Lapsed: free again (and purged).
    let later = now_ms + 10_000;
    anyhow::ensure!(b
        .take_check_place(tenant_id, "user:a", 5, now, later, later + 10_000)
        .await?
        .is_some());
    anyhow::ensure!(b.purge_check_places(later).await? >= 4);
    // Locked: no place at all.
    for _ in 0..5 {
        b.record_wrong_password(tenant_id, "user:b", 5, 60, now)
            .await?;
    }
    anyhow::ensure!(b
        .take_check_place(tenant_id, "user:b", 5, now, now_ms, now_ms + 10_000)
        .await?
        .is_none());
    Ok(())
}
