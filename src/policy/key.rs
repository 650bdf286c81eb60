//! Limit key templates: how `/auth` and `VERIFY` build the limiter key for a limit from
//! request facts.
//!
//! A template is parts joined by `:`, each one of `ip`, `user`, `route`, `method`, `tier` or
//! `header=<name>` (for example `ip:user`, or `header=x-api-client:route`).
//!
//! # One vocabulary
//!
//! Every part renders *self-describing*, as its name, `:` and its value, and a key is the
//! parts so rendered joined by `:` in the template's order:
//!
//! | part | renders as |
//! |---|---|
//! | `user` | `user:42` (the verified user id); an anonymous caller renders as its `ip` part |
//! | `ip` | `ip:203.0.113.7`; IPv6 as its network, `ip:2001:db8:1:2::/64`; `ip:~` when unknown |
//! | `route` | `route:/api/upload**` |
//! | `method` | `method:POST` |
//! | `tier` | `tier:basic` |
//! | `header=<name>` | `header=x-device:abc`, `header=x-device:~` when absent |
//!
//! So a user's key under the default template is `user:42` and an address's `ip:…`: the
//! same strings a `/check` or `CHECK` caller passes as its key, so both doors count one
//! bucket. An anonymous caller under a `user` template counts under its address's key, the
//! one an `ip` template gives it.
//!
//! Rendering is injective, so that no caller can make its key equal to another caller's
//! (other than an anonymous caller and its own address, which are one bucket by design):
//! - every value but an address is escaped: bytes outside `!`..`~`, and `%` `:` `~` `#`,
//!   become `%XX`, so such a value never holds a `:` and ends at the next `:`;
//! - an address is `~`, a dotted IPv4 address (no `:`), or an IPv6 network written
//!   `<address>/<length>` (the only `/` in it ends it): [`split_key`] reads any key back
//!   into its names and values;
//! - a value whose escaped form is longer than [`MAX_PART_BYTES`] becomes `#` and 32 hex
//!   digits of its SHA-256 (so a long header cannot stretch the key, and two long values
//!   still get different keys);
//! - an absent value renders as `~` (no header, no client IP).
//!
//! A template whose keys could pass [`MAX_RENDERED_KEY_BYTES`] is refused when parsed.
//!
//! IPv6 clients are keyed by their network prefix (default /64, `[policy] ipv6_key_prefix`):
//! one subscriber usually holds a whole /64 and could otherwise rotate addresses to dodge a
//! per-IP limit. The length is always written, `/128` included.

use std::fmt::Write as _;
use std::net::IpAddr;

use super::headers::RequestHeaders;
use http::HeaderName;
use ipnet::Ipv6Net;

/// Most parts in one template.
pub const MAX_KEY_PARTS: usize = 8;
/// Longest rendering of one part's value (longer values are hashed). An address is at most
/// 43 bytes (an IPv6 address and `/128`), so addresses are never hashed.
pub const MAX_PART_BYTES: usize = 56;

/// Request headers that carry credentials and so can never be key parts: a key is kept in
/// memory, sent to peers and logged, and a token must never get there.
pub const SECRET_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "cookie",
    "x-api-key",
];
/// Longest rendered key. A template whose longest key would be longer is refused
/// ([`KeyTemplateError::TooLong`]): eight parts fit when their header names are short.
pub const MAX_RENDERED_KEY_BYTES: usize = 512;

/// Longest rendering of an address value: an IPv6 address (39) and `/128`.
const MAX_IP_BYTES: usize = 43;

/// One part of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyPart {
    /// The client IP (see `client_ip`), IPv6 reduced to its network prefix.
    Ip,
    /// The verified user id; for anonymous requests the `ip` part instead.
    User,
    /// The matched rule's pattern as configured, e.g. `/api/auth/**`: every path the rule
    /// matches shares the counter.
    Route,
    /// The request method, upper-cased.
    Method,
    /// The caller's tier name.
    Tier,
    /// The first value of a request header.
    Header(HeaderName),
}

