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

/// The published key ids of one algorithm, in the JWKS's order (the current one first).
fn kids_of(k: &TenantKeys, alg: SigningAlg) -> Vec<String> {
    k.jwks()
        .into_iter()
        .filter(|j| j.alg == alg.as_str())
        .map(|j| j.kid)
        .collect()
}

fn now() -> i64 {
    jsonwebtoken::get_current_timestamp() as i64
}

/// A tenant's keys made of freshly generated keys (the current key of each algorithm).
fn keys_of(generated: &[&GeneratedKey]) -> anyhow::Result<TenantKeys> {
    let mut keys = Vec::new();
    for g in generated {
        let key = LoadedKey::new(&g.kid, g.alg, true, g.private_pem.as_bytes(), &g.public_raw)
            .map_err(anyhow::Error::msg)?;
        keys.push(key);
    }
    Ok(TenantKeys::ordered(keys, &SigningAlg::ALL)?)
}

fn admin_validation(alg: Algorithm) -> Validation {
    let mut v = Validation::new(alg);
    v.set_audience(&["passthru-admin"]);
    v
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
    for alg in SigningAlg::ALL {
        let tok = keys.sign_with(alg, &claims(a, now()))?;
        assert!(keys.verify_access(&tok, "passthru-admin").is_ok());
        assert!(keys.verify_access(&tok, "someone-else").is_err());
        // Another tenant's keys do not verify it.
        let other = f.signer.keys(b).await?;
        assert!(other.verify_access(&tok, "passthru-admin").is_err());
        assert_ne!(kids(&keys), kids(&other));
    }
    assert_eq!(keys.jwks().len(), 2, "one current key per algorithm");
    f.done().await
}

/// `SigningAlg` reads and writes the JOSE names, exactly, in JSON too; ES256 is the default.
#[test]
fn signing_alg_names() -> anyhow::Result<()> {
    for (alg, name) in [(SigningAlg::Es256, "ES256"), (SigningAlg::Rs256, "RS256")] {
        assert_eq!(name.parse::<SigningAlg>()?, alg);
        assert_eq!(alg.to_string(), name);
        assert_eq!(serde_json::to_value(alg)?, serde_json::json!(name));
        assert_eq!(serde_json::from_value::<SigningAlg>(name.into())?, alg);
    }
    assert_eq!(SigningAlg::default(), SigningAlg::Es256);
    for bad in ["rs256", "HS256", "none", "", "PS256"] {
        let e = bad.parse::<SigningAlg>().err().map(|e| e.to_string());
        assert!(
            e.as_deref()
                .is_some_and(|e| e.contains("use ES256 or RS256")),
            "{bad}: {e:?}"
        );
        assert!(serde_json::from_value::<SigningAlg>(bad.into()).is_err());
    }
    Ok(())
}

