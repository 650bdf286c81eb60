//! The client address: the socket peer, unless the peer is a trusted proxy that says who
//! its client was.
//!
//! A client-IP header is only believed when the socket peer is inside one of the configured
//! trusted-proxy networks (`[policy] trusted_proxies`); anyone else could write any address
//! into it. The headers are tried in the configured order (`client_ip_headers`, default
//! `x-forwarded-for` then `x-real-ip`) and the first one *present* decides:
//!
//! - `X-Forwarded-For` is a list each proxy appends to, so only its right end is
//!   trustworthy. It is walked from the right (over all its header lines, in order), skipping
//!   addresses that are themselves trusted proxies; the first untrusted address is the
//!   client. If every address is a trusted proxy, the leftmost one is the client.
//! - Any other header (`X-Real-IP`, `CF-Connecting-IP`…) holds one address.
//!
//! A malformed header (an entry that is not an IP, more than [`MAX_FORWARDED_HOPS`] entries
//! to walk, not UTF-8) makes tollgate fall back to the socket peer, never to a guess.
//! Entries may carry a port (`192.0.2.1:5555`, `[2001:db8::1]:443`), which is dropped.
//! IPv4-mapped IPv6 addresses are reported as IPv4.
//!
//! A Unix-socket peer has no address. It is a local process that passed the socket file's
//! permissions, normally nginx on the same host, so by default (`trust_unix_socket = true`)
//! it counts as a trusted proxy and its headers are believed; with `false` its headers are
//! ignored and the client address is unknown (`None`, keyed as `~`).

use std::net::{IpAddr, SocketAddr};

use http::HeaderName;

use super::headers::RequestHeaders;
use ipnet::IpNet;

/// Most `X-Forwarded-For` entries examined; a longer chain is treated as malformed.
pub const MAX_FORWARDED_HOPS: usize = 32;

/// Who is on the other end of the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peer {
    Ip(IpAddr),
    /// A Unix-socket peer, which has no IP address.
    Unix,
}

impl From<IpAddr> for Peer {
    fn from(ip: IpAddr) -> Self {
        Peer::Ip(ip)
    }
}

impl From<SocketAddr> for Peer {
    fn from(addr: SocketAddr) -> Self {
        Peer::Ip(addr.ip())
    }
}

/// Why a client-IP setting is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientIpConfigError {
    #[error("invalid trusted proxy {0:?}: expected an address or CIDR such as 10.0.0.0/8")]
    BadNetwork(String),
    #[error("invalid client IP header name {0:?}")]
    BadHeader(String),
    #[error("at most 8 client IP headers may be configured")]
    TooManyHeaders,
}

/// Resolves the client address of a request.
#[derive(Debug, Clone)]
pub struct ClientIpResolver {
    trusted: Box<[IpNet]>,
    trust_unix_socket: bool,
    headers: Box<[HeaderName]>,
}

/// The default trusted proxies: the loopback address nginx connects from when it runs next to
/// tollgate (same host or same pod). Only that address, not all of `127.0.0.0/8`: a process
/// connecting from another loopback address (a curl bound to 127.0.0.2, say) is a client, and
/// whatever `X-Forwarded-For` it sends is its own word.
pub const DEFAULT_TRUSTED_PROXIES: [&str; 2] = ["127.0.0.1/32", "::1/128"];

/// The default header order.
pub const DEFAULT_CLIENT_IP_HEADERS: [&str; 2] = ["x-forwarded-for", "x-real-ip"];

