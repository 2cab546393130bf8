//! Which addresses the cloud calls on behalf of a tenant (federated domains' identity
//! providers: discovery, JWKS, token endpoint): public ones only, unless the operator allows
//! loopback, link-local and private ones (`serve --allow-private-federation`, for a test
//! identity provider or one on the operator's own network).
//!
//! The check is made where the connection is made: the HTTP client resolves names through
//! [`PublicOnlyResolver`], which drops every non-public address (so a name that resolved
//! to a public address when a domain was added and to 127.0.0.1 now cannot reach loopback:
//! no DNS rebinding), and URLs naming an IP address (which skip the resolver) are checked by
//! [`check_url`] before each request. A tenant administrator must not be able to make the
//! cloud call its own internal network.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use ipnet::{Ipv4Net, Ipv6Net};

/// The `serve` flag that allows non-public addresses.
pub const ALLOW_FLAG: &str = "--allow-private-federation";

/// How long a name's resolution may take.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);

/// IPv4 ranges that are not publicly routable beyond what `Ipv4Addr`'s own predicates name
/// (RFC 6890 and its updates).
const V4_NOT_PUBLIC: [Ipv4Net; 6] = [
    Ipv4Net::new_assert(Ipv4Addr::new(0, 0, 0, 0), 8), // "this network"
    Ipv4Net::new_assert(Ipv4Addr::new(100, 64, 0, 0), 10), // carrier-grade NAT
    Ipv4Net::new_assert(Ipv4Addr::new(192, 0, 0, 0), 24), // IETF protocol assignments
    Ipv4Net::new_assert(Ipv4Addr::new(198, 18, 0, 0), 15), // benchmarking
    Ipv4Net::new_assert(Ipv4Addr::new(240, 0, 0, 0), 4), // reserved, broadcast
    Ipv4Net::new_assert(Ipv4Addr::new(192, 88, 99, 0), 24), // 6to4 relay anycast
];

/// IPv6 ranges that are not publicly routable beyond `Ipv6Addr`'s own predicates.
const V6_NOT_PUBLIC: [Ipv6Net; 6] = [
    Ipv6Net::new_assert(Ipv6Addr::new(0, 0, 0, 0, 0, 0, 0, 0), 96), // IPv4-compatible (deprecated)
    Ipv6Net::new_assert(Ipv6Addr::new(0x100, 0, 0, 0, 0, 0, 0, 0), 64), // discard
    Ipv6Net::new_assert(Ipv6Addr::new(0x2001, 0, 0, 0, 0, 0, 0, 0), 23), // IETF protocol assignments (Teredo, ORCHID, ...)
    Ipv6Net::new_assert(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0), 32), // documentation
    Ipv6Net::new_assert(Ipv6Addr::new(0xfec0, 0, 0, 0, 0, 0, 0, 0), 10), // site-local (deprecated)
    Ipv6Net::new_assert(Ipv6Addr::new(0x3fff, 0, 0, 0, 0, 0, 0, 0), 20), // documentation (RFC 9637)
];

/// Whether `ip` is a public unicast address (not loopback, link-local, private, shared,
/// documentation, multicast, reserved...). IPv6 forms that carry an IPv4 address (mapped,
/// NAT64, 6to4) are judged by that IPv4 address.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public_v4(v4);
            }
            let s = v6.segments();
            // NAT64 well-known prefix 64:ff9b::/96: the IPv4 address in the last 32 bits.
            if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
                return is_public_v4(Ipv4Addr::from((u32::from(s[6]) << 16) | u32::from(s[7])));
            }
            // 6to4 2002::/16: the IPv4 address in bits 16..48.
            if s[0] == 0x2002 {
                return is_public_v4(Ipv4Addr::from((u32::from(s[1]) << 16) | u32::from(s[2])));
            }
            !(v6.is_unspecified()
                || v6.is_loopback()
                || v6.is_multicast()
                || v6.is_unique_local()
                || v6.is_unicast_link_local()
                || V6_NOT_PUBLIC.iter().any(|n| n.contains(&v6)))
        }
    }
}

fn is_public_v4(v4: Ipv4Addr) -> bool {
    !(v4.is_unspecified()
        || v4.is_loopback()
        || v4.is_private()
        || v4.is_link_local()
        || v4.is_multicast()
        || v4.is_broadcast()
        || v4.is_documentation()
        || V4_NOT_PUBLIC.iter().any(|n| n.contains(&v4)))
}

fn refused(host: &str, addrs: &[IpAddr]) -> String {
    let list: Vec<String> = addrs.iter().map(IpAddr::to_string).collect();
    format!(
        "the identity provider host '{host}' resolves only to non-public addresses ({}): \
         federation refuses loopback, link-local and private addresses; if this identity \
         provider really is on your own network, start the cloud with \
         `passthru-cloud serve {ALLOW_FLAG}`",
        list.join(", ")
    )
}

