//! The way to the cloud, step by step (name, TCP, TLS: a certificate from another issuer
//! than the agent registered with is a TLS-inspecting proxy or firewall in the path), then the
//! cloud's opinion of this agent (its certificate accepted, not revoked) and the clock against
//! the cloud's.

use std::sync::Arc;

use futures_util::StreamExt as _;
use passthru_directory::dc_tls::{cert_facts, explain_certificate, ServerVerifier};
use passthru_proto::wire::CloudToAgent;
use tokio_tungstenite::tungstenite::Message;
use url::Host;

use super::{Check, DoctorOptions};
use crate::config::{AgentConfig, DEFAULT_CLOCK_SKEW_TOLERANCE_SECONDS};
use crate::connect::Endpoint;
use crate::link_error::LinkError;
use crate::proxy::ProxySettings;
use crate::state_dir::AgentState;

/// Checks each cloud address the agent dials.
pub(super) async fn check_cloud(
    agent: Option<&AgentState>,
    config: Option<&AgentConfig>,
    options: &DoctorOptions,
    checks: &mut Vec<Check>,
) {
    let Some(agent) = agent else {
        checks.push(Check::skip(
            "cloud",
            "all",
            "not checked: the state dir does not load (see above)",
        ));
        return;
    };
    let tenant = agent.registration.tenant_id;
    let urls: Vec<String> = match config.and_then(|c| c.cloud_urls.as_ref()) {
        Some(urls) => urls.iter().map(|u| u.to_string()).collect(),
        None => vec![agent.registration.agent_endpoint.clone()],
    };
    let tolerance = config
        .map(|c| c.clock_skew_tolerance.as_secs())
        .unwrap_or(DEFAULT_CLOCK_SKEW_TOLERANCE_SECONDS);
    // The proxy in use: `[cloud] proxy`, else HTTPS_PROXY (NO_PROXY aside).
    let proxy = match ProxySettings::from_environment(config.and_then(|c| c.proxy.as_ref())) {
        Ok(Some(p)) => {
            checks.push(Check::pass("proxy", "settings", p.describe()));
            Some(Arc::new(p))
        }
        Ok(None) => {
            checks.push(Check::pass(
                "proxy",
                "settings",
                "none: the agent dials the cloud directly ([cloud] proxy and HTTPS_PROXY are not set)",
            ));
            None
        }
        Err(e) => {
            checks.push(Check::fail(
                "proxy",
                "settings",
                e.to_string(),
                "fix [cloud] proxy / proxy_auth_file in the configuration, or HTTPS_PROXY",
            ));
            None
        }
    };
    for url in urls {
        match Endpoint::new(&url, tenant) {
            Ok(endpoint) => {
                let endpoint = endpoint.through(proxy.as_ref());
                check_endpoint(&endpoint, agent, tolerance, options, checks).await
            }
            Err(e) => checks.push(Check::fail(
                &format!("cloud {url}"),
                "address",
                e.to_string(),
                "fix [cloud] urls in the configuration, or register again",
            )),
        }
    }
}

