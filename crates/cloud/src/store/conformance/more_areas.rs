//! The rules of attempt counters, password writeback, signing keys, the portal and
//! federation.

use super::*;

/// Every rule of [`AttemptStore`].
pub(crate) async fn attempts<S: AttemptStore + ?Sized>(s: &S) -> anyhow::Result<()> {
    // A window counts to its limit, then refuses until it ends; keys and scopes apart.
    for n in 1..=3 {
        ensure_eq!(
            s.bump_attempts("x", "k", 3, 60, 100).await?,
            Bump::Counted(n)
        );
    }
    ensure_eq!(
        s.bump_attempts("x", "k", 3, 60, 159).await?,
        Bump::Refused { retry_at: 160 }
    );
    ensure_eq!(
        s.bump_attempts("x", "other", 3, 60, 159).await?,
        Bump::Counted(1)
    );
    ensure_eq!(
        s.bump_attempts("y", "k", 3, 60, 159).await?,
        Bump::Counted(1)
    );
    ensure_eq!(
        s.bump_attempts("x", "k", 3, 60, 160).await?,
        Bump::Counted(1),
        "a new window"
    );
    ensure_eq!(s.purge_attempts(159 + 60, 60).await?, 2);
    ensure_eq!(s.purge_attempts(160 + 60, 60).await?, 1);
    // Hundreds of bumps of one key at once: exactly the limit is counted.
    let bumps = join_all((0..300).map(|_| s.bump_attempts("z", "k", 5, 3600, 1000))).await;
    let mut counted = 0;
    for b in bumps {
        counted += usize::from(matches!(b?, Bump::Counted(_)));
    }
    anyhow::ensure!(
        counted == 5,
        "{counted} of 300 parallel bumps counted, not 5"
    );
    Ok(())
}

/// Every rule of [`WritebackStore`], on a store where `t` is a tenant and `u` one of its
/// users (writeback not allowed yet).
pub(crate) async fn writeback<S: WritebackStore + ?Sized>(
    s: &S,
    t: Uuid,
    u: Uuid,
) -> anyhow::Result<()> {
    anyhow::ensure!(s.set_writeback_allowed(t, u, true, 2).await?);
    anyhow::ensure!(!s.set_writeback_allowed(t, Uuid::new_v4(), true, 2).await?);

    let flow = ResetFlow {
        tenant_id: t,
        user_id: u,
        csrf: "c".into(),
        verified: false,
        wrong_codes: 0,
    };
    s.start_reset_flow("h1", &flow, 100).await?;
    s.reset_flow_code("h1", false).await?;
    let got = s.reset_flow(t, "h1", 50).await?;
    ensure_eq!(
        got.as_ref().map(|f| (f.verified, f.wrong_codes)),
        Some((false, 1))
    );
    s.reset_flow_code("h1", true).await?;
    anyhow::ensure!(s.reset_flow(t, "h1", 50).await?.is_some_and(|f| f.verified));
    anyhow::ensure!(s.reset_flow(t, "h1", 100).await?.is_none(), "expired");
    anyhow::ensure!(
        s.reset_flow(Uuid::new_v4(), "h1", 50).await?.is_none(),
        "other tenant"
    );
    s.end_reset_flow("h1", 50).await?;
    anyhow::ensure!(s.reset_flow(t, "h1", 50).await?.is_none());
    // Wrong codes counted at once are all counted (the per-flow count the reset page shows).
    s.start_reset_flow("h2", &flow, 100).await?;
    for r in join_all((0..50).map(|_| s.reset_flow_code("h2", false))).await {
        r?;
    }
    let counted = s.reset_flow(t, "h2", 50).await?.map(|f| f.wrong_codes);
    ensure_eq!(counted, Some(50), "wrong codes lost among 50 at once");
    Ok(())
}

