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
    anyhow::ensure!(got.iter().all(|g| *g == first), "one value for all: {got:?}");
    b.set_meta("race", "replaced").await?;
    ensure_eq!(b.meta("race").await?, Some("replaced".to_string()));
    let id = b.deployment_id().await?;
    ensure_eq!(b.deployment_id().await?, id, "the deployment id never changes");

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
    let other = *holders.iter().find(|h| **h != holder).ok_or_else(|| anyhow::anyhow!("no other"))?;
    // The forest name is compared without case; another forest is free.
    anyhow::ensure!(!b.claim_sync_lease(tenant_id, "CORP.test", other, 5_000, 15_000).await?);
    anyhow::ensure!(b.claim_sync_lease(tenant_id, "fabrikam.test", other, 5_000, 15_000).await?);
    // The holder renews; the lease then outlives the first expiry.
    anyhow::ensure!(b.claim_sync_lease(tenant_id, "corp.test", holder, 10_000, 20_000).await?);
    anyhow::ensure!(!b.claim_sync_lease(tenant_id, "corp.test", other, 15_000, 25_000).await?);
    // Expired: taken over, and the old holder no longer renews it.
    anyhow::ensure!(b.claim_sync_lease(tenant_id, "corp.test", other, 20_000, 30_000).await?);
    anyhow::ensure!(!b.claim_sync_lease(tenant_id, "corp.test", holder, 21_000, 31_000).await?);
    // Given back by someone else: nothing happens; by the holder: free at once.
    b.release_sync_lease(tenant_id, "corp.test", holder).await?;
    anyhow::ensure!(!b.claim_sync_lease(tenant_id, "corp.test", holder, 22_000, 32_000).await?);
    b.release_sync_lease(tenant_id, "corp.test", other).await?;
    anyhow::ensure!(b.claim_sync_lease(tenant_id, "corp.test", holder, 22_000, 32_000).await?);
    Ok(())
}