/// Tokens are signed with the key parsed once at load, in the bytes jsonwebtoken writes:
/// the same header and claims as `jsonwebtoken::encode`, a signature jsonwebtoken and
/// the published JWK verify (RS256 signatures are deterministic: the whole token is
/// jsonwebtoken's); a stored public key that is not the private key's is refused at load
/// rather than published.
#[test]
fn signing_matches_jsonwebtoken_and_the_published_key() -> anyhow::Result<()> {
    let ec = generate_signing_key()?;
    let rsa = generate_rsa_key()?;
    let keys = keys_of(&[&ec, &rsa])?;
    let c = claims(Uuid::new_v4(), now());
    let signed = |t: &str| t.rsplit_once('.').map(|(m, _)| m.to_string());

    let ours = keys.sign(&c)?;
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(ec.kid.clone());
    let ec_pem = ec.private_pem.as_bytes();
    let theirs = jsonwebtoken::encode(
        &header,
        &c,
        &jsonwebtoken::EncodingKey::from_ec_pem(ec_pem)?,
    )?;
    // ECDSA signatures are randomized: header and claims are the same bytes.
    assert_eq!(signed(&ours), signed(&theirs));
    assert_eq!(
        jsonwebtoken::decode_header(&ours)?.kid,
        Some(ec.kid.clone())
    );
    assert_eq!(keys.verify_access(&ours, "passthru-admin")?.tid, c.tid);
    let jwk = &keys.jwks()[0];
    let JwkKey::Ec { x, y, .. } = &jwk.key else {
        anyhow::bail!("the first key is not the EC one: {jwk:?}");
    };
    let published = DecodingKey::from_ec_components(x, y)?;
    let es256 = admin_validation(Algorithm::ES256);
    assert!(jsonwebtoken::decode::<AccessClaims>(&ours, &published, &es256).is_ok());

    let ours_rs = keys.sign_with(SigningAlg::Rs256, &c)?;
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(rsa.kid.clone());
    let rsa_pem = rsa.private_pem.as_bytes();
    let theirs_rs = jsonwebtoken::encode(
        &header,
        &c,
        &jsonwebtoken::EncodingKey::from_rsa_pem(rsa_pem)?,
    )?;
    assert_eq!(ours_rs, theirs_rs, "PKCS#1 v1.5: the same token");
    assert_eq!(keys.verify_access(&ours_rs, "passthru-admin")?.tid, c.tid);

    // A token altered after signing does not verify.
    for token in [&ours, &ours_rs] {
        let mut forged = token.clone();
        forged.insert_str(token.find('.').unwrap_or(0) + 1, "e30");
        assert!(keys.verify_access(&forged, "passthru-admin").is_err());
    }
    // Another key's public half stored with this private key: refused.
    let other = generate_signing_key()?;
    assert!(signing_key(ec_pem, &other.public_raw).is_err());
    assert!(signing_key(b"not a pem", &ec.public_raw).is_err());
    let other_rsa = generate_rsa_key()?;
    assert!(rsa_signing_key(rsa_pem, &other_rsa.public_raw).is_err());
    assert!(rsa_signing_key(rsa_pem, &rsa.public_raw).is_ok());
    // A key stored under the other algorithm's name does not load.
    assert!(LoadedKey::new(&ec.kid, SigningAlg::Rs256, true, ec_pem, &ec.public_raw).is_err());
    assert!(LoadedKey::new(&rsa.kid, SigningAlg::Es256, true, rsa_pem, &rsa.public_raw).is_err());
    Ok(())
}