/// Every rule of [`SigningKeyStore`], on a store where `t` and `other` are two tenants without
/// keys.
pub(crate) async fn signing_keys<S: SigningKeyStore + ?Sized>(
    s: &S,
    t: Uuid,
    other: Uuid,
) -> anyhow::Result<()> {
    let key = |kid: &'static str| NewKey {
        kid,
        alg: "ES256",
        sealed_private: b"sealed",
        public_raw: b"public",
    };
    let kids = |keys: &[crate::store::signing_keys::StoredKey]| {
        keys.iter().map(|k| k.kid.clone()).collect::<Vec<_>>()
    };
    // Many processes creating a tenant's first key at once: one wins.
    let names = ["k0", "k1", "k2", "k3", "k4", "k5", "k6", "k7"];
    let firsts = join_all(names.iter().map(|n| s.add_first_signing_key(t, key(n), 10))).await;
    let mut won = 0;
    for f in firsts {
        won += usize::from(f?);
    }
    anyhow::ensure!(won == 1, "{won} first keys stored of 8 at once");
    let first = s.signing_keys(t, 10, 100, 2).await?;
    anyhow::ensure!(
        first.len() == 1 && first[0].retired_at.is_none(),
        "{first:?}"
    );
    let first_kid = first[0].kid.clone();
    // Rotations: the new key is current, the old ones published newest first, at most two.
    s.rotate_signing_keys(t, &[key("r1")], 20, 100, 2).await?;
    s.rotate_signing_keys(t, &[key("r2")], 30, 100, 2).await?;
    ensure_eq!(
        kids(&s.signing_keys(t, 30, 100, 2).await?),
        vec!["r2", "r1", first_kid.as_str()]
    );
    s.rotate_signing_keys(t, &[key("r3")], 40, 100, 2).await?;
    ensure_eq!(
        kids(&s.signing_keys(t, 40, 100, 2).await?),
        vec!["r3", "r2", "r1"],
        "bounded"
    );
    // Retired keys past the grace period are no longer published, and the prune deletes them.
    ensure_eq!(
        kids(&s.signing_keys(t, 135, 100, 2).await?),
        vec!["r3", "r2"]
    );
    anyhow::ensure!(s.prune_signing_keys(135, 100, 2).await? >= 1);
    ensure_eq!(
        kids(&s.signing_keys(t, 40, 100, 2).await?),
        vec!["r3", "r2"]
    );
    // Another tenant: its own first key, untouched by this tenant's rotations.
    anyhow::ensure!(s.add_first_signing_key(other, key("o1"), 10).await?);
    s.rotate_signing_keys(t, &[key("r4")], 50, 100, 2).await?;
    ensure_eq!(kids(&s.signing_keys(other, 50, 100, 2).await?), vec!["o1"]);
    // A kid is unique in its tenant; a refused rotation changes nothing.
    anyhow::ensure!(
        s.rotate_signing_keys(t, &[key("r4")], 60, 100, 2)
            .await
            .is_err(),
        "a tenant has two keys with one kid"
    );
    ensure_eq!(
        kids(&s.signing_keys(t, 60, 100, 2).await?),
        vec!["r4", "r3", "r2"],
        "nothing changed"
    );
    Ok(())
}

