//! Rules of the store's agent releases, run on every backend: a version is added once (of
//! many concurrent adds, exactly one wins), a package reads back byte for byte, the list
//! carries no package, removal says whether there was something, and tenants never see each
//! other's releases.

use futures_util::future::join_all;
use uuid::Uuid;

use crate::store::releases::ReleaseInfo;
use crate::store::{Backend, StoreError};

fn release(version: &str, added_at: i64) -> ReleaseInfo {
    ReleaseInfo {
        version: version.into(),
        target: "x86_64-linux".into(),
        sha256: "ab".repeat(32),
        size: 256,
        min_cloud_version: "0.1.0".into(),
        signed_manifest: format!("{{\"manifest\":\"{version}\",\"signature\":\"s\"}}"),
        added_at,
        added_by: "admin@contoso.example".into(),
    }
}

pub(crate) async fn releases(b: &dyn Backend, tenant: Uuid, other: Uuid) -> anyhow::Result<()> {
    anyhow::ensure!(b.releases(tenant).await?.is_empty());
    // Every byte value survives the round trip.
    let package: Vec<u8> = (0..=255u8).collect();
    b.add_release(tenant, &release("0.2.0", 10), &package)
        .await?;
    ensure_eq!(
        b.release_package(tenant, "0.2.0").await?,
        Some(package.clone())
    );
    ensure_eq!(b.releases(tenant).await?, vec![release("0.2.0", 10)]);

    // A version is added once: the second add is a conflict and changes nothing.
    match b.add_release(tenant, &release("0.2.0", 11), b"other").await {
        Err(StoreError::Conflict(what)) => anyhow::ensure!(what.contains("0.2.0"), "{what}"),
        other => anyhow::bail!("a second 0.2.0 was not refused: {other:?}"),
    }
    ensure_eq!(
        b.release_package(tenant, "0.2.0").await?,
        Some(package.clone())
    );

    // Of 20 concurrent adds of one version, exactly one wins.
    let adds = join_all((0..20).map(|i| {
        let body = vec![i as u8; 16];
        async move {
            b.add_release(tenant, &release("0.3.0", 20 + i), &body)
                .await
        }
    }))
    .await;
    let won = adds.iter().filter(|r| r.is_ok()).count();
    ensure_eq!(won, 1, "one add of 0.3.0 wins: {adds:?}");
    anyhow::ensure!(
        adds.iter()
            .all(|r| matches!(r, Ok(()) | Err(StoreError::Conflict(_)))),
        "{adds:?}"
    );
    let listed: Vec<String> = b
        .releases(tenant)
        .await?
        .into_iter()
        .map(|r| r.version)
        .collect();
    ensure_eq!(listed, vec!["0.2.0".to_string(), "0.3.0".to_string()]);

    // Tenants apart: the same version elsewhere is another release.
    anyhow::ensure!(b.releases(other).await?.is_empty());
    ensure_eq!(b.release_package(other, "0.2.0").await?, None);
    b.add_release(other, &release("0.2.0", 30), b"theirs")
        .await?;
    ensure_eq!(
        b.release_package(other, "0.2.0").await?,
        Some(b"theirs".to_vec())
    );
    anyhow::ensure!(!b.remove_release(other, "0.3.0").await?);

    // Removal says whether there was something; the other tenant keeps its own.
    anyhow::ensure!(b.remove_release(tenant, "0.2.0").await?);
    anyhow::ensure!(!b.remove_release(tenant, "0.2.0").await?);
    ensure_eq!(b.release_package(tenant, "0.2.0").await?, None);
    ensure_eq!(b.releases(other).await?.len(), 1);
    Ok(())
}
