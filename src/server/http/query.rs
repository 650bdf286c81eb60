//! Query-string decoding for `/check`: `application/x-www-form-urlencoded` pairs into the
//! `CheckParams` the endpoint reads, percent-decoded, each known parameter at most once.

use std::borrow::Cow;

use crate::problem::{quote, Problem, ProblemType};

/// The `/check` parameters, percent-decoded (`+` is a space), each at most once.
///
/// Public (hidden) only for the `http_fastpath` fuzz target, like [`decode`].
#[doc(hidden)]
#[derive(Debug, Default, PartialEq)]
pub struct CheckParams<'a> {
    pub key: Option<Cow<'a, str>>,
    pub tier: Option<Cow<'a, str>>,
    pub hits: Option<Cow<'a, str>>,
    pub limit: Option<Cow<'a, str>>,
}

impl<'a> CheckParams<'a> {
    /// Parses `application/x-www-form-urlencoded` pairs. Unknown parameters are ignored (a
    /// cache-busting `_=…` must not fail a check); a known one given twice is an error,
    /// since choosing either value silently could count against the wrong key.
    pub fn parse(query: &'a str) -> Result<Self, Problem> {
        let mut p = CheckParams::default();
        for pair in query.split('&').filter(|s| !s.is_empty()) {
            let (raw_name, raw_value) = pair.split_once('=').unwrap_or((pair, ""));
            let name = decode(raw_name).map_err(|why| {
                Problem::new(
                    ProblemType::InvalidParameter,
                    format!("a parameter name {why}: {}", quote(raw_name)),
                )
            })?;
            let slot = match name.as_ref() {
                "key" => &mut p.key,
                "tier" => &mut p.tier,
                "hits" => &mut p.hits,
                "limit" => &mut p.limit,
                _ => continue,
            };
            if slot.is_some() {
                return Err(Problem::new(
                    ProblemType::DuplicateParameter,
                    format!("the parameter {name} appears more than once"),
                ));
            }
            let value = decode(raw_value).map_err(|why| {
                Problem::new(
                    ProblemType::InvalidParameter,
                    format!("the value of {name} {why}"),
                )
            })?;
            *slot = Some(value);
        }
        Ok(p)
    }
}

/// Percent-decodes one form component (`+` → space). Borrows when there is nothing to decode,
/// which is the common case for keys such as `ip:203.0.113.7`. A `%` not followed by two hex
/// digits, or bytes that are not UTF-8, are refused: guessing would change the key.
#[doc(hidden)]
pub fn decode(raw: &str) -> Result<Cow<'_, str>, &'static str> {
    if !raw.bytes().any(|b| b == b'%' || b == b'+') {
        return Ok(Cow::Borrowed(raw));
    }
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' => {
                let hex = |b: u8| (b as char).to_digit(16);
                match (
                    bytes.get(i + 1).and_then(|&b| hex(b)),
                    bytes.get(i + 2).and_then(|&b| hex(b)),
                ) {
                    (Some(h), Some(l)) => out.push((h * 16 + l) as u8),
                    _ => {
                        return Err(
                            "has a malformed percent-escape (% must be followed by two hex digits)",
                        )
                    }
                }
                i += 3;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out)
        .map(Cow::Owned)
        .map_err(|_| "is not UTF-8 once percent-decoded")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_handles_plus_escapes_and_refuses_garbage() {
        assert!(matches!(
            decode("ip:1.2.3.4"),
            Ok(Cow::Borrowed("ip:1.2.3.4"))
        ));
        assert_eq!(decode("a+b%20c%3A").unwrap(), "a b c:");
        assert_eq!(decode("%C3%A9").unwrap(), "é");
        assert!(decode("%").is_err());
        assert!(decode("%4").is_err());
        assert!(decode("%zz").is_err());
        assert!(decode("%FF").is_err(), "not UTF-8");
    }

    #[test]
    fn params_parse_decode_and_refuse_duplicates() {
        let p = CheckParams::parse("key=user%3A42&tier=basic&hits=3&_=17&&limit=log+in").unwrap();
        assert_eq!(p.key.as_deref(), Some("user:42"));
        assert_eq!(p.tier.as_deref(), Some("basic"));
        assert_eq!(p.hits.as_deref(), Some("3"));
        assert_eq!(p.limit.as_deref(), Some("log in"));
        let e = CheckParams::parse("key=a&tier=b&key=c").unwrap_err();
        assert_eq!(e.kind, ProblemType::DuplicateParameter);
        // An encoded name is the same parameter.
        let e = CheckParams::parse("key=a&k%65y=c").unwrap_err();
        assert_eq!(e.kind, ProblemType::DuplicateParameter);
        let e = CheckParams::parse("key=%ZZ").unwrap_err();
        assert_eq!(e.kind, ProblemType::InvalidParameter);
        assert_eq!(CheckParams::parse("key").unwrap().key.as_deref(), Some(""));
    }
}