/// The rules of [`SigningKeyStore`] per algorithm, on a store where `t` is a tenant without
/// keys: each algorithm has its own current key (a tenant with an ES256 key gets its first
/// RS256 key, once among many at once), rotation, bound and prune; one rotation of both is
/// one transaction; the algorithm reads back.
pub(crate) async fn signing_key_algorithms<S: SigningKeyStore + ?Sized>(
    s: &S,
    t: Uuid,
) -> anyhow::Result<()> {
    let key = |kid: &'static str, alg: &'static str| NewKey {
        kid,
        alg,
        sealed_private: b"sealed",
        public_raw: b"public",
    };
    let es = |kid| key(kid, "ES256");
    let rs = |kid| key(kid, "RS256");
    // (kid, alg, current) in the published order.
    let published = |now: i64| async move {
        anyhow::Ok(
            s.signing_keys(t, now, 100, 2)
                .await?
                .into_iter()
                .map(|k| (k.kid, k.alg, k.retired_at.is_none()))
                .collect::<Vec<_>>(),
        )
    };
    let of = |keys: &[(String, String, bool)], alg: &str| {
        keys.iter()
            .filter(|k| k.1 == alg)
            .map(|k| k.0.clone())
            .collect::<Vec<_>>()
    };
    anyhow::ensure!(s.add_first_signing_key(t, es("e0"), 10).await?);
    anyhow::ensure!(!s.add_first_signing_key(t, es("e1"), 10).await?);
    // A tenant with an ES256 key (one from before RS256) gets its first RS256 key: once.
    let names = ["s0", "s1", "s2", "s3", "s4", "s5", "s6", "s7"];
    let firsts = join_all(names.iter().map(|n| s.add_first_signing_key(t, rs(n), 20))).await;
    let mut won = Vec::new();
    for (n, f) in names.iter().zip(firsts) {
        if f? {
            won.push(*n);
        }
    }
    anyhow::ensure!(
        won.len() == 1,
        "{won:?}: RS256 first keys stored of 8 at once"
    );
    let s0 = won[0];
    let keys = published(20).await?;
    ensure_eq!(
        keys,
        vec![
            (s0.to_string(), "RS256".to_string(), true),
            ("e0".to_string(), "ES256".to_string(), true)
        ],
        "both current, newest first"
    );
    // One rotation of both: each algorithm's current key is retired.
    s.rotate_signing_keys(t, &[es("e2"), rs("s8")], 30, 100, 2)
        .await?;
    let keys = published(30).await?;
    ensure_eq!(of(&keys, "ES256"), vec!["e2", "e0"]);
    ensure_eq!(of(&keys, "RS256"), vec!["s8", s0]);
    ensure_eq!(
        keys.iter().filter(|k| k.2).count(),
        2,
        "one current key per algorithm: {keys:?}"
    );
    anyhow::ensure!(keys[0].2 && keys[1].2, "current keys first: {keys:?}");
    // Rotating one algorithm leaves the other's keys as they are, and each has its own bound.
    for (i, kid) in ["e3", "e4", "e5"].into_iter().enumerate() {
        s.rotate_signing_keys(t, &[es(kid)], 40 + i as i64, 100, 2)
            .await?;
    }
    let keys = published(42).await?;
    ensure_eq!(of(&keys, "ES256"), vec!["e5", "e4", "e3"], "ES256 bounded");
    ensure_eq!(of(&keys, "RS256"), vec!["s8", s0], "RS256 untouched");
    ensure_eq!(
        s.signing_key_rows(t).await?,
        5,
        "old keys are deleted, not hidden"
    );
    // A kid taken refuses the whole rotation: neither algorithm moves.
    anyhow::ensure!(
        s.rotate_signing_keys(t, &[rs("s9"), es("e5")], 50, 100, 2)
            .await
            .is_err(),
        "a tenant has two keys with one kid"
    );
    ensure_eq!(published(50).await?, keys, "nothing changed");
    // Past the grace period only the current keys are published, and the prune deletes the
    // retired ones of both algorithms.
    let keys = published(42 + 101).await?;
    ensure_eq!(of(&keys, "ES256"), vec!["e5"]);
    ensure_eq!(of(&keys, "RS256"), vec!["s8"]);
    anyhow::ensure!(s.prune_signing_keys(42 + 101, 100, 2).await? >= 3);
    ensure_eq!(s.signing_key_rows(t).await?, 2);
    Ok(())
}

/// Every rule of [`PortalStore`], on a store where `t` is a tenant.
pub(crate) async fn portal<S: PortalStore + ?Sized>(s: &S, t: Uuid) -> anyhow::Result<()> {
    let login = PortalLogin {
        tenant_id: t,
        verifier: "v".into(),
        nonce: "n".into(),
    };
    s.put_portal_login("h", &login, 100, 10).await?;
    anyhow::ensure!(s.take_portal_login("h", 200).await?.is_none(), "expired");
    s.put_portal_login("h2", &login, 100, 10).await?;
    ensure_eq!(s.take_portal_login("h2", 20).await?, Some(login));
    anyhow::ensure!(s.take_portal_login("h2", 20).await?.is_none(), "only once");
    let sess = PortalSession {
        tenant_id: t,
        user_id: Uuid::new_v4(),
        csrf: "c".into(),
        auth_time: 1,
        expires_at: 100,
    };
    s.add_portal_session("sid", &sess, 10).await?;
    ensure_eq!(s.portal_session("sid", 50).await?, Some(sess.clone()));
    anyhow::ensure!(s.portal_session("sid", 100).await?.is_none());
    s.add_portal_session("sid2", &sess, 10).await?;
    s.delete_portal_session("sid2").await?;
    anyhow::ensure!(
        s.portal_session("sid2", 50).await?.is_none(),
        "signed out, still read"
    );
    anyhow::ensure!(
        s.portal_session("sid", 50).await?.is_some(),
        "another session ended"
    );
    s.delete_portal_sessions_of(t, sess.user_id).await?;
    anyhow::ensure!(s.portal_session("sid", 50).await?.is_none());
    // A sign-in state redeemed by many callbacks at once: one gets it.
    let login = PortalLogin {
        tenant_id: t,
        verifier: "v".into(),
        nonce: "n".into(),
    };
    s.put_portal_login("race", &login, 100, 10).await?;
    let takes = join_all((0..32).map(|_| s.take_portal_login("race", 20))).await;
    let mut won = 0;
    for r in takes {
        won += usize::from(r?.is_some());
    }
    anyhow::ensure!(won == 1, "{won} of 32 callbacks got the sign-in state");
    Ok(())
}