/// Why a template is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyTemplateError {
    #[error("the key template is empty")]
    Empty,
    #[error("empty part in key template (two ':' in a row, or a leading or trailing ':')")]
    EmptyPart,
    #[error("unknown key part {0:?}: expected ip, user, route, method, tier or header=<name>")]
    UnknownPart(String),
    #[error("invalid header name {0:?} in key template")]
    BadHeaderName(String),
    #[error("the {0} header carries credentials and cannot be part of a key")]
    SecretHeader(String),
    #[error("key part {0:?} appears twice")]
    DuplicatePart(String),
    #[error("more than {MAX_KEY_PARTS} parts in key template")]
    TooManyParts,
    #[error(
        "the key template's keys could be {0} bytes long, above {MAX_RENDERED_KEY_BYTES}: \
         use fewer parts or shorter header names"
    )]
    TooLong(usize),
}

/// A parsed key template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyTemplate {
    parts: Box<[KeyPart]>,
    ipv6_prefix: u8,
}

/// What a key can be built from. Borrowed: building facts costs nothing.
#[derive(Debug, Clone, Copy)]
pub struct RequestFacts<'a> {
    /// The resolved client address (`None` for a Unix-socket peer without a trusted header).
    pub client_ip: Option<IpAddr>,
    /// The verified user id, `None` when anonymous.
    pub user: Option<&'a str>,
    /// The matched rule's pattern (`RouteRule::route`).
    pub route: &'a str,
    pub method: &'a str,
    pub tier: &'a str,
    /// The request headers, for `header=<name>` parts.
    pub headers: Option<&'a dyn RequestHeaders>,
}

/// The default template when a limit configures none: `user` (which is the client address,
/// `ip:…`, for anonymous requests).
pub const DEFAULT_KEY_TEMPLATE: &str = "user";

/// Default IPv6 prefix length for `ip` parts.
pub const DEFAULT_IPV6_KEY_PREFIX: u8 = 64;

impl KeyTemplate {
    /// Parses a template such as `ip:user` or `header=x-client-id:route`. Blanks around
    /// parts are ignored; header names are case-insensitive.
    pub fn parse(template: &str) -> Result<Self, KeyTemplateError> {
        if template.trim().is_empty() {
            return Err(KeyTemplateError::Empty);
        }
        let mut parts = Vec::new();
        for raw in template.split(':') {
            if parts.len() == MAX_KEY_PARTS {
                return Err(KeyTemplateError::TooManyParts);
            }
            let raw = raw.trim();
            let part = match raw {
                "" => return Err(KeyTemplateError::EmptyPart),
                "ip" => KeyPart::Ip,
                "user" => KeyPart::User,
                "route" => KeyPart::Route,
                "method" => KeyPart::Method,
                "tier" => KeyPart::Tier,
                _ => match raw.strip_prefix("header=") {
                    Some(name) => {
                        let name = HeaderName::from_bytes(name.as_bytes())
                            .map_err(|_| KeyTemplateError::BadHeaderName(name.to_owned()))?;
                        if SECRET_HEADERS.contains(&name.as_str()) {
                            return Err(KeyTemplateError::SecretHeader(name.as_str().to_owned()));
                        }
                        KeyPart::Header(name)
                    }
                    None => return Err(KeyTemplateError::UnknownPart(raw.to_owned())),
                },
            };
            if parts.contains(&part) {
                return Err(KeyTemplateError::DuplicatePart(raw.to_owned()));
            }
            parts.push(part);
        }
        let longest = max_rendered_len(&parts);
        if longest > MAX_RENDERED_KEY_BYTES {
            return Err(KeyTemplateError::TooLong(longest));
        }
        Ok(Self {
            parts: parts.into(),
            ipv6_prefix: DEFAULT_IPV6_KEY_PREFIX,
        })
    }

    /// Keys IPv6 clients by their first `prefix` bits (clamped to 128; 128 keeps the whole
    /// address).
    pub fn with_ipv6_prefix(mut self, prefix: u8) -> Self {
        self.ipv6_prefix = prefix.min(128);
        self
    }

    /// The parts, in order.
    pub fn parts(&self) -> &[KeyPart] {
        &self.parts
    }

    /// Renders the key; at most [`MAX_RENDERED_KEY_BYTES`] bytes.
    pub fn render(&self, facts: &RequestFacts<'_>) -> String {
        let mut out = String::with_capacity(48);
        self.render_into(facts, &mut out);
        out
    }