impl ClientIpResolver {
    /// Builds a resolver. `trusted` entries are CIDRs (`10.0.0.0/8`) or bare addresses.
    pub fn new<S: AsRef<str>, H: AsRef<str>>(
        trusted: &[S],
        trust_unix_socket: bool,
        headers: &[H],
    ) -> Result<Self, ClientIpConfigError> {
        let trusted = trusted
            .iter()
            .map(|s| parse_network(s.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        if headers.len() > 8 {
            return Err(ClientIpConfigError::TooManyHeaders);
        }
        let headers = headers
            .iter()
            .map(|h| {
                HeaderName::from_bytes(h.as_ref().as_bytes())
                    .map_err(|_| ClientIpConfigError::BadHeader(h.as_ref().to_owned()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            trusted: trusted.into(),
            trust_unix_socket,
            headers: headers.into(),
        })
    }

    /// A resolver that trusts nobody: the client is always the socket peer.
    pub fn socket_only() -> Self {
        Self {
            trusted: Box::new([]),
            trust_unix_socket: false,
            headers: Box::new([]),
        }
    }

    /// Whether `ip` is inside a trusted-proxy network.
    pub fn is_trusted(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.trusted.iter().any(|net| net.contains(&ip))
    }

    /// The client-IP headers, in the order they are tried.
    pub fn headers(&self) -> &[HeaderName] {
        &self.headers
    }

    /// The client address of a request whose caller states it in an argument rather than a
    /// header (RESP `VERIFY <…> <client-ip>`): the same rule as [`Self::resolve`] — the
    /// claim is believed only from a trusted proxy, else the socket peer's own address
    /// stands (none for an untrusted Unix-socket peer).
    pub fn resolve_claimed(&self, peer: Peer, claimed: IpAddr) -> Option<IpAddr> {
        if self.peer_is_trusted(peer) {
            return Some(claimed.to_canonical());
        }
        match peer {
            Peer::Ip(ip) => Some(ip.to_canonical()),
            Peer::Unix => None,
        }
    }

    /// Whether the client-IP headers of a request from `peer` are believed.
    pub fn peer_is_trusted(&self, peer: Peer) -> bool {
        match peer {
            Peer::Ip(ip) => self.is_trusted(ip),
            Peer::Unix => self.trust_unix_socket,
        }
    }

    /// The client address for a request from `peer` carrying `headers`. Never panics.
    pub fn resolve(&self, peer: Peer, headers: &dyn RequestHeaders) -> Option<IpAddr> {
        let from_socket = match peer {
            Peer::Ip(ip) => Some(ip.to_canonical()),
            Peer::Unix => None,
        };
        if !self.peer_is_trusted(peer) {
            return from_socket;
        }
        for name in self.headers.iter() {
            let values = headers.header_values(name);
            if values.is_empty() {
                continue;
            }
            let found = if name == "x-forwarded-for" {
                self.walk_forwarded_for(&values)
            } else {
                single_address(&values)
            };
            // The first header present decides; a malformed one means the socket peer.
            return found.or(from_socket);
        }
        from_socket
    }

    /// Walks `X-Forwarded-For` from the right; `None` when malformed.
    fn walk_forwarded_for(&self, values: &[&[u8]]) -> Option<IpAddr> {
        let mut hops = 0usize;
        let mut leftmost = None;
        for value in values.iter().rev() {
            let value = std::str::from_utf8(value).ok()?;
            for entry in value.rsplit(',') {
                let entry = entry.trim_matches([' ', '\t']);
                if entry.is_empty() {
                    // `a,,b` or a trailing comma: nothing was appended there; skip it.
                    continue;
                }
                hops += 1;
                if hops > MAX_FORWARDED_HOPS {
                    return None;
                }
                let ip = parse_forwarded_entry(entry)?;
                if !self.is_trusted(ip) {
                    return Some(ip);
                }
                leftmost = Some(ip);
            }
        }
        leftmost
    }
}

fn single_address(values: &[&[u8]]) -> Option<IpAddr> {
    let [value] = values else {
        // Two copies of a one-address header: someone added one; believe neither.
        return None;
    };
    let s = std::str::from_utf8(value).ok()?;
    parse_forwarded_entry(s.trim_matches([' ', '\t']))
}

/// Parses `addr`, `ipv4:port`, `[ipv6]` or `[ipv6]:port`.
fn parse_forwarded_entry(entry: &str) -> Option<IpAddr> {
    if entry.len() > 64 {
        return None;
    }
    if let Ok(ip) = entry.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    if let Ok(sa) = entry.parse::<SocketAddr>() {
        return Some(sa.ip().to_canonical());
    }
    let inner = entry.strip_prefix('[')?.strip_suffix(']')?;
    inner
        .parse::<std::net::Ipv6Addr>()
        .ok()
        .map(|v6| IpAddr::V6(v6).to_canonical())
}

fn parse_network(s: &str) -> Result<IpNet, ClientIpConfigError> {
    let s = s.trim();
    if let Ok(net) = s.parse::<IpNet>() {
        return Ok(net.trunc());
    }
    match s.parse::<IpAddr>() {
        Ok(ip) => Ok(IpNet::from(ip)),
        Err(_) => Err(ClientIpConfigError::BadNetwork(s.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderMap, HeaderValue};

    fn resolver() -> ClientIpResolver {
        ClientIpResolver::new(
            &["127.0.0.0/8", "10.0.0.0/8", "::1"],
            true,
            &DEFAULT_CLIENT_IP_HEADERS,
        )
        .unwrap()
    }

    #[test]
    fn by_default_only_nginxs_loopback_address_is_a_proxy() {
        let r = ClientIpResolver::new(&DEFAULT_TRUSTED_PROXIES, true, &DEFAULT_CLIENT_IP_HEADERS)
            .unwrap();
        assert!(r.is_trusted(ip("127.0.0.1")));
        assert!(r.is_trusted(ip("::1")));
        assert!(!r.is_trusted(ip("127.0.0.2")));
        assert!(!r.is_trusted(ip("10.0.0.1")));
    }

    fn headers(pairs: &[(&str, &[u8])]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_bytes(v).unwrap(),
            );
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn peer(s: &str) -> Peer {
        Peer::Ip(ip(s))
    }

    #[test]
    fn untrusted_peer_headers_are_ignored() {
        let h = headers(&[("x-forwarded-for", b"1.1.1.1"), ("x-real-ip", b"2.2.2.2")]);
        assert_eq!(
            resolver().resolve(peer("198.51.100.9"), &h),
            Some(ip("198.51.100.9"))
        );
    }

    #[test]
    fn forwarded_for_is_walked_from_the_right() {
        let r = resolver();
        // The client forged "6.6.6.6"; nginx appended the real address.
        let h = headers(&[("x-forwarded-for", b"6.6.6.6, 203.0.113.7")]);
        assert_eq!(r.resolve(peer("127.0.0.1"), &h), Some(ip("203.0.113.7")));
        // Through two trusted proxies.
        let h = headers(&[("x-forwarded-for", b"6.6.6.6, 203.0.113.7, 10.1.2.3")]);
        assert_eq!(r.resolve(peer("127.0.0.1"), &h), Some(ip("203.0.113.7")));
        // Several header lines form one list, in order.
        let h = headers(&[
            ("x-forwarded-for", b"6.6.6.6"),
            ("x-forwarded-for", b"203.0.113.7 ,10.0.0.2"),
        ]);
        assert_eq!(r.resolve(peer("127.0.0.1"), &h), Some(ip("203.0.113.7")));
        // Garbage left of the real address is never reached.
        let h = headers(&[("x-forwarded-for", b"not an ip, 203.0.113.7")]);
        assert_eq!(r.resolve(peer("127.0.0.1"), &h), Some(ip("203.0.113.7")));
        // Every hop trusted: the leftmost.
        let h = headers(&[("x-forwarded-for", b"10.9.9.9, 10.0.0.2")]);
        assert_eq!(r.resolve(peer("127.0.0.1"), &h), Some(ip("10.9.9.9")));
    }

    #[test]
    fn ports_brackets_and_mapped_addresses() {
        let r = resolver();
        let cases: [(&[u8], &str); 5] = [
            (b"203.0.113.7:5555", "203.0.113.7"),
            (b"[2001:db8::7]:443", "2001:db8::7"),
            (b"[2001:db8::7]", "2001:db8::7"),
            (b"2001:db8::7", "2001:db8::7"),
            (b"::ffff:203.0.113.7", "203.0.113.7"),
        ];
        for (value, want) in cases {
            let h = headers(&[("x-forwarded-for", value)]);
            assert_eq!(
                r.resolve(peer("127.0.0.1"), &h),
                Some(ip(want)),
                "{value:?}"
            );
        }
        // A mapped peer address is trusted like its IPv4 form.
        let h = headers(&[("x-real-ip", b"203.0.113.8")]);
        assert_eq!(
            r.resolve(peer("::ffff:127.0.0.1"), &h),
            Some(ip("203.0.113.8"))
        );
    }

    #[test]
    fn malformed_headers_fall_back_to_the_socket() {
        let r = resolver();
        let p = peer("127.0.0.1");
        let sock = Some(ip("127.0.0.1"));
        for bad in [
            &b"203.0.113.7, bogus"[..],
            b"999.1.1.1",
            b"\xff\xfe",
            b"1.2.3.4:99999",
            b"[1.2.3.4]",
        ] {
            let h = headers(&[("x-forwarded-for", bad)]);
            assert_eq!(r.resolve(p, &h), sock, "{bad:?}");
        }
        let long = "10.0.0.1,".repeat(MAX_FORWARDED_HOPS + 1);
        let h = headers(&[("x-forwarded-for", long.as_bytes())]);
        assert_eq!(r.resolve(p, &h), sock);
        // The first header present decides: a bad X-Forwarded-For is not rescued by X-Real-IP.
        let h = headers(&[("x-forwarded-for", b"junk"), ("x-real-ip", b"203.0.113.7")]);
        assert_eq!(r.resolve(p, &h), sock);
        // Two X-Real-IP lines: neither is believed.
        let h = headers(&[("x-real-ip", b"203.0.113.7"), ("x-real-ip", b"203.0.113.8")]);
        assert_eq!(r.resolve(p, &h), sock);
    }

    #[test]
    fn real_ip_when_no_forwarded_for() {
        let h = headers(&[("x-real-ip", b" 203.0.113.7 ")]);
        assert_eq!(resolver().resolve(peer("::1"), &h), Some(ip("203.0.113.7")));
        let none = HeaderMap::new();
        assert_eq!(
            resolver().resolve(peer("10.0.0.5"), &none),
            Some(ip("10.0.0.5"))
        );
    }

    #[test]
    fn unix_socket_peers() {
        let h = headers(&[("x-real-ip", b"203.0.113.7")]);
        assert_eq!(resolver().resolve(Peer::Unix, &h), Some(ip("203.0.113.7")));
        assert_eq!(resolver().resolve(Peer::Unix, &HeaderMap::new()), None);
        let strict =
            ClientIpResolver::new(&["127.0.0.1"], false, &DEFAULT_CLIENT_IP_HEADERS).unwrap();
        assert_eq!(strict.resolve(Peer::Unix, &h), None);
    }

    #[test]
    fn configured_header_order() {
        let r = ClientIpResolver::new(&["127.0.0.1"], false, &["cf-connecting-ip"]).unwrap();
        let h = headers(&[
            ("x-forwarded-for", b"1.1.1.1"),
            ("cf-connecting-ip", b"203.0.113.7"),
        ]);
        assert_eq!(r.resolve(peer("127.0.0.1"), &h), Some(ip("203.0.113.7")));
        let only_xff = headers(&[("x-forwarded-for", b"1.1.1.1")]);
        assert_eq!(
            r.resolve(peer("127.0.0.1"), &only_xff),
            Some(ip("127.0.0.1"))
        );
    }

    #[test]
    fn config_errors() {
        assert!(matches!(
            ClientIpResolver::new(&["10.0.0.0/33"], true, &["x-real-ip"]),
            Err(ClientIpConfigError::BadNetwork(_))
        ));
        assert!(matches!(
            ClientIpResolver::new(&["10.0.0.0/8"], true, &["bad header"]),
            Err(ClientIpConfigError::BadHeader(_))
        ));
        let r = ClientIpResolver::new(&["10.1.2.3/8", "192.0.2.1"], true, &["x-real-ip"]).unwrap();
        assert!(r.is_trusted(ip("10.200.0.1")));
        assert!(r.is_trusted(ip("192.0.2.1")));
        assert!(!r.is_trusted(ip("192.0.2.2")));
        assert!(!ClientIpResolver::socket_only().is_trusted(ip("127.0.0.1")));
    }
}
