use super::*;

struct Fixture {
    dir: std::path::PathBuf,
    store: Store,
    signer: Signer,
}

impl Fixture {
    async fn new() -> anyhow::Result<Fixture> {
        let dir = std::env::temp_dir().join(format!("passthru-keys-{}", Uuid::new_v4()));
        std::fs::create_dir_all(&dir)?;
        let store = Store::open(&dir.join("passthru.db"), true).await?;
        let secrets = Arc::new(SecretBox::from_key(&[9u8; 32]));
        let signer = Signer::new(store.clone(), secrets);
        Ok(Fixture { dir, store, signer })
    }

    async fn tenant(&self, name: &str) -> anyhow::Result<Uuid> {
        let id = Uuid::new_v4();
        self.store.create_tenant(id, name, 1).await?;
        Ok(id)
    }

    async fn done(self) -> anyhow::Result<()> {
        self.store.close().await;
        std::fs::remove_dir_all(&self.dir)?;
        Ok(())
    }
}

fn claims(tid: Uuid, at: i64) -> AccessClaims {
    AccessClaims {
        iss: "https://x/t/v2.0".into(),
        aud: "passthru-admin".into(),
        sub: "s".into(),
        oid: Uuid::new_v4(),
        tid,
        exp: at + 60,
        iat: at,
        nbf: at,
        scp: String::new(),
        azp: String::new(),
        preferred_username: String::new(),
        ver: "2.0".into(),
    }
}

fn kids(k: &TenantKeys) -> Vec<String> {
    k.jwks().into_iter().map(|j| j.kid).collect()
}

#[tokio::test]
async fn sign_verify_and_reject() -> anyhow::Result<()> {
    let f = Fixture::new().await?;
    let a = f.tenant("a").await?;
    let b = f.tenant("b").await?;
    let keys = f.signer.keys(a).await?;
    // A token from the past is refused; a current one verifies.
    let old = keys.sign(&claims(a, 1_000_000_000))?;
    assert!(keys.verify_access(&old, "passthru-admin").is_err());
    let tok = keys.sign(&claims(a, jsonwebtoken::get_current_timestamp() as i64))?;
    assert!(keys.verify_access(&tok, "passthru-admin").is_ok());
    assert!(keys.verify_access(&tok, "someone-else").is_err());
    // Another tenant's keys do not verify it.
    let other = f.signer.keys(b).await?;
    assert!(other.verify_access(&tok, "passthru-admin").is_err());
    assert_ne!(kids(&keys), kids(&other));
    assert_eq!(keys.jwks().len(), 1);
    f.done().await
}

/// Tokens are signed with the key parsed once at load, in the bytes jsonwebtoken writes:
/// the same header and claims as `jsonwebtoken::encode`, a signature jsonwebtoken and
/// the published JWK verify; a stored public key that is not the private key's is
/// refused at load rather than published.
#[test]
fn signing_matches_jsonwebtoken_and_the_published_key() -> anyhow::Result<()> {
    let key = generate_signing_key()?;
    let pem = key.private_pem.as_bytes();
    let signing = signing_key(pem, &key.public_raw).map_err(anyhow::Error::msg)?;
    let keys = TenantKeys {
        keys: vec![LoadedKey {
            kid: key.kid.clone(),
            signing,
            header_b64: header_b64(&key.kid)?,
            decoding: DecodingKey::from_ec_components(
                &B64URL.encode(&key.public_raw[1..33]),
                &B64URL.encode(&key.public_raw[33..65]),
            )?,
            x: B64URL.encode(&key.public_raw[1..33]),
            y: B64URL.encode(&key.public_raw[33..65]),
        }],
    };
    let c = claims(Uuid::new_v4(), jsonwebtoken::get_current_timestamp() as i64);
    let ours = keys.sign(&c)?;
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(key.kid.clone());
    let theirs = jsonwebtoken::encode(&header, &c, &jsonwebtoken::EncodingKey::from_ec_pem(pem)?)?;
    // ECDSA signatures are randomized: header and claims are the same bytes.
    let signed = |t: &str| t.rsplit_once('.').map(|(m, _)| m.to_string());
    assert_eq!(signed(&ours), signed(&theirs));
    assert_eq!(
        jsonwebtoken::decode_header(&ours)?.kid,
        Some(key.kid.clone())
    );
    assert_eq!(keys.verify_access(&ours, "passthru-admin")?.tid, c.tid);
    let jwk = &keys.jwks()[0];
    let published = DecodingKey::from_ec_components(&jwk.x, &jwk.y)?;
    let mut v = Validation::new(Algorithm::ES256);
    v.set_audience(&["passthru-admin"]);
    assert!(jsonwebtoken::decode::<AccessClaims>(&ours, &published, &v).is_ok());
    // A token altered after signing does not verify.
    let mut forged = ours.clone();
    forged.insert_str(ours.find('.').unwrap_or(0) + 1, "e30");
    assert!(keys.verify_access(&forged, "passthru-admin").is_err());
    // Another key's public half stored with this private key: refused.
    let other = generate_signing_key()?;
    assert!(signing_key(pem, &other.public_raw).is_err());
    assert!(signing_key(b"not a pem", &key.public_raw).is_err());
    Ok(())
}