/// An RS256 token: the header is `{"typ":"JWT","alg":"RS256","kid":...}` with the RSA key's
/// id, and the signature verifies with the JWKS's `n` and `e` alone (as a relying party
/// would: `DecodingKey::from_rsa_components`). The JWKS lists one current RSA key and one
/// current EC key, each with only the members of its `kty`.
#[tokio::test]
async fn rs256_tokens_verify_with_the_published_modulus_and_exponent() -> anyhow::Result<()> {
    let f = Fixture::new().await?;
    let a = f.tenant("a").await?;
    let keys = f.signer.keys(a).await?;
    let c = claims(a, now());
    let token = keys.sign_with(SigningAlg::Rs256, &c)?;
    let rsa_kid = keys
        .current_kid_of(SigningAlg::Rs256)
        .ok_or_else(|| anyhow::anyhow!("no RS256 key"))?;
    let head = token.split('.').next().unwrap_or_default();
    let head: serde_json::Value = serde_json::from_slice(&B64URL.decode(head)?)?;
    assert_eq!(
        head,
        serde_json::json!({"typ": "JWT", "alg": "RS256", "kid": rsa_kid})
    );
    assert_eq!(serde_json::to_string(&head["typ"])?, "\"JWT\"");

    let jwks = serde_json::to_value(keys.jwks())?;
    let listed = jwks.as_array().cloned().unwrap_or_default();
    assert_eq!(listed.len(), 2, "{jwks}");
    let rsa: Vec<_> = listed.iter().filter(|k| k["kty"] == "RSA").collect();
    let ec: Vec<_> = listed.iter().filter(|k| k["kty"] == "EC").collect();
    assert_eq!((rsa.len(), ec.len()), (1, 1), "{jwks}");
    let names = |k: &serde_json::Value| {
        let mut n: Vec<String> = k
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, _)| k.clone())
            .collect();
        n.sort();
        n
    };
    assert_eq!(names(rsa[0]), ["alg", "e", "kid", "kty", "n", "use"]);
    assert_eq!(names(ec[0]), ["alg", "crv", "kid", "kty", "use", "x", "y"]);
    assert_eq!(rsa[0]["alg"], "RS256");
    assert_eq!(rsa[0]["use"], "sig");
    assert_eq!(rsa[0]["kid"], rsa_kid);
    assert_eq!(rsa[0]["e"], "AQAB");
    let n = B64URL.decode(rsa[0]["n"].as_str().unwrap_or_default())?;
    assert_eq!(n.len(), 256, "a 2048-bit modulus, no leading zero");
    assert_eq!(ec[0]["alg"], "ES256");
    assert_eq!(ec[0]["crv"], "P-256");
    assert_eq!(ec[0]["kid"], keys.current_kid().unwrap_or_default());

    let published = DecodingKey::from_rsa_components(
        rsa[0]["n"].as_str().unwrap_or_default(),
        rsa[0]["e"].as_str().unwrap_or_default(),
    )?;
    let verified = jsonwebtoken::decode::<AccessClaims>(
        &token,
        &published,
        &admin_validation(Algorithm::RS256),
    )?;
    assert_eq!(verified.claims.oid, c.oid);
    // A relying party parsing our JWKS into jsonwebtoken's JWK type gets the same key.
    let set: jsonwebtoken::jwk::JwkSet = serde_json::from_value(serde_json::json!({"keys": jwks}))?;
    let theirs = set
        .find(rsa_kid)
        .ok_or_else(|| anyhow::anyhow!("kid not in {jwks}"))?;
    let dk = DecodingKey::from_jwk(theirs)?;
    assert!(
        jsonwebtoken::decode::<AccessClaims>(&token, &dk, &admin_validation(Algorithm::RS256))
            .is_ok()
    );
    // Our own `Jwk` reads back what it wrote.
    let back: Vec<Jwk> = serde_json::from_value(jwks.clone())?;
    assert_eq!(serde_json::to_value(&back)?, jwks);
    f.done().await
}

