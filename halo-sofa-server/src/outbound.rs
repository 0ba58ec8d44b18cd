//! The outbound guard (REQ HARD-03): the SoFA calls addresses strangers name (a PoC's rest-hook
//! endpoint), so every outbound client checks where it connects *after* name resolution, and
//! connects only to the addresses it checked (the resolver hands them to the connector; there
//! is no second lookup a DNS answer could change).
//!
//! Refused outside development mode: loopback, private (RFC 1918), carrier-grade NAT, link-local
//! (including the 169.254.169.254 cloud metadata service), unique-local IPv6, multicast,
//! broadcast, unspecified, documentation, benchmarking and reserved ranges, and IPv4 addresses
//! wrapped in IPv6. Development mode allows loopback and nothing else of these.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Whether `ip` is refused as an outbound target (see the module documentation).
pub fn is_refused(ip: IpAddr, development_mode: bool) -> bool {
    if ip.is_loopback() {
        return !development_mode;
    }
    match ip {
        IpAddr::V4(v4) => refused_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => (v4.is_loopback() && !development_mode) || refused_v4(v4),
            None => refused_v6(v6),
        },
    }
}

fn refused_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    ip.is_private()
        || ip.is_link_local()
        || ip.is_multicast()
        || ip.is_broadcast()
        || ip.is_unspecified()
        || ip.is_documentation()
        || a == 0
        // Carrier-grade NAT (RFC 6598) and benchmarking (RFC 2544).
        || (a == 100 && (64..128).contains(&b))
        || (a == 198 && (18..20).contains(&b))
        // IETF protocol assignments and the reserved 240/4.
        || (a == 192 && b == 0 && c == 0)
        || a >= 240
}

fn refused_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    ip.is_unspecified()
        || ip.is_multicast()
        // Unique-local fc00::/7 (cloud metadata fd00:ec2::254 among them).
        || (first & 0xfe00) == 0xfc00
        // Link-local fe80::/10.
        || (first & 0xffc0) == 0xfe80
        // Documentation 2001:db8::/32.
        || (first == 0x2001 && ip.segments()[1] == 0x0db8)
        // NAT64 and other IPv4 translations can reach private IPv4 space.
        || first == 0x0064
}

