//! Proof of control of a domain: a TXT record `passthru-verification=CODE` at the domain's
//! name, looked up through a configurable resolver (`serve --dns-server IP:PORT`, else the
//! system's resolv.conf). Lookups are never cached, so a record just published is seen on
//! the next try, and each has a timeout.

use std::net::SocketAddr;
use std::time::Duration;

use hickory_resolver::config::{NameServerConfigGroup, ResolverConfig, ResolverOpts};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::TokioResolver;

/// The TXT record's prefix.
pub const PREFIX: &str = "passthru-verification=";

/// Why a lookup could not say yes or no.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProofError {
    /// The resolver could not be set up (unreadable resolv.conf).
    #[error("the DNS resolver could not be set up: {0}")]
    Setup(String),
    /// The DNS server did not answer or failed (not "no such record").
    #[error("the DNS lookup of {name} failed: {reason}. Check the cloud's DNS server (serve --dns-server) and try again.")]
    Lookup { name: String, reason: String },
}

/// What a lookup found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Proof {
    /// The expected record is there.
    Found,
    /// No TXT record with the code; the TXT strings seen (for the error message).
    Missing(Vec<String>),
}

/// The resolver used for proofs. Cheap to clone.
#[derive(Debug, Clone)]
pub struct DomainProof {
    resolver: std::sync::Arc<TokioResolver>,
}

fn options() -> ResolverOpts {
    let mut o = ResolverOpts::default();
    o.timeout = Duration::from_secs(3);
    o.attempts = 2;
    o.cache_size = 0;
    o
}

impl DomainProof {
    /// A resolver asking `server` (UDP, then TCP for truncated answers), or the system's
    /// configured servers when `None`.
    pub fn new(server: Option<SocketAddr>) -> Result<DomainProof, ProofError> {
        let resolver = match server {
            Some(addr) => {
                let group = NameServerConfigGroup::from_ips_clear(&[addr.ip()], addr.port(), true);
                TokioResolver::builder_with_config(
                    ResolverConfig::from_parts(None, vec![], group),
                    TokioConnectionProvider::default(),
                )
                .with_options(options())
                .build()
            }
            None => TokioResolver::builder_tokio()
                .map_err(|e| ProofError::Setup(e.to_string()))?
                .with_options(options())
                .build(),
        };
        Ok(DomainProof {
            resolver: std::sync::Arc::new(resolver),
        })
    }

    /// Looks for `passthru-verification=CODE` among the TXT records of `domain`.
    pub async fn check(&self, domain: &str, code: &str) -> Result<Proof, ProofError> {
        let fqdn = format!("{}.", domain.trim_end_matches('.'));
        let expected = format!("{PREFIX}{code}");
        let lookup = tokio::time::timeout(Duration::from_secs(10), self.resolver.txt_lookup(fqdn))
            .await
            .map_err(|_| ProofError::Lookup {
                name: domain.to_string(),
                reason: "no answer within 10 s".into(),
            })?;
        let records = match lookup {
            Ok(l) => l,
            Err(e) if e.is_no_records_found() => return Ok(Proof::Missing(Vec::new())),
            Err(e) => {
                return Err(ProofError::Lookup {
                    name: domain.to_string(),
                    reason: e.to_string(),
                })
            }
        };
        let mut seen = Vec::new();
        for txt in records.iter() {
            // A TXT record's strings are one value split in 255-byte pieces.
            let value: String = txt
                .txt_data()
                .iter()
                .map(|part| String::from_utf8_lossy(part).into_owned())
                .collect();
            if value.trim() == expected {
                return Ok(Proof::Found);
            }
            seen.push(value.chars().take(100).collect());
        }
        Ok(Proof::Missing(seen))
    }
}