    /// Renders the key into `out` (cleared first), so a caller can reuse one buffer.
    pub fn render_into(&self, facts: &RequestFacts<'_>, out: &mut String) {
        out.clear();
        for (i, part) in self.parts.iter().enumerate() {
            if i > 0 {
                out.push(':');
            }
            match part {
                KeyPart::Ip => self.push_ip(facts.client_ip, out),
                KeyPart::User => match facts.user {
                    Some(user) => {
                        out.push_str("user:");
                        push_value(user.as_bytes(), out);
                    }
                    // Anonymous: counted as its address, the bucket an `ip` template and a
                    // `/check` caller name it by.
                    None => self.push_ip(facts.client_ip, out),
                },
                KeyPart::Route => {
                    out.push_str("route:");
                    push_value(facts.route.as_bytes(), out);
                }
                KeyPart::Method => {
                    out.push_str("method:");
                    push_method(facts.method.as_bytes(), out);
                }
                KeyPart::Tier => {
                    out.push_str("tier:");
                    push_value(facts.tier.as_bytes(), out);
                }
                KeyPart::Header(name) => {
                    out.push_str("header=");
                    out.push_str(name.as_str());
                    out.push(':');
                    match facts.headers.and_then(|h| h.header(name)) {
                        Some(v) => push_value(v, out),
                        None => out.push(ABSENT),
                    }
                }
            }
        }
    }

    /// `ip:` and the address: dotted IPv4, IPv6 as `<network>/<length>`, `~` when unknown.
    /// Neither needs escaping: an IPv4 address holds no `:`, and an IPv6 value ends at the
    /// one `/` it holds.
    fn push_ip(&self, ip: Option<IpAddr>, out: &mut String) {
        out.push_str("ip:");
        match ip.map(|ip| ip.to_canonical()) {
            None => out.push(ABSENT),
            Some(IpAddr::V4(v4)) => {
                let _ = write!(out, "{v4}");
            }
            Some(IpAddr::V6(v6)) => {
                // `ipv6_prefix` ≤ 128, so `new` cannot fail; fall back to the full address
                // rather than panic if it ever did.
                let net = Ipv6Net::new(v6, self.ipv6_prefix)
                    .unwrap_or_else(|_| Ipv6Net::new(v6, 128).expect("128 is a valid length"));
                let _ = write!(out, "{}/{}", net.network(), net.prefix_len());
            }
        }
    }
}

/// The longest key a template's parts can render (names, separators and values at their
/// longest).
fn max_rendered_len(parts: &[KeyPart]) -> usize {
    let ip = "ip:".len() + MAX_IP_BYTES;
    let value = MAX_PART_BYTES;
    let part = |p: &KeyPart| match p {
        KeyPart::Ip => ip,
        KeyPart::User => ("user:".len() + value).max(ip),
        KeyPart::Route => "route:".len() + value,
        KeyPart::Method => "method:".len() + value,
        KeyPart::Tier => "tier:".len() + value,
        KeyPart::Header(name) => "header=".len() + name.as_str().len() + 1 + value,
    };
    parts.iter().map(part).sum::<usize>() + parts.len().saturating_sub(1)
}

/// Reads a rendered key back into its parts' names and values, in order (`("user", "42")`,
/// `("ip", "2001:db8:1:2::/64")`, `("header=x-device", "~")`); `None` if `key` is not one
/// [`KeyTemplate::render`] could produce. That every rendered key reads back (tested) is
/// what makes rendering injective; the doors themselves never need to read a key.
pub fn split_key(key: &str) -> Option<Vec<(&str, &str)>> {
    let mut parts = Vec::new();
    let mut rest = key;
    loop {
        let (name, after) = rest.split_once(':')?;
        let known = matches!(name, "ip" | "user" | "route" | "method" | "tier")
            || name
                .strip_prefix("header=")
                .is_some_and(|h| HeaderName::from_bytes(h.as_bytes()).is_ok());
        if !known {
            return None;
        }
        let end = if name == "ip" {
            ip_value_len(after)?
        } else {
            after.find(':').unwrap_or(after.len())
        };
        // A value may be empty (an empty header); an absent one is `~`.
        let (value, tail) = after.split_at(end);
        parts.push((name, value));
        match tail.strip_prefix(':') {
            Some(next) => rest = next,
            None if tail.is_empty() => return Some(parts),
            None => return None,
        }
    }
}

