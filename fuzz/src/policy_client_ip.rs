//! Fuzz body: client-IP resolution from arbitrary `X-Forwarded-For` / `X-Real-IP` values.
//!
//! Input: one byte choosing the peer, then header values separated by `\n` (the first ones
//! `X-Forwarded-For` lines, the last `X-Real-IP`). Checks that an untrusted peer always
//! gets its own address and that a trusted one gets an address that occurs in the headers
//! or its own.

use std::net::IpAddr;
use std::sync::OnceLock;

use http::{HeaderMap, HeaderValue};
use tollgate::policy::{ClientIpResolver, Peer};

fn resolver() -> &'static ClientIpResolver {
    static R: OnceLock<ClientIpResolver> = OnceLock::new();
    R.get_or_init(|| {
        ClientIpResolver::new(
            &["127.0.0.0/8", "10.0.0.0/8", "::1", "2001:db8::/32"],
            true,
            &["x-forwarded-for", "x-real-ip"],
        )
        .expect("valid resolver settings")
    })
}

pub fn run(data: &[u8]) {
    let Some((&p, rest)) = data.split_first() else {
        return;
    };
    let peer = match p % 4 {
        0 => Peer::Ip(IpAddr::from([127, 0, 0, 1])),
        1 => Peer::Ip(IpAddr::from([198, 51, 100, 1])),
        2 => Peer::Ip("::ffff:10.0.0.1".parse().expect("valid address")),
        _ => Peer::Unix,
    };
    let mut headers = HeaderMap::new();
    let lines: Vec<&[u8]> = rest.split(|&b| b == b'\n').collect();
    let (xff, real) = match lines.split_last() {
        Some((last, init)) if lines.len() > 1 => (init, Some(*last)),
        _ => (&lines[..], None),
    };
    for line in xff.iter().take(8) {
        if let Ok(v) = HeaderValue::from_bytes(line) {
            headers.append("x-forwarded-for", v);
        }
    }
    if let Some(Ok(v)) = real.map(HeaderValue::from_bytes) {
        headers.insert("x-real-ip", v);
    }

    let r = resolver();
    let got = r.resolve(peer, &headers);
    match peer {
        Peer::Ip(ip) if !r.is_trusted(ip) => assert_eq!(got, Some(ip.to_canonical())),
        Peer::Ip(ip) => {
            assert!(got.is_some_and(|g| g == ip.to_canonical() || mentioned(&headers, g)))
        }
        Peer::Unix => {
            if let Some(g) = got {
                assert!(mentioned(&headers, g), "{g}");
            }
        }
    }
}

/// Whether the address occurs in some header value (in a form that parses to it). An IPv6
/// address may carry a zone (`[fe80::1%2]:80`, as a socket address): the zone only says which
/// link of the sender it is on, so the address counts as mentioned without it.
fn mentioned(headers: &HeaderMap, ip: IpAddr) -> bool {
    headers.values().any(|v| {
        String::from_utf8_lossy(v.as_bytes())
            .split([',', ' ', '\t', '[', ']', '%'])
            .any(|tok| {
                tok.parse::<IpAddr>().is_ok_and(|t| t.to_canonical() == ip)
                    || tok
                        .parse::<std::net::SocketAddr>()
                        .is_ok_and(|t| t.ip().to_canonical() == ip)
                    || tok.rsplit_once(':').is_some_and(|(h, _)| {
                        h.parse::<IpAddr>().is_ok_and(|t| t.to_canonical() == ip)
                    })
            })
    })
}
