//! The request headers a decision reads, as any door holds them.
//!
//! The policy reads a few headers besides the credentials: the client-IP headers
//! (`X-Forwarded-For`, `X-Real-IP`) of a trusted proxy, and the headers key templates name
//! (`header=x-client-id`). Doors hold headers in different shapes (the HTTP door's
//! `http::HeaderMap`; a RESP `VERIFY` has none, and passes no lookup at all), so the policy
//! and the gate take headers through [`RequestHeaders`], a lookup by name, and never a
//! concrete map: a door with another shape implements the trait for it.

use http::{HeaderMap, HeaderName};
use smallvec::SmallVec;

/// Values of one header, in the order they arrived.
pub type HeaderValues<'s> = SmallVec<[&'s [u8]; 4]>;

/// A lookup of request headers by (lowercase) name. `Sync`, so that a decision that waits
/// (for a key-set refetch) can hold it across the wait on any thread.
pub trait RequestHeaders: Sync {
    /// Every value of header `name`, in the order received (one per header line).
    fn header_values<'s>(&'s self, name: &HeaderName) -> HeaderValues<'s>;

    /// The first value of header `name`.
    fn header(&self, name: &HeaderName) -> Option<&[u8]> {
        self.header_values(name).first().copied()
    }
}

impl std::fmt::Debug for dyn RequestHeaders + '_ {
    /// Never the values: they may include credentials a key template must not echo.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RequestHeaders")
    }
}

impl RequestHeaders for HeaderMap {
    fn header_values<'s>(&'s self, name: &HeaderName) -> HeaderValues<'s> {
        self.get_all(name).iter().map(|v| v.as_bytes()).collect()
    }

    fn header(&self, name: &HeaderName) -> Option<&[u8]> {
        self.get(name).map(|v| v.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_header_map_answers_every_line_in_order() {
        let xff = HeaderName::from_static("x-forwarded-for");
        let other = HeaderName::from_static("x-other");
        let mut map = HeaderMap::new();
        map.append(&xff, "1.1.1.1".parse().unwrap());
        map.append(&other, "x".parse().unwrap());
        map.append(&xff, "2.2.2.2".parse().unwrap());
        let lookup: &dyn RequestHeaders = &map;
        let want: &[&[u8]] = &[b"1.1.1.1", b"2.2.2.2"];
        assert_eq!(lookup.header_values(&xff).as_slice(), want);
        assert_eq!(lookup.header(&xff), Some(&b"1.1.1.1"[..]));
        assert_eq!(lookup.header(&HeaderName::from_static("x-none")), None);
        assert!(lookup
            .header_values(&HeaderName::from_static("x-none"))
            .is_empty());
    }
}