/// Length of the address value at the start of `s`: `~` or an IPv4 address up to the next
/// `:`, else an IPv6 address through its `/<length>`.
fn ip_value_len(s: &str) -> Option<usize> {
    let plain = s.find(':').unwrap_or(s.len());
    let head = &s[..plain];
    if head == "~" || head.parse::<std::net::Ipv4Addr>().is_ok() {
        return Some(plain);
    }
    let slash = s.find('/')?;
    let digits = s[slash + 1..]
        .bytes()
        .take_while(u8::is_ascii_digit)
        .count();
    let len = slash + 1 + digits;
    s[..len].parse::<Ipv6Net>().ok().map(|_| len)
}

impl Default for KeyTemplate {
    fn default() -> Self {
        Self {
            parts: Box::new([KeyPart::User]),
            ipv6_prefix: DEFAULT_IPV6_KEY_PREFIX,
        }
    }
}

impl std::fmt::Display for KeyTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, p) in self.parts.iter().enumerate() {
            if i > 0 {
                f.write_str(":")?;
            }
            match p {
                KeyPart::Ip => f.write_str("ip")?,
                KeyPart::User => f.write_str("user")?,
                KeyPart::Route => f.write_str("route")?,
                KeyPart::Method => f.write_str("method")?,
                KeyPart::Tier => f.write_str("tier")?,
                KeyPart::Header(h) => write!(f, "header={h}")?,
            }
        }
        Ok(())
    }
}

/// Marks an absent value; always escaped inside values.
const ABSENT: char = '~';
/// Marks a hashed value; always escaped inside values.
const HASHED: char = '#';

fn must_escape(b: u8) -> bool {
    !(0x21..=0x7e).contains(&b) || matches!(b, b'%' | b':' | b'~' | b'#')
}