/// Resolves `host` (at most [`RESOLVE_TIMEOUT`]) and keeps what the policy allows. Errs
/// when nothing is left.
pub async fn resolve(
    host: &str,
    allow_private: bool,
) -> Result<Vec<SocketAddr>, Box<dyn std::error::Error + Send + Sync>> {
    let found: Vec<SocketAddr> =
        tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host((host, 0)))
            .await
            .map_err(|_| format!("resolving '{host}' timed out"))??
            .collect();
    if allow_private {
        return Ok(found);
    }
    let public: Vec<SocketAddr> = found
        .iter()
        .copied()
        .filter(|a| is_public(a.ip()))
        .collect();
    if public.is_empty() {
        let ips: Vec<IpAddr> = found.iter().map(SocketAddr::ip).collect();
        return Err(refused(host, &ips).into());
    }
    Ok(public)
}

/// The HTTP client's resolver: only public addresses, unless allowed.
#[derive(Debug, Clone, Copy)]
pub struct PublicOnlyResolver {
    pub allow_private: bool,
}

impl reqwest::dns::Resolve for PublicOnlyResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allow_private = self.allow_private;
        Box::pin(async move {
            let addrs = resolve(name.as_str(), allow_private).await?;
            let addrs: reqwest::dns::Addrs = Box::new(addrs.into_iter());
            Ok(addrs)
        })
    }
}

/// Checks a URL whose host is an IP address (the resolver never sees those); names pass
/// here and are checked when resolved.
pub fn check_url(url: &url::Url, allow_private: bool) -> Result<(), String> {
    if allow_private {
        return Ok(());
    }
    let ip = match url.host() {
        Some(url::Host::Ipv4(v4)) => IpAddr::V4(v4),
        Some(url::Host::Ipv6(v6)) => IpAddr::V6(v6),
        _ => return Ok(()),
    };
    if is_public(ip) {
        Ok(())
    } else {
        Err(refused(&ip.to_string(), &[ip]))
    }
}

/// What an administrator hears when adding a federated domain whose issuer is not public:
/// an IP address, or a name that resolves (now) to non-public addresses only. A name that
/// does not resolve yet passes (it is checked again at every connection).
pub async fn check_issuer(issuer: &url::Url, allow_private: bool) -> Result<(), String> {
    if allow_private {
        return Ok(());
    }
    check_url(issuer, false)?;
    if let Some(url::Host::Domain(name)) = issuer.host() {
        if let Err(e) = resolve(name, false).await {
            let e = e.to_string();
            if e.contains(ALLOW_FLAG) {
                return Err(e);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_addresses() -> anyhow::Result<()> {
        for public in [
            "8.8.8.8",
            "1.1.1.1",
            "20.190.128.1",
            "100.63.255.255",
            "100.128.0.0",
            "172.32.0.1",
            "2606:4700:4700::1111",
            "2a00:1450:4001::200e",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::1",
        ] {
            assert!(is_public(public.parse()?), "{public} is public");
        }
        for private in [
            "127.0.0.1",
            "127.255.0.9",
            "0.0.0.0",
            "0.1.2.3",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "192.0.0.8",
            "192.0.2.1",
            "198.18.0.1",
            "198.51.100.7",
            "203.0.113.9",
            "224.0.0.1",
            "240.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "::127.0.0.1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::7f00:1",
            "64:ff9b::a9fe:a9fe",
            "2002:7f00:1::1",
            "2002:c0a8:101::1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "fec0::1",
            "ff02::1",
            "2001:db8::1",
            "2001::1",
            "100::1",
        ] {
            assert!(!is_public(private.parse()?), "{private} is not public");
        }
        Ok(())
    }

    #[test]
    fn urls_naming_addresses_are_checked() -> anyhow::Result<()> {
        let loopback = url::Url::parse("https://127.0.0.1:8443/t/v2.0")?;
        let e = check_url(&loopback, false).err().unwrap_or_default();
        assert!(e.contains(ALLOW_FLAG) && e.contains("127.0.0.1"), "{e}");
        assert!(check_url(&loopback, true).is_ok());
        assert!(check_url(&url::Url::parse("https://[::1]/")?, false).is_err());
        assert!(check_url(&url::Url::parse("https://[fe80::1]/")?, false).is_err());
        assert!(check_url(&url::Url::parse("https://8.8.8.8/")?, false).is_ok());
        assert!(check_url(&url::Url::parse("https://login.example.com/")?, false).is_ok());
        Ok(())
    }

    /// The resolver (what the HTTP client connects through) drops loopback answers: a name
    /// resolving to 127.0.0.1 (`localhost`, as a rebinding name would) is refused.
    #[tokio::test]
    async fn resolver_refuses_names_of_loopback() -> anyhow::Result<()> {
        let e = resolve("localhost", false)
            .await
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("non-public") && e.contains(ALLOW_FLAG), "{e}");
        assert!(!resolve("localhost", true)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .is_empty());
        let issuer = url::Url::parse("https://localhost:1/t/v2.0")?;
        assert!(check_issuer(&issuer, false).await.is_err());
        assert!(check_issuer(&issuer, true).await.is_ok());
        Ok(())
    }
}