/// Checks a URL before any connection: its scheme (https, or http to loopback in development
/// mode) and, when its host is an IP literal (which no resolver sees), the address. `Err` says
/// why, for the log.
pub fn check_url(url: &url::Url, development_mode: bool) -> Result<(), String> {
    let literal = match url.host() {
        Some(url::Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
        Some(url::Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
        Some(url::Host::Domain(_)) => None,
        None => return Err("the URL names no host".into()),
    };
    match url.scheme() {
        "https" => {}
        "http" if development_mode => {
            let loopback_name = url.host_str() == Some("localhost");
            if !loopback_name && !literal.is_some_and(|ip| ip.is_loopback()) {
                return Err("plain http is allowed to loopback only".into());
            }
        }
        other => return Err(format!("the scheme {other} is not allowed")),
    }
    if let Some(ip) = literal
        && is_refused(ip, development_mode)
    {
        return Err(format!("{ip} is not an address the server may reach"));
    }
    Ok(())
}

/// A resolver that drops refused addresses; a name with nothing else left fails to resolve.
#[derive(Debug, Clone, Copy)]
pub struct GuardedResolver {
    development_mode: bool,
}

impl GuardedResolver {
    /// A resolver for the given mode.
    pub fn new(development_mode: bool) -> GuardedResolver {
        GuardedResolver { development_mode }
    }
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let development_mode = self.development_mode;
        let host = name.as_str().to_string();
        Box::pin(async move {
            let found = tokio::net::lookup_host((host.as_str(), 0)).await?;
            let allowed: Vec<SocketAddr> = found
                .filter(|addr| !is_refused(addr.ip(), development_mode))
                .collect();
            if allowed.is_empty() {
                return Err(format!("{host} resolves to no address the server may reach").into());
            }
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

/// A client builder whose connections go only to addresses [`is_refused`] lets through, and
/// that follows no redirect (a redirect would be a second, unchecked target).
pub fn client_builder(development_mode: bool) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .dns_resolver(Arc::new(GuardedResolver::new(development_mode)))
        .redirect(reqwest::redirect::Policy::none())
}

/// Why an outbound answer's body was not read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    /// More than the limit arrived, or was announced.
    #[error("the answer is larger than the {0} bytes accepted")]
    TooLarge(usize),
    /// The connection failed or timed out while the body was read.
    #[error("the answer could not be read")]
    Unreadable,
}

/// Reads an outbound answer's body, at most `max_bytes` (REQ HARD-04): an announced length over
/// the limit is refused before a byte is read, and the body is read chunk by chunk, stopping as
/// soon as more than the limit has come, so a peer that streams without end costs at most the
/// limit in memory.
pub async fn read_bounded(
    mut response: reqwest::Response,
    max_bytes: usize,
) -> Result<Vec<u8>, BodyError> {
    if response
        .content_length()
        .is_some_and(|n| n > max_bytes as u64)
    {
        return Err(BodyError::TooLarge(max_bytes));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|_| BodyError::Unreadable)? {
        if body.len() + chunk.len() > max_bytes {
            return Err(BodyError::TooLarge(max_bytes));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    // REQ: HARD-04
    #[tokio::test]
    async fn an_endless_answer_is_cut_at_the_limit() {
        use axum::body::{Body, Bytes};
        use futures_util::stream;

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = axum::Router::new()
            .route(
                "/endless",
                axum::routing::get(|| async {
                    // A chunked body without end and without a length.
                    let chunks = stream::repeat_with(|| {
                        Ok::<_, std::io::Error>(Bytes::from(vec![b'x'; 16 * 1024]))
                    });
                    Body::from_stream(chunks)
                }),
            )
            .route("/small", axum::routing::get(|| async { "{\"keys\": []}" }))
            .route(
                "/announced",
                axum::routing::get(|| async { vec![b'x'; 100_000] }),
            );
        tokio::spawn(async move { axum::serve(listener, app).await });
        let http = client_builder(true).build().unwrap();
        let get = |path: &str| http.get(format!("http://{addr}{path}")).send();

        let endless = read_bounded(get("/endless").await.unwrap(), 64 * 1024).await;
        assert_eq!(endless, Err(BodyError::TooLarge(64 * 1024)));
        let announced = read_bounded(get("/announced").await.unwrap(), 64 * 1024).await;
        assert_eq!(announced, Err(BodyError::TooLarge(64 * 1024)));
        let small = read_bounded(get("/small").await.unwrap(), 64 * 1024).await;
        assert_eq!(small.unwrap(), b"{\"keys\": []}");
    }

    // REQ: HARD-03
    #[test]
    fn address_classes_strangers_may_not_make_the_server_reach() {
        for refused in [
            "10.255.255.1",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "203.0.113.7",
            "198.18.0.1",
            "240.0.0.1",
            "fd00::dead",
            "fe80::1",
            "::",
            "ff02::1",
            "2001:db8::1",
            "::ffff:10.0.0.1",
            "64:ff9b::a00:1",
        ] {
            let ip: IpAddr = refused.parse().unwrap();
            assert!(is_refused(ip, false), "{refused}");
            assert!(is_refused(ip, true), "{refused} in development mode");
        }
        for loopback in ["127.0.0.1", "::1", "::ffff:127.0.0.1"] {
            let ip: IpAddr = loopback.parse().unwrap();
            assert!(is_refused(ip, false), "{loopback}");
            assert!(!is_refused(ip, true), "{loopback} in development mode");
        }
        for public in ["8.8.8.8", "2606:4700::1111", "142.250.0.1"] {
            let ip: IpAddr = public.parse().unwrap();
            assert!(!is_refused(ip, false), "{public}");
        }
    }

    // REQ: HARD-03
    #[test]
    fn urls_are_checked_before_any_connection() {
        let check = |url: &str, dev| check_url(&url::Url::parse(url).unwrap(), dev);
        assert!(check("https://emr.example.org/notify", false).is_ok());
        assert!(check("https://203.0.113.7/", false).is_err());
        assert!(check("https://127.0.0.1/", false).is_err());
        assert!(check("https://[fd00::dead]/", false).is_err());
        assert!(check("http://emr.example.org/", false).is_err());
        // Development mode: plain http to loopback only.
        assert!(check("http://127.0.0.1:8080/notify", true).is_ok());
        assert!(check("http://localhost:8080/notify", true).is_ok());
        assert!(check("http://203.0.113.7:9/", true).is_err());
        assert!(check("http://10.0.0.1/", true).is_err());
        assert!(check("ftp://emr.example.org/", true).is_err());
    }

    // REQ: HARD-03
    #[tokio::test]
    async fn names_resolve_only_to_allowed_addresses() {
        let production = GuardedResolver::new(false);
        let refused = production.resolve("localhost".parse().unwrap()).await;
        assert!(refused.is_err());
        let development = GuardedResolver::new(true);
        let addrs: Vec<SocketAddr> = development
            .resolve("localhost".parse().unwrap())
            .await
            .unwrap()
            .collect();
        assert!(!addrs.is_empty());
        assert!(addrs.iter().all(|a| a.ip().is_loopback()));
    }
}
