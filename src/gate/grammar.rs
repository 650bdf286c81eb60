//! The grammar of the arguments every door shares, in one place so that the same bytes mean
//! the same thing through any door: an HTTP method (`X-Original-Method` over HTTP, `VERIFY`'s
//! method argument over RESP) and a hit count (`hits=` over HTTP, `HITS` over RESP).

/// Longest method accepted (the standard methods are at most 7 bytes).
pub const MAX_METHOD_BYTES: usize = 32;

/// Longest hit count accepted, in digits (`u64::MAX` has 20).
const MAX_HITS_DIGITS: usize = 20;

/// An HTTP method token (RFC 9110 `tchar`s), 1 to [`MAX_METHOD_BYTES`] bytes, as sent: case
/// is kept (methods are case-sensitive; route rules compare them as written).
pub fn method(arg: &[u8]) -> Option<&str> {
    const TCHAR: &[u8] = b"!#$%&'*+-.^_`|~";
    let ok = !arg.is_empty()
        && arg.len() <= MAX_METHOD_BYTES
        && arg
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || TCHAR.contains(b));
    // Only ASCII passed, so this never fails.
    ok.then(|| std::str::from_utf8(arg).ok()).flatten()
}

/// A hit count: plain decimal digits only (no sign, no spaces, no `0x`), at most 20 of them,
/// fitting in a `u64`. Whether the count is within the configured maximum is the gate's
/// check ([`super::CheckError::HitsOutOfRange`]), not the grammar's.
pub fn hits(arg: &[u8]) -> Option<u64> {
    if arg.is_empty() || arg.len() > MAX_HITS_DIGITS || !arg.iter().all(u8::is_ascii_digit) {
        return None;
    }
    // Digits only, so this is UTF-8 and parses unless it overflows.
    std::str::from_utf8(arg).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods() {
        for ok in [
            "GET",
            "POST",
            "get",
            "M-SEARCH",
            "PROPFIND",
            "X!#$%&'*+-.^_`|~1",
        ] {
            assert_eq!(method(ok.as_bytes()), Some(ok), "{ok}");
        }
        let long = "A".repeat(MAX_METHOD_BYTES + 1);
        for bad in [
            &b""[..],
            b"GE T",
            b"GET\r\n",
            b"G(ET)",
            b"\xc3\xa9",
            long.as_bytes(),
        ] {
            assert_eq!(method(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
        assert!(method("A".repeat(MAX_METHOD_BYTES).as_bytes()).is_some());
    }

    #[test]
    fn hit_counts() {
        assert_eq!(hits(b"0"), Some(0));
        assert_eq!(hits(b"5"), Some(5));
        assert_eq!(hits(b"007"), Some(7));
        assert_eq!(hits(b"18446744073709551615"), Some(u64::MAX));
        for bad in [
            &b""[..],
            b"+5",
            b"-1",
            b" 5",
            b"5 ",
            b"0x10",
            b"1e3",
            b"5.0",
            b"18446744073709551616",
            b"000000000000000000001",
        ] {
            assert_eq!(hits(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }
}