/// The algorithm comes from the key the `kid` names, never from the token's header: a
/// token whose header says RS256 but names the EC key (or says ES256 and names the RSA
/// key, or says HS256 with the RSA public key as the HMAC secret, or `none`) is refused,
/// even with a valid signature of the algorithm it claims.
#[test]
fn a_header_whose_alg_is_not_its_keys_is_refused() -> anyhow::Result<()> {
    let ec = generate_signing_key()?;
    let rsa = generate_rsa_key()?;
    let keys = keys_of(&[&ec, &rsa])?;
    let c = claims(Uuid::new_v4(), now());
    let forge = |alg: Algorithm, kid: &str, key: &jsonwebtoken::EncodingKey| {
        let mut header = Header::new(alg);
        header.kid = Some(kid.to_string());
        jsonwebtoken::encode(&header, &c, key)
    };
    let rsa_key = jsonwebtoken::EncodingKey::from_rsa_pem(rsa.private_pem.as_bytes())?;
    let ec_key = jsonwebtoken::EncodingKey::from_ec_pem(ec.private_pem.as_bytes())?;
    // Each key signing under its own kid verifies (the forgeries below differ only in kid).
    assert!(keys
        .verify_access(
            &forge(Algorithm::RS256, &rsa.kid, &rsa_key)?,
            "passthru-admin"
        )
        .is_ok());
    assert!(keys
        .verify_access(
            &forge(Algorithm::ES256, &ec.kid, &ec_key)?,
            "passthru-admin"
        )
        .is_ok());
    let forged = [
        (
            "RS256 naming the EC key",
            forge(Algorithm::RS256, &ec.kid, &rsa_key)?,
        ),
        (
            "ES256 naming the RSA key",
            forge(Algorithm::ES256, &rsa.kid, &ec_key)?,
        ),
        (
            "HS256 keyed with the RSA public key",
            forge(
                Algorithm::HS256,
                &rsa.kid,
                &jsonwebtoken::EncodingKey::from_secret(&rsa.public_raw),
            )?,
        ),
        (
            "HS256 keyed with the EC public key",
            forge(
                Algorithm::HS256,
                &ec.kid,
                &jsonwebtoken::EncodingKey::from_secret(&ec.public_raw),
            )?,
        ),
    ];
    for (what, token) in &forged {
        assert!(
            keys.verify_access(token, "passthru-admin").is_err(),
            "{what}"
        );
        assert!(
            keys.verify_user_token(token, "https://x/t/v2.0").is_err(),
            "{what}"
        );
    }
    // `alg: none`, unsigned.
    let none = format!(
        "{}.{}.",
        B64URL.encode(format!(r#"{{"alg":"none","kid":"{}"}}"#, rsa.kid)),
        B64URL.encode(serde_json::to_vec(&c)?)
    );
    assert!(keys.verify_access(&none, "passthru-admin").is_err());
    Ok(())
}

/// Rotating tenant A's keys changes A's JWKS and signing keys only: tenant B's stay as
/// they were, in memory and in the store (before per-tenant keys, B's changed too).
#[tokio::test]
async fn rotating_one_tenant_leaves_another_alone() -> anyhow::Result<()> {
    let f = Fixture::new().await?;
    let a = f.tenant("a").await?;
    let b = f.tenant("b").await?;
    let now = crate::clock::unix_now();
    let a_before = f.signer.keys(a).await?;
    let b_before = kids(&*f.signer.keys(b).await?);
    let b_token = f.signer.keys(b).await?.sign(&claims(b, now))?;
    let a_after = f.signer.rotate(a, now).await?;
    assert_eq!(kids(&a_after).len(), 4);
    for alg in SigningAlg::ALL {
        let old = kids_of(&a_before, alg);
        assert_eq!(
            kids_of(&a_after, alg)[1],
            old[0],
            "A's old {alg} key stays published"
        );
        assert_ne!(a_after.current_kid_of(alg), Some(old[0].as_str()));
    }
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

/// One rotation retires the current key of each algorithm: the new ones sign, the tokens
/// of the old ones still verify, and each algorithm keeps its own bound of retired keys.
#[tokio::test]
async fn rotation_retires_each_algorithm() -> anyhow::Result<()> {
    let f = Fixture::new().await?;
    let a = f.tenant("a").await?;
    let now = 1_700_000_000;
    let before = f.signer.reload(a, now).await?;
    let c = claims(a, crate::clock::unix_now());
    let old_tokens: Vec<String> = SigningAlg::ALL
        .into_iter()
        .map(|alg| before.sign_with(alg, &c))
        .collect::<Result<_, _>>()?;
    let after = f.signer.rotate(a, now + 1).await?;
    for (alg, old) in SigningAlg::ALL.into_iter().zip(&old_tokens) {
        assert_eq!(
            kids_of(&after, alg),
            [
                after.current_kid_of(alg).unwrap_or_default(),
                before.current_kid_of(alg).unwrap_or_default()
            ]
        );
        assert_eq!(after.verify_access(old, "passthru-admin")?.oid, c.oid);
        let new = after.sign_with(alg, &c)?;
        assert_eq!(
            jsonwebtoken::decode_header(&new)?.kid.as_deref(),
            after.current_kid_of(alg)
        );
        assert_eq!(
            jsonwebtoken::decode_header(&new)?.alg,
            alg.jwt(),
            "{alg} tokens are {alg}"
        );
    }
    // The JWKS: the current keys first (ES256, RS256), then the retired ones.
    let listed = after.jwks();
    let order: Vec<&str> = listed.iter().map(|j| j.alg.as_str()).collect();
    assert_eq!(&order[..2], ["ES256", "RS256"]);
    assert_eq!(listed[0].kid, after.current_kid().unwrap_or_default());
    f.done().await
}

/// Many rotations at once, and many first uses of a tenant without a key: one current key
/// per algorithm (made once), the bound holds, and memory ends on the store's newest set.
#[tokio::test]
async fn concurrent_rotations_and_first_uses() -> anyhow::Result<()> {
    let f = Fixture::new().await?;
    let signer = Arc::new(f.signer);
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    f.store.create_tenant(a, "a", 1).await?;
    f.store.create_tenant(b, "b", 1).await?;
    let now = crate::clock::unix_now();
    let mut tasks = tokio::task::JoinSet::new();
    // Each rotation makes an RSA key (0.1-0.5 s of CPU): a few of them among many first uses.
    for i in 0..200 {
        let s = signer.clone();
        tasks.spawn(async move {
            if i % 50 == 0 {
                s.rotate(a, now).await.map(|_| ())
            } else {
                s.keys(b).await.map(|_| ())
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r??;
    }
    assert_eq!(
        f.store.signing_key_rows(b).await?,
        2,
        "one first key of each algorithm"
    );
    assert_eq!(
        f.store.signing_key_rows(a).await?,
        2 * (1 + MAX_RETIRED_KEYS)
    );
    let fresh = Signer::new(f.store.clone(), Arc::new(SecretBox::from_key(&[9u8; 32])));
    assert_eq!(kids(&*signer.keys(a).await?), kids(&*fresh.keys(a).await?));
    assert_eq!(kids(&*signer.keys(b).await?), kids(&*fresh.keys(b).await?));
    f.store.close().await;
    std::fs::remove_dir_all(&f.dir)?;
    Ok(())
}

/// However often a tenant rotates, its JWKS holds the current key and at most
/// MAX_RETIRED_KEYS retired ones of each algorithm; retired keys go after the grace period.
#[tokio::test]
async fn jwks_stays_bounded() -> anyhow::Result<()> {
    let f = Fixture::new().await?;
    let a = f.tenant("a").await?;
    let now = 1_700_000_000;
    f.signer.reload(a, now).await?;
    let mut last = f.signer.keys(a).await?;
    // One rotation more than the bound (each makes an RSA key, 0.1-0.5 s).
    for i in 0..(MAX_RETIRED_KEYS + 1) {
        last = f.signer.rotate(a, now + i).await?;
        for alg in SigningAlg::ALL {
            let published = kids_of(&last, alg);
            assert!(
                published.len() as i64 <= 1 + MAX_RETIRED_KEYS,
                "{published:?}"
            );
        }
    }
    for alg in SigningAlg::ALL {
        assert_eq!(kids_of(&last, alg).len() as i64, 1 + MAX_RETIRED_KEYS);
    }
    let rows = f.store.signing_key_rows(a).await?;
    assert_eq!(
        rows,
        2 * (1 + MAX_RETIRED_KEYS),
        "old keys are deleted, not hidden"
    );
    // Past the grace period only the current keys are left, in memory and in the store.
    f.signer.refresh(now + 50 + KEY_KEEP_SECS).await?;
    let current: Vec<String> = SigningAlg::ALL
        .into_iter()
        .filter_map(|alg| last.current_kid_of(alg).map(str::to_string))
        .collect();
    assert_eq!(kids(&*f.signer.keys(a).await?), current);
    let rows = f.store.signing_key_rows(a).await?;
    assert_eq!(rows, 2);
    f.done().await
}

/// A tenant made with its ES256 key only (as `create_first_key` and every release before
/// RS256 make them) gets its RSA key when its keys are first loaded: the first JWKS already
/// lists it, and a second process loading the keys finds it rather than making another.
#[tokio::test]
async fn a_tenant_with_only_an_es256_key_gets_its_rsa_key_on_load() -> anyhow::Result<()> {
    let f = Fixture::new().await?;
    let a = f.tenant("a").await?;
    create_first_key(&f.store, &SecretBox::from_key(&[9u8; 32]), a, 1).await?;
    assert_eq!(
        f.store.signing_key_rows(a).await?,
        1,
        "ES256 only at creation"
    );
    let first = f
        .store
        .signing_keys(a, 1, KEY_KEEP_SECS, MAX_RETIRED_KEYS)
        .await?;
    let es_kid = first[0].kid.clone();
    assert_eq!(first[0].alg, "ES256");
    let keys = f.signer.keys(a).await?;
    assert_eq!(
        keys.current_kid(),
        Some(es_kid.as_str()),
        "the ES256 key stays"
    );
    let rsa_kid = keys
        .current_kid_of(SigningAlg::Rs256)
        .ok_or_else(|| anyhow::anyhow!("no RS256 key"))?
        .to_string();
    assert_eq!(kids_of(&keys, SigningAlg::Rs256), [rsa_kid.as_str()]);
    assert_eq!(f.store.signing_key_rows(a).await?, 2);
    let other = Signer::new(f.store.clone(), Arc::new(SecretBox::from_key(&[9u8; 32])));
    let seen = other.keys(a).await?;
    assert_eq!(
        seen.current_kid_of(SigningAlg::Rs256),
        Some(rsa_kid.as_str())
    );
    assert_eq!(kids(&seen), kids(&keys));
    assert_eq!(f.store.signing_key_rows(a).await?, 2);
    f.done().await
}

/// `keys_for(ES256)` (the admin API's and ES256 signing's paths) never makes an RSA key; the
/// complete set (`keys`: JWKS, RS256) does, once, and another process's set that was loaded
/// for ES256 only finds that key (at its refresh, or when it needs the complete set) rather
/// than making its own. A set loaded for ES256 only refuses to sign RS256, saying why.
#[tokio::test]
async fn keys_for_es256_makes_no_rsa_key_until_the_complete_set_is_needed() -> anyhow::Result<()> {
    let f = Fixture::new().await?;
    let a = f.tenant("a").await?;
    let es = f.signer.keys_for(a, SigningAlg::Es256).await?;
    assert_eq!(f.store.signing_key_rows(a).await?, 1, "no RSA key made");
    assert_eq!(es.jwks().len(), 1);
    let c = claims(a, now());
    let err = es
        .sign_with(SigningAlg::Rs256, &c)
        .err()
        .map(|e| e.to_string());
    assert!(
        err.as_deref().is_some_and(|e| e.contains("Signer::keys")),
        "{err:?}"
    );
    // Memory keeps the ES256-only set across a refresh (nothing is made)...
    f.signer.refresh(crate::clock::unix_now()).await?;
    assert_eq!(f.store.signing_key_rows(a).await?, 1);
    // ...and another process needing the complete set makes the RSA key, once.
    let other = Signer::new(f.store.clone(), Arc::new(SecretBox::from_key(&[9u8; 32])));
    let full = other.keys(a).await?;
    let rsa_kid = full
        .current_kid_of(SigningAlg::Rs256)
        .ok_or_else(|| anyhow::anyhow!("no RS256 key"))?
        .to_string();
    assert_eq!(f.store.signing_key_rows(a).await?, 2);
    // This process sees it at its next refresh, and its complete set is that key too.
    f.signer.refresh(crate::clock::unix_now()).await?;
    let es = f.signer.keys_for(a, SigningAlg::Es256).await?;
    assert_eq!(es.current_kid_of(SigningAlg::Rs256), Some(rsa_kid.as_str()));
    let third = Signer::new(f.store.clone(), Arc::new(SecretBox::from_key(&[9u8; 32])));
    third.keys_for(a, SigningAlg::Es256).await?;
    let tok = third.keys(a).await?.sign_with(SigningAlg::Rs256, &c)?;
    assert_eq!(
        jsonwebtoken::decode_header(&tok)?.kid.as_deref(),
        Some(rsa_kid.as_str())
    );
    assert_eq!(f.store.signing_key_rows(a).await?, 2, "no second RSA key");
    // `keys_for(RS256)` makes the RSA key too, and has the ES256 key of access tokens.
    let b = f.tenant("b").await?;
    let rs = f.signer.keys_for(b, SigningAlg::Rs256).await?;
    for alg in SigningAlg::ALL {
        assert!(rs.sign_with(alg, &claims(b, now())).is_ok());
    }
    f.done().await
}
