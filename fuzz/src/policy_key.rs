//! Fuzz body: key templates, parsed from arbitrary text and rendered from arbitrary facts.
//!
//! Input: the template, a 0 byte, then the values (user, route, method, tier and two header
//! values) separated by 0 bytes. Checks the rendered key's bound and alphabet, that it reads
//! back into one part per template part, and that the template's text form parses back to the
//! same template.

use std::net::{IpAddr, Ipv6Addr};

use http::{HeaderMap, HeaderValue};
use tollgate::policy::key::{split_key, KeyTemplate, RequestFacts, MAX_RENDERED_KEY_BYTES};

pub fn run(data: &[u8]) {
    let mut fields = data.split(|&b| b == 0);
    let Some(template) = fields.next() else {
        return;
    };
    let Ok(template) = std::str::from_utf8(template) else {
        return;
    };
    let Ok(parsed) = KeyTemplate::parse(template) else {
        return;
    };
    assert_eq!(
        KeyTemplate::parse(&parsed.to_string()).as_ref(),
        Ok(&parsed)
    );

    let text: Vec<String> = (0..4)
        .map(|_| String::from_utf8_lossy(fields.next().unwrap_or_default()).into_owned())
        .collect();
    let mut headers = HeaderMap::new();
    for (i, value) in fields.take(2).enumerate() {
        if let Ok(v) = HeaderValue::from_bytes(value) {
            headers.insert(if i == 0 { "x-a" } else { "x-b" }, v);
        }
    }
    // The address comes from the data too, so both families and mapped forms occur.
    let mut octets = [0u8; 16];
    for (o, b) in octets.iter_mut().zip(data.iter().rev()) {
        *o = *b;
    }
    let v6 = Ipv6Addr::from(octets);
    let ip = match data.len() % 3 {
        0 => None,
        1 => Some(IpAddr::V6(v6)),
        _ => Some(IpAddr::V6(v6).to_canonical()),
    };
    let user = if text[0].is_empty() {
        None
    } else {
        Some(text[0].as_str())
    };
    for prefix in [64, 128, 1] {
        let t = parsed.clone().with_ipv6_prefix(prefix);
        let key = t.render(&RequestFacts {
            client_ip: ip,
            user,
            route: &text[1],
            method: &text[2],
            tier: &text[3],
            headers: Some(&headers),
        });
        assert!(key.len() <= MAX_RENDERED_KEY_BYTES, "{} bytes", key.len());
        assert!(key.bytes().all(|b| (0x21..=0x7e).contains(&b)), "{key:?}");
        // The key reads back into one part per template part: rendering is injective.
        let parts = split_key(&key).unwrap_or_else(|| panic!("{key:?} does not read back"));
        assert_eq!(parts.len(), t.parts().len(), "{key:?}");
    }
}
