//! One domain controller, checked step by step for `passthru-agent doctor`: name
//! resolution, TCP, TLS against the forest's CA file (what was wrong with the certificate,
//! named), an anonymous read of the rootDSE, the service account's bind when one is
//! configured, and the clock against the DC's `currentTime`. Each step says what it saw; a
//! step that cannot run because an earlier one failed is skipped, with the reason.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use ldap3::{LdapConnAsync, LdapConnSettings, Scope, SearchEntry};
use rustls::pki_types::ServerName;
use url::{Host, Url};

use crate::dc_tls::{ca_roots, config_for, explain_certificate, ServerVerifier};

/// Clock difference to a DC beyond which the check fails (Kerberos' default tolerance).
pub const MAX_DC_SKEW_SECONDS: i64 = 300;

/// How one step ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// It worked.
    Pass,
    /// It failed: see the fix.
    Fail,
    /// It did not run (an earlier step failed, or nothing to check).
    Skip,
}

/// One step's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// `dns`, `tcp`, `tls`, `rootdse`, `bind`, `clock`.
    pub name: &'static str,
    /// How it ended.
    pub status: Status,
    /// What was seen.
    pub detail: String,
    /// What to do, when it failed.
    pub fix: Option<String>,
}

fn pass(name: &'static str, detail: impl Into<String>) -> Step {
    Step {
        name,
        status: Status::Pass,
        detail: detail.into(),
        fix: None,
    }
}

fn fail(name: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Step {
    Step {
        name,
        status: Status::Fail,
        detail: detail.into(),
        fix: Some(fix.into()),
    }
}

fn skip(name: &'static str, detail: impl Into<String>) -> Step {
    Step {
        name,
        status: Status::Skip,
        detail: detail.into(),
        fix: None,
    }
}

/// What to check.
#[derive(Debug)]
pub struct DcCheck<'a> {
    /// `ldaps://host[:port]`.
    pub url: &'a Url,
    /// The forest's CA file.
    pub ca_file: &'a Path,
    /// The forest's `tls_server_name`, if set.
    pub tls_server_name: Option<&'a str>,
    /// The service account and its password, when the forest has one.
    pub service: Option<(&'a str, &'a str)>,
    /// Each step's time-out.
    pub timeout: Duration,
    /// Now, in Unix seconds (the clock the agent believes).
    pub now_unix: i64,
}