async fn check_endpoint(
    endpoint: &Endpoint,
    agent: &AgentState,
    tolerance: u64,
    options: &DoctorOptions,
    checks: &mut Vec<Check>,
) {
    let subject = format!("cloud {}", endpoint.address());
    let (host, port) = endpoint.host_port();
    let skip_rest = |checks: &mut Vec<Check>, from: &str, why: &str| {
        let steps = ["dns", "tcp", "tls", "agent", "clock"];
        let at = steps.iter().position(|s| *s == from).unwrap_or(0);
        for step in &steps[at..] {
            checks.push(Check::skip(&subject, step, format!("not checked: {why}")));
        }
    };
    // DNS (the proxy's job when there is one).
    let via = endpoint
        .proxy()
        .map(|p| format!(" through the proxy {}", p.describe()))
        .unwrap_or_default();
    match host {
        Host::Domain(name) if endpoint.proxy().is_some() => checks.push(Check::pass(
            &subject,
            "dns",
            format!("{name} is resolved by the proxy{via}"),
        )),
        Host::Domain(name) => {
            match tokio::time::timeout(
                options.timeout,
                tokio::net::lookup_host((name.as_str(), port)),
            )
            .await
            {
                Ok(Ok(mut addrs)) => match addrs.next() {
                    Some(a) => checks.push(Check::pass(
                        &subject,
                        "dns",
                        format!("{name} is {}", a.ip()),
                    )),
                    None => {
                        checks.push(Check::fail(
                            &subject,
                            "dns",
                            format!("{name} has no address"),
                            "check the cloud's name and this computer's DNS servers",
                        ));
                        return skip_rest(checks, "tcp", "the name does not resolve");
                    }
                },
                Ok(Err(e)) => {
                    checks.push(Check::fail(
                        &subject,
                        "dns",
                        format!("cannot resolve {name}: {e}"),
                        "check the cloud's name and this computer's DNS servers (/etc/resolv.conf)",
                    ));
                    return skip_rest(checks, "tcp", "the name does not resolve");
                }
                Err(_) => {
                    checks.push(Check::fail(
                        &subject,
                        "dns",
                        format!(
                            "no answer resolving {name} within {} s",
                            options.timeout.as_secs()
                        ),
                        "check this computer's DNS servers",
                    ));
                    return skip_rest(checks, "tcp", "the name does not resolve");
                }
            }
        }
        other => checks.push(Check::pass(
            &subject,
            "dns",
            format!("{other} is an address (no lookup)"),
        )),
    }
    // TCP, or the proxy's tunnel.
    let tcp = match crate::connect::dial(endpoint).await {
        Ok(s) => {
            checks.push(Check::pass(
                &subject,
                "tcp",
                format!("connected to {}{via}", endpoint.authority()),
            ));
            s
        }
        Err(e) => {
            let fix = match &e {
                LinkError::ProxyUnreachable { .. } => "check that the proxy runs and its address in [cloud] proxy (or HTTPS_PROXY)".to_string(),
                LinkError::ProxyAuthentication { .. } => "put the proxy account's user:password in the file [cloud] proxy_auth_file names (mode 0600)".to_string(),
                LinkError::ProxyRefused { .. } => format!("ask the proxy's administrators to allow CONNECT to {}", endpoint.authority()),
                _ => format!("check that the cloud is up and that the firewall lets this computer out to TCP port {port} (outbound only: the agent needs no inbound port); behind a proxy, set [cloud] proxy"),
            };
            checks.push(Check::fail(&subject, "tcp", e.to_string(), fix));
            return skip_rest(checks, "tls", "no connection");
        }
    };
    // TLS, with the agent's client certificate, remembering what the server presented.
    let trusted = agent
        .cloud_ca
        .as_ref()
        .map(|p| {
            format!(
                "the CA the agent registered with ({}) or the system's roots",
                p.display()
            )
        })
        .unwrap_or_else(|| "the system's roots".to_string());
    let verifier = match passthru_client::tls::root_store(agent.cloud_ca.as_deref())
        .map_err(|e| e.to_string())
        .and_then(|roots| ServerVerifier::new(roots, None))
    {
        Ok(v) => Arc::new(v),
        Err(e) => {
            checks.push(Check::fail(
                &subject,
                "tls",
                e,
                "register the agent again with the cloud's CA file (--ca-file)",
            ));
            return skip_rest(checks, "agent", "no TLS settings");
        }
    };
    let tls = match rustls::ClientConfig::builder_with_provider(passthru_client::tls::provider())
        .with_safe_default_protocol_versions()
        .map(|b| {
            b.dangerous()
                .with_custom_certificate_verifier(Arc::clone(&verifier) as _)
        })
        .and_then(|b| {
            b.with_client_auth_cert(
                agent.client_cert_chain.clone(),
                agent.client_key.clone_key(),
            )
        }) {
        Ok(c) => Arc::new(c),
        Err(e) => {
            checks.push(Check::fail(
                &subject,
                "tls",
                format!("the agent's certificate and key are not usable: {e}"),
                "register the agent again with --force",
            ));
            return skip_rest(checks, "agent", "no TLS settings");
        }
    };
    let server_name = match endpoint.server_name() {
        Ok(n) => n,
        Err(e) => {
            checks.push(Check::fail(
                &subject,
                "tls",
                e.to_string(),
                "fix the cloud's address",
            ));
            return skip_rest(checks, "agent", "no TLS");
        }
    };
    let handshake = tokio::time::timeout(
        options.timeout,
        tokio_rustls::TlsConnector::from(tls).connect(server_name, tcp),
    )
    .await;
    match handshake {
        Ok(Ok(_stream)) => {
            let facts = verifier.seen().as_ref().and_then(cert_facts);
            checks.push(Check::pass(
                &subject,
                "tls",
                match facts {
                    Some(f) => format!(
                        "the cloud's certificate '{}' issued by '{}' is trusted",
                        f.subject, f.issuer
                    ),
                    None => "the cloud's certificate is trusted".to_string(),
                },
            ));
        }
        Ok(Err(e)) => {
            let seen = verifier.seen();
            let rustls_error = e
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<rustls::Error>());
            let issuer = seen.as_ref().and_then(cert_facts).map(|f| f.issuer);
            let (detail, fix) = match rustls_error {
                Some(rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer)) => (
                    format!(
                        "the certificate presented for {}{via} was issued by '{}', not by {trusted}: a TLS-inspecting proxy or firewall in the path is intercepting the connection",
                        endpoint.authority(),
                        issuer.unwrap_or_else(|| "an unknown issuer".to_string())
                    ),
                    "exempt the cloud's address from TLS inspection on the proxy or firewall (the agent authenticates with its own client certificate end to end, which inspection breaks)".to_string(),
                ),
                Some(rustls::Error::AlertReceived(alert)) => (
                    format!("the cloud refused the agent's TLS certificate (alert {alert:?})"),
                    "the agent's certificate is not one the cloud issued: register the agent again with --force".to_string(),
                ),
                Some(other) => explain_certificate(other, seen.as_ref(), &endpoint.authority(), &trusted)
                    .unwrap_or_else(|| (format!("TLS handshake failed: {other}"), "check the address: it must be the Passthru cloud's HTTPS port".to_string())),
                None => (
                    format!("TLS handshake failed: {e}"),
                    "check the address: it must be the Passthru cloud's HTTPS port".to_string(),
                ),
            };
            checks.push(Check::fail(&subject, "tls", detail, fix));
            return skip_rest(checks, "agent", "no TLS");
        }
        Err(_) => {
            checks.push(Check::fail(
                &subject,
                "tls",
                format!("no TLS handshake within {} s", options.timeout.as_secs()),
                "check the address: it must be the Passthru cloud's HTTPS port",
            ));
            return skip_rest(checks, "agent", "no TLS");
        }
    }
    // The agent route: the cloud checks the certificate (registered, not revoked, this
    // tenant) before the upgrade, then welcomes the agent with its time. Doctor closes
    // without saying Hello, so the cloud never sends it a request.
    let real_tls = match crate::tls_config::client_config(agent) {
        Ok(c) => c,
        Err(e) => {
            checks.push(Check::fail(
                &subject,
                "agent",
                e.to_string(),
                "register the agent again with --force",
            ));
            return skip_rest(checks, "clock", "no TLS settings");
        }
    };
    let mut socket = match crate::connect::connect(endpoint, real_tls).await {
        Ok(s) => s,
        Err(LinkError::Refused { status, detail }) => {
            checks.push(Check::fail(
                &subject,
                "agent",
                format!("the cloud refused this agent (HTTP {status}): {detail}"),
                format!(
                    "an administrator revoked or removed this agent, or replaced its certificate: register it again with passthru-agent register --cloud {} --tenant {} --state-dir DIR --force",
                    agent.registration.cloud_url, agent.registration.tenant_name
                ),
            ));
            return skip_rest(checks, "clock", "the agent was refused");
        }
        Err(e) => {
            checks.push(Check::fail(
                &subject,
                "agent",
                e.to_string(),
                "see the TLS check above; check the cloud's log",
            ));
            return skip_rest(checks, "clock", "no agent connection");
        }
    };
    let welcome = tokio::time::timeout(options.timeout, async {
        while let Some(Ok(m)) = socket.next().await {
            if let Message::Text(t) = m {
                return serde_json::from_str::<CloudToAgent>(t.as_str()).ok();
            }
        }
        None
    })
    .await;
    let _ = socket.close(None).await;
    let Ok(Some(CloudToAgent::Welcome {
        agent_id,
        server_time_ms,
        ..
    })) = welcome
    else {
        checks.push(Check::fail(
            &subject,
            "agent",
            "the cloud accepted the connection but did not welcome the agent",
            "check that the cloud and the agent are the same version",
        ));
        return skip_rest(checks, "clock", "no welcome");
    };
    checks.push(Check::pass(
        &subject,
        "agent",
        format!("the cloud accepts this agent's certificate (agent {agent_id}, not revoked)"),
    ));
    let now = (options.now)();
    let now_ms = i128::from(now.unix_timestamp()) * 1000 + i128::from(now.millisecond());
    let skew_s = (now_ms - i128::from(server_time_ms)) / 1000;
    if skew_s.unsigned_abs() > u128::from(tolerance) {
        checks.push(Check::fail(
            &subject,
            "clock",
            format!(
                "this computer's clock is {} s {} the cloud's (more than the {tolerance} s allowed): the cloud's requests look expired or from the future and are refused",
                skew_s.unsigned_abs(),
                if skew_s > 0 { "ahead of" } else { "behind" }
            ),
            "synchronise this computer's time (NTP; timedatectl status)",
        ));
    } else {
        checks.push(Check::pass(
            &subject,
            "clock",
            format!("within {} s of the cloud's clock", skew_s.unsigned_abs()),
        ));
    }
}
