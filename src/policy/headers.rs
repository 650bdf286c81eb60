//! The request headers a decision reads, as any door holds them.
//!
//! The policy reads a few headers besides the credentials: the client-IP headers
//! (`X-Forwarded-For`, `X-Real-IP`) of a trusted proxy, and the headers key templates name
//! (`header=x-client-id`). Doors hold headers in different shapes: hyper's `http::HeaderMap`,
//! the HTTP fast path's slices of its read buffer, and a non-HTTP door may have none. So the
//! policy and the gate take headers through [`RequestHeaders`], a lookup by name, and never a
//! concrete map.

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

/// No headers at all: a door whose requests carry none (the RESP door).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoHeaders;

impl RequestHeaders for NoHeaders {
    fn header_values<'s>(&'s self, _: &HeaderName) -> HeaderValues<'s> {
        HeaderValues::new()
    }

    fn header(&self, _: &HeaderName) -> Option<&[u8]> {
        None
    }
}

/// Header lines as `(name, value)` pairs, names already lowercase (what a hand-written
/// parser collects from a request head without building a map).
impl RequestHeaders for [(HeaderName, &[u8])] {
    fn header_values<'s>(&'s self, name: &HeaderName) -> HeaderValues<'s> {
        self.iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| *v)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shape_answers_alike() {
        let xff = HeaderName::from_static("x-forwarded-for");
        let other = HeaderName::from_static("x-other");
        let mut map = HeaderMap::new();
        map.append(&xff, "1.1.1.1".parse().unwrap());
        map.append(&xff, "2.2.2.2".parse().unwrap());
        let pairs: Vec<(HeaderName, &[u8])> = vec![
            (xff.clone(), b"1.1.1.1"),
            (other.clone(), b"x"),
            (xff.clone(), b"2.2.2.2"),
        ];
        let want: &[&[u8]] = &[b"1.1.1.1", b"2.2.2.2"];
        assert_eq!(map.header_values(&xff).as_slice(), want);
        assert_eq!(pairs.as_slice().header_values(&xff).as_slice(), want);
        assert_eq!(map.header(&xff), Some(&b"1.1.1.1"[..]));
        assert_eq!(pairs.as_slice().header(&xff), Some(&b"1.1.1.1"[..]));
        assert_eq!(map.header(&other), None);
        assert_eq!(NoHeaders.header(&xff), None);
        assert!(NoHeaders.header_values(&xff).is_empty());
    }
}
