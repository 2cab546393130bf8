//! Agent certificate renewal, asked on the agent's live connection (so authenticated by its
//! current client certificate): the agent sends a CSR for a new TLS key pair and a new HPKE
//! public key; the cloud issues a certificate for `serve --agent-cert-lifetime` and records
//! both beside the current ones. The agent's first connection with the new certificate makes
//! them current and retires the old ones (see `agent_ws::connect`).

use std::time::Duration;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use passthru_proto::wire::CloudToAgent;
use time::OffsetDateTime;
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::pki::IssuedAgentCert;
use crate::state::Shared;

/// Largest CSR accepted (a P-256 or RSA-4096 request is well under this).
const MAX_CSR: usize = 16 * 1024;
/// How long the answer may wait for room in the connection's queue.
const REPLY_TIMEOUT: Duration = Duration::from_secs(5);

/// What the agent sent.
#[derive(Debug)]
pub(crate) struct Renewal {
    pub(crate) csr_pem: String,
    pub(crate) hpke_public_key: String,
}

/// Renews the credentials of `agent_id` and answers on `reply` (the agent's connection).
pub(crate) async fn renew(
    state: Shared,
    tenant_id: Uuid,
    agent_id: Uuid,
    renewal: Renewal,
    reply: mpsc::Sender<CloudToAgent>,
) {
    let answer = match issue(
        &state,
        tenant_id,
        agent_id,
        &renewal,
        OffsetDateTime::now_utc(),
    )
    .await
    {
        Ok(issued) => {
            tracing::info!(agent = %agent_id, tenant = %tenant_id, not_after = issued.not_after, "agent certificate renewed; the old one stays valid until the agent connects with the new one");
            CloudToAgent::CertificateRenewed {
                certificate_pem: issued.pem,
                not_after: issued.not_after,
            }
        }
        Err(reason) => {
            tracing::warn!(agent = %agent_id, tenant = %tenant_id, %reason, "agent certificate renewal refused");
            CloudToAgent::RenewalRefused { reason }
        }
    };
    let _ = tokio::time::timeout(REPLY_TIMEOUT, reply.send(answer)).await;
}

/// Checks the request, issues the certificate and records it; `Err` says why not, for the
/// agent.
pub(crate) async fn issue(
    state: &Shared,
    tenant_id: Uuid,
    agent_id: Uuid,
    renewal: &Renewal,
    now: OffsetDateTime,
) -> Result<IssuedAgentCert, String> {
    if renewal.csr_pem.len() > MAX_CSR {
        return Err(format!("the certificate request is over {MAX_CSR} bytes"));
    }
    let hpke = B64
        .decode(renewal.hpke_public_key.as_bytes())
        .ok()
        .filter(|k| k.len() == 32)
        .ok_or("hpke_public_key must be 32 bytes of X25519 public key, base64")?;
    let issued = state
        .agent_ca
        .issue(
            &renewal.csr_pem,
            agent_id,
            tenant_id,
            now,
            state.agent_cert_lifetime,
        )
        .map_err(|e| e.to_string())?;
    match state
        .store
        .renew_agent_cert(agent_id, &issued.fingerprint, issued.not_after, &hpke)
        .await
    {
        Ok(true) => Ok(issued),
        Ok(false) => Err("this agent is revoked or no longer registered".into()),
        Err(e) => {
            tracing::error!(agent = %agent_id, error = %e, "could not record an agent's renewed certificate");
            Err("the cloud could not record the renewal (its store is unavailable); the agent asks again later".into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_state::TestServer;

    fn csr() -> anyhow::Result<String> {
        let key = rcgen::KeyPair::generate()?;
        Ok(rcgen::CertificateParams::new(Vec::<String>::new())?
            .serialize_request(&key)?
            .pem()?)
    }

    /// A renewal issues a certificate for the configured lifetime and records it (with the
    /// new HPKE key) beside the current one; a bad key, an oversized CSR or a revoked agent
    /// is refused with a reason and records nothing.
    #[tokio::test]
    async fn a_renewal_is_issued_and_recorded_beside_the_current_certificate() -> anyhow::Result<()>
    {
        let server = TestServer::start(None).await?;
        let state = &server.state;
        let (tid, aid) = (server.tenant_id, Uuid::new_v4());
        state
            .store
            .add_agent(aid, tid, "fp-current", i64::MAX, &[7; 32], "h", "1", 1, 40)
            .await?;
        let now = OffsetDateTime::now_utc();
        let hpke = B64.encode([9u8; 32]);
        let renewal = Renewal {
            csr_pem: csr()?,
            hpke_public_key: hpke.clone(),
        };
        let issued = issue(state, tid, aid, &renewal, now)
            .await
            .map_err(anyhow::Error::msg)?;
        assert_eq!(
            issued.not_after,
            (now + state.agent_cert_lifetime).unix_timestamp()
        );
        let record = state
            .store
            .agent_by_fingerprint(&issued.fingerprint)
            .await?
            .ok_or_else(|| anyhow::anyhow!("the renewed certificate is not recorded"))?;
        assert_eq!(record.id, aid);
        assert_eq!(record.cert_fingerprint, "fp-current");
        assert_eq!(record.next_cert_expires_at, Some(issued.not_after));

        for (csr_pem, key, why) in [
            (csr()?, B64.encode([1u8; 31]), "hpke_public_key"),
            (csr()?, "not base64!".to_string(), "hpke_public_key"),
            ("x".repeat(MAX_CSR + 1), hpke.clone(), "over"),
            ("garbage".to_string(), hpke.clone(), "not valid"),
        ] {
            let bad = Renewal {
                csr_pem,
                hpke_public_key: key,
            };
            let refused = issue(state, tid, aid, &bad, now)
                .await
                .err()
                .unwrap_or_default();
            assert!(refused.contains(why), "{why}: {refused}");
        }
        assert!(state.store.revoke_agent(tid, aid).await?);
        let refused = issue(state, tid, aid, &renewal, now)
            .await
            .err()
            .unwrap_or_default();
        assert!(refused.contains("revoked"), "{refused}");
        server.done().await
    }
}