/// Rotating tenant A's key changes A's JWKS and signing key only: tenant B's stay as
/// they were, in memory and in the store (before per-tenant keys, B's changed too).
#[tokio::test]
async fn rotating_one_tenant_leaves_another_alone() -> anyhow::Result<()> {
    let f = Fixture::new().await?;
    let a = f.tenant("a").await?;
    let b = f.tenant("b").await?;
    let now = crate::clock::unix_now();
    let a_before = kids(&*f.signer.keys(a).await?);
    let b_before = kids(&*f.signer.keys(b).await?);
    let b_token = f.signer.keys(b).await?.sign(&claims(b, now))?;
    let a_after = f.signer.rotate(a, now).await?;
    assert_eq!(kids(&a_after).len(), 2);
    assert_eq!(
        kids(&a_after)[1],
        a_before[0],
        "A's old key stays published"
    );
    assert_ne!(a_after.current_kid(), Some(a_before[0].as_str()));
    let b_after = f.signer.keys(b).await?;
    assert_eq!(kids(&b_after), b_before, "B's JWKS is unchanged");
    assert_eq!(b_after.current_kid(), Some(b_before[0].as_str()));
    let b_new = b_after.sign(&claims(b, now))?;
    assert_eq!(
        jsonwebtoken::decode_header(&b_new)?.kid,
        jsonwebtoken::decode_header(&b_token)?.kid,
        "B still signs with its own key"
    );
    // The same from the store, as another process would read it.
    let fresh = Signer::new(f.store.clone(), Arc::new(SecretBox::from_key(&[9u8; 32])));
    assert_eq!(kids(&*fresh.keys(b).await?), b_before);
    assert_eq!(kids(&*fresh.keys(a).await?), kids(&a_after));
    f.done().await
}

/// Hundreds of rotations at once, and hundreds of first uses of a tenant without a key:
/// one current key, the bound holds, and memory ends on the store's newest set.
#[tokio::test]
async fn concurrent_rotations_and_first_uses() -> anyhow::Result<()> {
    let f = Fixture::new().await?;
    let signer = Arc::new(f.signer);
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    f.store.create_tenant(a, "a", 1).await?;
    f.store.create_tenant(b, "b", 1).await?;
    let now = crate::clock::unix_now();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..200 {
        let s = signer.clone();
        tasks.spawn(async move {
            if i % 2 == 0 {
                s.rotate(a, now).await.map(|_| ())
            } else {
                s.keys(b).await.map(|_| ())
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r??;
    }
    assert_eq!(f.store.signing_key_rows(b).await?, 1, "one first key");
    assert_eq!(f.store.signing_key_rows(a).await?, 1 + MAX_RETIRED_KEYS);
    let fresh = Signer::new(f.store.clone(), Arc::new(SecretBox::from_key(&[9u8; 32])));
    assert_eq!(kids(&*signer.keys(a).await?), kids(&*fresh.keys(a).await?));
    assert_eq!(kids(&*signer.keys(b).await?), kids(&*fresh.keys(b).await?));
    f.store.close().await;
    std::fs::remove_dir_all(&f.dir)?;
    Ok(())
}

/// However often a tenant rotates, its JWKS holds the current key and at most
/// MAX_RETIRED_KEYS retired ones; retired keys go after the grace period.
#[tokio::test]
async fn jwks_stays_bounded() -> anyhow::Result<()> {
    let f = Fixture::new().await?;
    let a = f.tenant("a").await?;
    let now = 1_700_000_000;
    f.signer.reload(a, now).await?;
    let mut last = Vec::new();
    for i in 0..50 {
        last = kids(&*f.signer.rotate(a, now + i).await?);
        assert!(last.len() as i64 <= 1 + MAX_RETIRED_KEYS, "{last:?}");
    }
    assert_eq!(last.len() as i64, 1 + MAX_RETIRED_KEYS);
    let rows = f.store.signing_key_rows(a).await?;
    assert_eq!(
        rows,
        1 + MAX_RETIRED_KEYS,
        "old keys are deleted, not hidden"
    );
    // Past the grace period only the current key is left, in memory and in the store.
    f.signer.refresh(now + 50 + KEY_KEEP_SECS).await?;
    assert_eq!(kids(&*f.signer.keys(a).await?), vec![last[0].clone()]);
    let rows = f.store.signing_key_rows(a).await?;
    assert_eq!(rows, 1);
    f.done().await
}