/// Runs every step against one DC.
pub async fn check_dc(c: &DcCheck<'_>) -> Vec<Step> {
    let mut steps = Vec::new();
    let port = c.url.port().unwrap_or(636);
    let host = match c.url.host() {
        Some(h) => h.to_owned(),
        None => {
            steps.push(fail(
                "dns",
                format!("{} has no host", c.url),
                "write the DC as ldaps://HOST[:PORT]",
            ));
            return steps;
        }
    };
    let host_text = match &host {
        Host::Domain(d) => d.clone(),
        Host::Ipv4(ip) => ip.to_string(),
        Host::Ipv6(ip) => ip.to_string(),
    };
    // DNS.
    let addr: SocketAddr = match &host {
        Host::Ipv4(ip) => {
            steps.push(pass("dns", format!("{ip} is an address (no lookup)")));
            SocketAddr::from((*ip, port))
        }
        Host::Ipv6(ip) => {
            steps.push(pass("dns", format!("{ip} is an address (no lookup)")));
            SocketAddr::from((*ip, port))
        }
        Host::Domain(d) => {
            match tokio::time::timeout(c.timeout, tokio::net::lookup_host((d.as_str(), port))).await
            {
                Ok(Ok(mut addrs)) => match addrs.next() {
                    Some(a) => {
                        steps.push(pass("dns", format!("{d} is {}", a.ip())));
                        a
                    }
                    None => {
                        steps.push(fail(
                            "dns",
                            format!("{d} has no address"),
                            "check the DC's name and this computer's DNS servers",
                        ));
                        return skip_rest(steps, "the name does not resolve");
                    }
                },
                Ok(Err(e)) => {
                    steps.push(fail(
                        "dns",
                        format!("cannot resolve {d}: {e}"),
                        "check the DC's name and this computer's DNS servers (/etc/resolv.conf)",
                    ));
                    return skip_rest(steps, "the name does not resolve");
                }
                Err(_) => {
                    steps.push(fail(
                        "dns",
                        format!("no answer resolving {d} within {} s", c.timeout.as_secs()),
                        "check this computer's DNS servers",
                    ));
                    return skip_rest(steps, "the name does not resolve");
                }
            }
        }
    };
    // TCP.
    let tcp = match tokio::time::timeout(c.timeout, tokio::net::TcpStream::connect(addr)).await {
        Ok(Ok(s)) => {
            steps.push(pass("tcp", format!("connected to {addr}")));
            s
        }
        Ok(Err(e)) => {
            steps.push(fail(
                "tcp",
                format!("cannot connect to {addr}: {e}"),
                format!("check that the DC runs and that a firewall lets this computer reach TCP port {port} (LDAPS)"),
            ));
            return skip_rest(steps, "no TCP connection");
        }
        Err(_) => {
            steps.push(fail(
                "tcp",
                format!("no answer from {addr} within {} s", c.timeout.as_secs()),
                format!(
                    "a firewall probably drops TCP port {port} between this computer and the DC"
                ),
            ));
            return skip_rest(steps, "no TCP connection");
        }
    };
    // TLS.
    let trusted = c.ca_file.display().to_string();
    let roots = match ca_roots(c.ca_file) {
        Ok(r) => r,
        Err(e) => {
            steps.push(fail(
                "tls",
                e.to_string(),
                "point the forest's ca_file at the PEM certificate of the CA that issued the DCs' certificates",
            ));
            return skip_rest(steps, "no usable CA file");
        }
    };
    let verifier = match ServerVerifier::new(roots, c.tls_server_name) {
        Ok(v) => Arc::new(v),
        Err(e) => {
            steps.push(fail("tls", e, "fix the forest's tls_server_name"));
            return skip_rest(steps, "no usable TLS settings");
        }
    };
    let config = match config_for(Arc::clone(&verifier)) {
        Ok(c) => Arc::new(c),
        Err(e) => {
            steps.push(fail("tls", e.to_string(), "report this"));
            return skip_rest(steps, "no usable TLS settings");
        }
    };
    let server_name = match &host {
        Host::Domain(d) => ServerName::try_from(d.clone()).ok(),
        Host::Ipv4(ip) => Some(ServerName::IpAddress((*ip).into())),
        Host::Ipv6(ip) => Some(ServerName::IpAddress((*ip).into())),
    };
    let Some(server_name) = server_name else {
        steps.push(fail(
            "tls",
            format!("'{host_text}' is not a valid TLS server name"),
            "write the DC as ldaps://HOST[:PORT]",
        ));
        return skip_rest(steps, "no TLS");
    };
    let checked_name = c.tls_server_name.unwrap_or(&host_text).to_string();
    let connector = tokio_rustls::TlsConnector::from(Arc::clone(&config));
    match tokio::time::timeout(c.timeout, connector.connect(server_name, tcp)).await {
        Ok(Ok(_tls)) => {
            let facts = verifier.seen().as_ref().and_then(crate::dc_tls::cert_facts);
            let days = facts
                .as_ref()
                .map(|f| (f.not_after - c.now_unix) / 86_400)
                .unwrap_or(0);
            steps.push(pass(
                "tls",
                match facts {
                    Some(f) => format!(
                        "certificate of '{}' for '{checked_name}', issued by '{}', valid until {} ({days} days)",
                        f.subject,
                        f.issuer,
                        crate::dc_tls::utc_text(f.not_after)
                    ),
                    None => format!("certificate valid for '{checked_name}'"),
                },
            ));
        }
        Ok(Err(e)) => {
            let rustls_error = e
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<rustls::Error>());
            let seen = verifier.seen();
            let explained = rustls_error
                .and_then(|re| explain_certificate(re, seen.as_ref(), &checked_name, &trusted));
            match explained {
                Some((what, fix)) => steps.push(fail("tls", what, fix)),
                None => steps.push(fail(
                    "tls",
                    format!("TLS handshake with {addr} failed: {e}"),
                    format!("check that {} speaks LDAPS (TLS) on port {port}", c.url),
                )),
            }
            return skip_rest(steps, "no TLS");
        }
        Err(_) => {
            steps.push(fail(
                "tls",
                format!(
                    "no TLS handshake with {addr} within {} s",
                    c.timeout.as_secs()
                ),
                format!("check that {} speaks LDAPS (TLS) on port {port}", c.url),
            ));
            return skip_rest(steps, "no TLS");
        }
    }
    // rootDSE, service bind, clock: over an LDAP connection made as the agent makes them.
    let settings = LdapConnSettings::new()
        .set_conn_timeout(c.timeout)
        .set_config(config);
    let (conn, mut ldap) = match LdapConnAsync::from_url_with_settings(settings, c.url).await {
        Ok(pair) => pair,
        Err(e) => {
            steps.push(fail(
                "rootdse",
                format!("cannot open an LDAP connection: {e}"),
                "check the DC's LDAP service",
            ));
            return skip_rest(steps, "no LDAP connection");
        }
    };
    let driver = tokio::spawn(async move {
        let _ = conn.drive().await;
    });
    let read = ldap
        .with_timeout(c.timeout)
        .search(
            "",
            Scope::Base,
            "(objectClass=*)",
            vec!["currentTime", "dnsHostName", "defaultNamingContext"],
        )
        .await
        .and_then(|r| r.success());
    let mut dc_time = None;
    match read {
        Ok((entries, _)) => match entries.into_iter().next().map(SearchEntry::construct) {
            Some(entry) => {
                let first = |a: &str| entry.attrs.get(a).and_then(|v| v.first()).cloned();
                dc_time = first("currentTime");
                steps.push(pass(
                    "rootdse",
                    format!(
                        "rootDSE read: {} serving {}",
                        first("dnsHostName").unwrap_or_else(|| "(no dnsHostName)".into()),
                        first("defaultNamingContext")
                            .unwrap_or_else(|| "(no defaultNamingContext)".into())
                    ),
                ));
            }
            None => steps.push(fail(
                "rootdse",
                "the rootDSE read returned nothing",
                "check that the server is an Active Directory domain controller (or an LDAP server that allows anonymous rootDSE reads)",
            )),
        },
        Err(e) => steps.push(fail(
            "rootdse",
            format!("cannot read the rootDSE: {e}"),
            "check that the server is an LDAP server that allows anonymous rootDSE reads",
        )),
    }
    match c.service {
        None => steps.push(skip(
            "bind",
            "no service account configured for this forest",
        )),
        Some((account, password)) => {
            match ldap
                .with_timeout(c.timeout)
                .simple_bind(account, password)
                .await
            {
                Ok(r) if r.rc == 0 => {
                    steps.push(pass("bind", format!("the service account {account} signed in")))
                }
                Ok(r) if r.rc == 49 => steps.push(fail(
                    "bind",
                    format!(
                        "the DC refused the service account {account}: invalid credentials (LDAP 49{})",
                        passthru_proto::Win32::from_ad_diagnostic(&r.text)
                            .map(|w| format!(", Windows {}: {}", w.code(), w.message()))
                            .unwrap_or_default()
                    ),
                    "put the service account's current password in service_password_file, or check that the account is enabled and not locked out",
                )),
                Ok(r) => steps.push(fail(
                    "bind",
                    format!("the DC refused the service account {account}: LDAP {} {}", r.rc, r.text),
                    "check the service account in AD",
                )),
                Err(e) => steps.push(fail(
                    "bind",
                    format!("the service account's bind failed: {e}"),
                    "check the DC's LDAP service",
                )),
            }
        }
    }
    let _ = ldap.unbind().await;
    driver.abort();
    match dc_time.as_deref().and_then(crate::values::generalized_time) {
        Some(t) => {
            let skew = c.now_unix - t;
            if skew.abs() > MAX_DC_SKEW_SECONDS {
                steps.push(fail(
                    "clock",
                    format!(
                        "this computer's clock is {} s {} the DC's ({})",
                        skew.abs(),
                        if skew > 0 { "ahead of" } else { "behind" },
                        crate::dc_tls::utc_text(t)
                    ),
                    format!("synchronise this computer's time with the domain (NTP; timedatectl): more than {MAX_DC_SKEW_SECONDS} s apart breaks Kerberos and makes lockout times wrong"),
                ));
            } else {
                steps.push(pass(
                    "clock",
                    format!("within {} s of the DC's clock", skew.abs()),
                ));
            }
        }
        None => steps.push(skip("clock", "the DC did not give its currentTime")),
    }
    steps
}

/// Marks the steps not yet run as skipped, with `why`.
fn skip_rest(mut steps: Vec<Step>, why: &str) -> Vec<Step> {
    for name in ["dns", "tcp", "tls", "rootdse", "bind", "clock"] {
        if !steps.iter().any(|s| s.name == name) {
            steps.push(skip(name, format!("not checked: {why}")));
        }
    }
    steps
}
