//! Issuing an agent's client certificate from its CSR (registration): the input is the CSR,
//! as PEM text when it starts with `-----BEGIN`, else as DER (wrapped in PEM here). An issued
//! certificate must carry the subject and SAN the cloud sets, whatever the CSR asked for.
#![no_main]

use std::sync::OnceLock;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use libfuzzer_sys::fuzz_target;
use passthru_cloud::pki::{self, AgentCa, PkiPaths};
use time::OffsetDateTime;
use uuid::Uuid;
use x509_parser::prelude::{FromDer as _, GeneralName, X509Certificate};

const TENANT: Uuid = Uuid::from_u128(0x1111_1111_1111_4111_8111_1111_1111_1111);
const AGENT: Uuid = Uuid::from_u128(0x2222_2222_2222_4222_8222_2222_2222_2222);

fn ca() -> &'static AgentCa {
    static CA: OnceLock<AgentCa> = OnceLock::new();
    CA.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("passthru-fuzz-pki-{}", std::process::id()));
        let paths = PkiPaths::new(&dir);
        pki::create(
            &paths,
            &["cloud.example.test".into()],
            OffsetDateTime::now_utc(),
        )
        .expect("the CAs");
        AgentCa::load(&paths).expect("the agent CA")
    })
}

fuzz_target!(|data: &[u8]| {
    let pem = if data.starts_with(b"-----BEGIN") {
        String::from_utf8_lossy(data).into_owned()
    } else {
        format!(
            "-----BEGIN CERTIFICATE REQUEST-----\n{}\n-----END CERTIFICATE REQUEST-----\n",
            B64.encode(data)
        )
    };
    let now = OffsetDateTime::from_unix_timestamp(1_800_000_000).expect("a time");
    let Ok(issued) = ca().issue(&pem, AGENT, TENANT, now, pki::default_agent_cert_lifetime())
    else {
        return;
    };
    let der = rustls_pem(&issued.pem);
    let (_, cert) = X509Certificate::from_der(&der).expect("an issued certificate parses");
    let cn: Vec<&str> = cert
        .subject()
        .iter_common_name()
        .filter_map(|a| a.as_str().ok())
        .collect();
    assert_eq!(cn, vec![format!("agent {AGENT}")]);
    let san = cert
        .subject_alternative_name()
        .expect("one SAN extension")
        .expect("a SAN");
    let want = format!("urn:passthru:tenant:{TENANT}:agent:{AGENT}");
    assert_eq!(
        san.value.general_names,
        vec![GeneralName::URI(&want)],
        "the SAN is the cloud's"
    );
    assert_eq!(issued.fingerprint, pki::fingerprint(&der));
});

/// The DER of the one certificate in `pem`.
fn rustls_pem(pem: &str) -> Vec<u8> {
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    B64.decode(body).expect("the issued PEM is base64")
}