fn escaped_len(value: &[u8]) -> usize {
    value
        .iter()
        .map(|&b| if must_escape(b) { 3 } else { 1 })
        .sum()
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

fn push_value(value: &[u8], out: &mut String) {
    if escaped_len(value) > MAX_PART_BYTES {
        let digest = ring::digest::digest(&ring::digest::SHA256, value);
        out.push(HASHED);
        for &b in &digest.as_ref()[..16] {
            out.push(HEX[(b >> 4) as usize].to_ascii_lowercase() as char);
            out.push(HEX[(b & 0xf) as usize].to_ascii_lowercase() as char);
        }
        return;
    }
    for &b in value {
        if must_escape(b) {
            out.push('%');
            out.push(HEX[(b >> 4) as usize] as char);
            out.push(HEX[(b & 0xf) as usize] as char);
        } else {
            out.push(b as char);
        }
    }
}

fn push_method(method: &[u8], out: &mut String) {
    if method.len() <= MAX_PART_BYTES && method.iter().all(|b| b.is_ascii_alphabetic()) {
        out.extend(method.iter().map(|b| b.to_ascii_uppercase() as char));
    } else {
        push_value(method, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderMap, HeaderValue};

    fn facts<'a>(
        ip: Option<&str>,
        user: Option<&'a str>,
        headers: Option<&'a dyn RequestHeaders>,
    ) -> RequestFacts<'a> {
        RequestFacts {
            client_ip: ip.map(|s| s.parse().unwrap()),
            user,
            route: "/api/auth/**",
            method: "post",
            tier: "basic",
            headers,
        }
    }

    #[test]
    fn parse_and_display() {
        let t = KeyTemplate::parse("ip:user:route:method:tier:header=X-Client").unwrap();
        assert_eq!(t.parts().len(), 6);
        assert_eq!(t.to_string(), "ip:user:route:method:tier:header=x-client");
        use KeyTemplateError::*;
        assert_eq!(KeyTemplate::parse(""), Err(Empty));
        assert_eq!(KeyTemplate::parse(" "), Err(Empty));
        assert_eq!(
            KeyTemplate::parse(" ip : user ").unwrap().parts(),
            [KeyPart::Ip, KeyPart::User]
        );
        for h in [
            "Authorization",
            "cookie",
            "X-Api-Key",
            "proxy-authorization",
        ] {
            assert_eq!(
                KeyTemplate::parse(&format!("ip:header={h}")),
                Err(SecretHeader(h.to_ascii_lowercase()))
            );
        }
        assert_eq!(KeyTemplate::parse("ip:"), Err(EmptyPart));
        assert_eq!(KeyTemplate::parse("ip::user"), Err(EmptyPart));
        assert_eq!(KeyTemplate::parse("ip:ip"), Err(DuplicatePart("ip".into())));
        assert_eq!(KeyTemplate::parse("host"), Err(UnknownPart("host".into())));
        assert_eq!(
            KeyTemplate::parse("header=bad name"),
            Err(BadHeaderName("bad name".into()))
        );
        assert_eq!(
            KeyTemplate::parse("header=a:header=A"),
            Err(DuplicatePart("header=A".into()))
        );
        assert!(KeyTemplate::parse("header=a:header=b").is_ok());
        assert!(KeyTemplate::parse("ip:user:route:method:tier:header=a:header=b:header=c").is_ok());
        assert_eq!(
            KeyTemplate::parse("ip:user:route:method:tier:header=a:header=b:header=c:header=d"),
            Err(TooManyParts)
        );
    }

    #[test]
    fn render_common_templates() {
        let f = facts(Some("203.0.113.7"), Some("alice"), None);
        let r = |t: &str| KeyTemplate::parse(t).unwrap().render(&f);
        assert_eq!(r("ip"), "ip:203.0.113.7");
        assert_eq!(r("user"), "user:alice");
        assert_eq!(r("ip:user"), "ip:203.0.113.7:user:alice");
        assert_eq!(r("route"), "route:/api/auth/**");
        assert_eq!(r("method:tier"), "method:POST:tier:basic");
    }

    #[test]
    fn every_rendered_key_reads_back_into_its_parts() {
        let mut h = HeaderMap::new();
        h.insert("x-device", HeaderValue::from_static("a:b~"));
        let t =
            KeyTemplate::parse("ip:user:route:method:tier:header=x-device:header=x-none").unwrap();
        for ip in ["203.0.113.7", "2001:db8:1:2::7"] {
            let key = t.render(&facts(Some(ip), Some("u:1"), Some(&h)));
            let parts = split_key(&key).unwrap();
            let names: Vec<_> = parts.iter().map(|p| p.0).collect();
            assert_eq!(
                names,
                [
                    "ip",
                    "user",
                    "route",
                    "method",
                    "tier",
                    "header=x-device",
                    "header=x-none"
                ]
            );
            assert_eq!(parts[1].1, "u%3A1");
            assert_eq!(parts[5].1, "a%3Ab%7E");
            assert_eq!(parts[6].1, "~");
        }
        let key = KeyTemplate::parse("user:ip")
            .unwrap()
            .with_ipv6_prefix(128)
            .render(&facts(Some("2001:db8::"), None, None));
        assert_eq!(key, "ip:2001:db8::/128:ip:2001:db8::/128");
        assert_eq!(
            split_key(&key).unwrap(),
            [("ip", "2001:db8::/128"), ("ip", "2001:db8::/128")]
        );
        assert_eq!(split_key("tier:"), Some(vec![("tier", "")]));
        for not_a_key in [
            "",
            "42",
            "user",
            "ip:",
            "ip:2001:db8::",
            "who:42",
            "user:a::",
        ] {
            assert_eq!(split_key(not_a_key), None, "{not_a_key:?}");
        }
    }

    #[test]
    fn templates_whose_keys_could_be_too_long_are_refused() {
        let long = "x".repeat(200);
        assert!(matches!(
            KeyTemplate::parse(&format!("ip:user:header={long}:header={long}a")),
            Err(KeyTemplateError::TooLong(n)) if n > MAX_RENDERED_KEY_BYTES
        ));
        let every = KeyTemplate::parse("ip:user:route:method:tier:header=a:header=b:header=c");
        assert!(every.is_ok());
    }

    #[test]
    fn anonymous_user_is_keyed_by_address() {
        let t = KeyTemplate::parse("user").unwrap();
        let ip = KeyTemplate::parse("ip").unwrap();
        let anonymous = facts(Some("192.0.2.1"), None, None);
        assert_eq!(t.render(&anonymous), "ip:192.0.2.1");
        // The same bucket as the address's own key.
        assert_eq!(t.render(&anonymous), ip.render(&anonymous));
        assert_eq!(t.render(&facts(None, None, None)), "ip:~");
        // A user whose id looks like an address's key gets a different key.
        assert_eq!(
            t.render(&facts(Some("192.0.2.1"), Some("ip:192.0.2.1"), None)),
            "user:ip%3A192.0.2.1"
        );
    }

    #[test]
    fn ipv6_is_keyed_by_prefix() {
        let t = KeyTemplate::parse("ip").unwrap();
        let a = t.render(&facts(Some("2001:db8:1:2:aaaa::1"), None, None));
        let b = t.render(&facts(Some("2001:db8:1:2:bbbb::9"), None, None));
        assert_eq!(a, b);
        assert_eq!(a, "ip:2001:db8:1:2::/64");
        let full = t.clone().with_ipv6_prefix(128);
        assert_ne!(
            full.render(&facts(Some("2001:db8::1"), None, None)),
            full.render(&facts(Some("2001:db8::2"), None, None))
        );
        // IPv4-mapped IPv6 is the IPv4 client.
        assert_eq!(
            t.render(&facts(Some("::ffff:192.0.2.1"), None, None)),
            "ip:192.0.2.1"
        );
    }

    #[test]
    fn values_are_escaped_so_keys_cannot_collide() {
        let t = KeyTemplate::parse("user:header=x-device").unwrap();
        let mut h1 = HeaderMap::new();
        h1.insert("x-device", HeaderValue::from_static("c"));
        let mut h2 = HeaderMap::new();
        h2.insert("x-device", HeaderValue::from_static("b:c"));
        let k1 = t.render(&facts(None, Some("a:b"), Some(&h1)));
        let k2 = t.render(&facts(None, Some("a"), Some(&h2)));
        assert_eq!(k1, "user:a%3Ab:header=x-device:c");
        assert_eq!(k2, "user:a:header=x-device:b%3Ac");
        assert_ne!(k1, k2);
        let none = t.render(&facts(None, Some("a"), None));
        assert_eq!(none, "user:a:header=x-device:~");
        let mut odd = HeaderMap::new();
        odd.insert("x-device", HeaderValue::from_bytes(b"\xff ~#%").unwrap());
        assert_eq!(
            t.render(&facts(None, Some("u"), Some(&odd))),
            "user:u:header=x-device:%FF%20%7E%23%25"
        );
    }

    #[test]
    fn long_values_are_hashed_and_bounded() {
        let t = KeyTemplate::parse("user").unwrap();
        let long_a = "a".repeat(1000);
        let mut long_b = long_a.clone();
        long_b.push('b');
        let ka = t.render(&facts(None, Some(&long_a), None));
        let kb = t.render(&facts(None, Some(&long_b), None));
        assert_eq!(ka.len(), "user:".len() + 33);
        assert!(ka.starts_with("user:#"));
        assert_ne!(ka, kb);
        // Exactly at the bound: kept as is.
        let edge = "e".repeat(MAX_PART_BYTES);
        assert_eq!(
            t.render(&facts(None, Some(&edge), None)),
            format!("user:{edge}")
        );
        // 22 bytes that escape to 66: hashed.
        let colons = ":".repeat(22);
        assert!(t
            .render(&facts(None, Some(&colons), None))
            .starts_with("user:#"));
    }

    #[test]
    fn render_into_reuses_the_buffer() {
        let t = KeyTemplate::parse("ip:method").unwrap();
        let mut buf = String::from("stale");
        t.render_into(&facts(Some("10.0.0.1"), None, None), &mut buf);
        assert_eq!(buf, "ip:10.0.0.1:method:POST");
    }
}