/// Every rule of [`FederationStore`], on a store where `t` is a tenant.
pub(crate) async fn federation<S: FederationStore + ?Sized>(s: &S, t: Uuid) -> anyhow::Result<()> {
    let secrets = crate::secret_box::SecretBox::from_key(&[3u8; 32]);
    let cfg = FederationConfig {
        domain: "Fab.Example".into(),
        tenant_id: t,
        issuer: "https://idp.example/t/v2.0".into(),
        client_id: "client-1".into(),
        client_secret: zeroize::Zeroizing::new("s3cret-value".into()),
    };
    s.add_federated_domain(&cfg, "code", 1, &secrets).await?;
    anyhow::ensure!(
        matches!(
            s.add_federated_domain(&cfg, "code", 1, &secrets).await,
            Err(StoreError::Conflict(_))
        ),
        "a domain added twice"
    );
    let got = s.federation("FAB.example", &secrets).await?;
    anyhow::ensure!(
        got.as_ref()
            .is_some_and(|f| f.client_secret.as_str() == "s3cret-value"
                && f.tenant_id == t
                && f.client_id == "client-1"),
        "the settings do not read back"
    );
    let state = FederationState {
        authz_id: "r".into(),
        domain: "fab.example".into(),
        issuer: cfg.issuer.clone(),
        nonce: "n".into(),
        code_verifier: "v".into(),
        browser_hash: "b".into(),
        redirect_uri: "https://x/cb".into(),
        token_endpoint: "https://idp/token".into(),
        jwks_uri: "https://idp/keys".into(),
        username: "a@fab.example".into(),
    };
    // A round trip: only in its tenant, once, until it expires.
    s.put_federation_state("h1", t, &state, 100, 10).await?;
    ensure_eq!(
        s.take_federation_state("h1", Uuid::new_v4(), 10).await?,
        None
    );
    ensure_eq!(
        s.take_federation_state("h1", t, 10).await?,
        Some(state.clone())
    );
    ensure_eq!(
        s.take_federation_state("h1", t, 11).await?,
        None,
        "used once"
    );
    s.put_federation_state("h2", t, &state, 100, 10).await?;
    ensure_eq!(
        s.take_federation_state("h2", t, 100).await?,
        None,
        "expired"
    );
    // Many callbacks with one state at once: one gets it.
    s.put_federation_state("race", t, &state, 100, 10).await?;
    let takes = join_all((0..32).map(|_| s.take_federation_state("race", t, 20))).await;
    let mut won = 0;
    for r in takes {
        won += usize::from(r?.is_some());
    }
    anyhow::ensure!(won == 1, "{won} of 32 callbacks got the round trip");
    // Conversion to managed: the settings and round trips in progress go.
    s.put_federation_state("h3", t, &state, 100, 10).await?;
    ensure_eq!(
        s.convert_to_managed(t, "fab.example").await?,
        Conversion::Converted
    );
    anyhow::ensure!(s.federation("fab.example", &secrets).await?.is_none());
    ensure_eq!(s.take_federation_state("h3", t, 10).await?, None);
    ensure_eq!(
        s.convert_to_managed(t, "fab.example").await?,
        Conversion::AlreadyManaged
    );
    anyhow::ensure!(matches!(
        s.convert_to_managed(t, "nope.example").await,
        Err(StoreError::NotFound(_))
    ));
    Ok(())
}
