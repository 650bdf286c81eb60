//! CORS preflight requests: what one is, and what the policy does with one.
//!
//! A browser asks before a cross-origin request it may not send unasked (one with an
//! `Authorization` header, a JSON body, a method other than GET/HEAD/POST): it sends an
//! `OPTIONS` request with `Origin` and `Access-Control-Request-Method`, and **never with
//! credentials** — the Fetch standard forbids cookies and `Authorization` on a preflight
//! (<https://fetch.spec.whatwg.org/#cors-preflight-fetch>). Judged like any request, a
//! preflight to a protected route is refused (401), the browser never sends the real request,
//! and the application's CORS answer never reaches it.
//!
//! So by default ([`CorsPreflight::Pass`]) a preflight passes to the application on every
//! route, whatever its rule: anonymous, without identity, spending no tier quota (only the
//! limits of `[policy] cors_preflight_limits`, when set). The application's CORS layer then
//! answers it; the real request that follows carries its credentials and is judged as usual.
//! [`CorsPreflight::Judge`] judges a preflight like any other `OPTIONS` request (for an
//! application that serves no cross-origin browsers, or answers preflights in nginx).
//!
//! What is a preflight is the Fetch standard's definition
//! (<https://fetch.spec.whatwg.org/#cors-preflight-request>): method `OPTIONS`, exactly as a
//! browser sends it, with a non-empty `Origin` and a non-empty `Access-Control-Request-Method`.
//! Both headers are needed: an `OPTIONS` request without them is not a preflight (an
//! application may serve `OPTIONS` as a request of its own), and is judged by the rules.
//! `options` in another case is not the method a browser sends and is judged too.

use http::HeaderName;

use super::headers::RequestHeaders;

/// The method of every CORS preflight, byte for byte.
pub const PREFLIGHT_METHOD: &str = "OPTIONS";

/// `Origin`.
pub const ORIGIN: HeaderName = HeaderName::from_static("origin");
/// `Access-Control-Request-Method`.
pub const ACCESS_CONTROL_REQUEST_METHOD: HeaderName =
    HeaderName::from_static("access-control-request-method");

/// The headers a preflight is recognised by, which a door must keep for an `OPTIONS` request
/// (see [`may_be_preflight`]).
pub const PREFLIGHT_HEADERS: [HeaderName; 2] = [ORIGIN, ACCESS_CONTROL_REQUEST_METHOD];

/// What the policy does with a CORS preflight request (`[policy] cors_preflight`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum CorsPreflight {
    /// Pass it to the application: allowed, anonymous, no tier quota spent.
    #[default]
    Pass,
    /// Judge it like any other request, by its route rule.
    Judge,
}

impl CorsPreflight {
    /// Parses `pass` or `judge`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pass" => Some(Self::Pass),
            "judge" => Some(Self::Judge),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pass => "pass",
            Self::Judge => "judge",
        }
    }
}

/// Whether a request of this method may be a preflight: the one comparison every request
/// pays. A door that keeps only some headers keeps [`PREFLIGHT_HEADERS`] when this is true.
#[inline]
pub fn may_be_preflight(method: &[u8]) -> bool {
    method == PREFLIGHT_METHOD.as_bytes()
}

/// Whether a request is a CORS preflight (see the module docs). `headers` is `None` where a
/// door has none: then it is not one.
#[inline]
pub fn is_preflight(method: &str, headers: Option<&dyn RequestHeaders>) -> bool {
    if !may_be_preflight(method.as_bytes()) {
        return false;
    }
    let Some(h) = headers else { return false };
    let present = |name: &HeaderName| h.header(name).is_some_and(|v| !v.is_empty());
    present(&ORIGIN) && present(&ACCESS_CONTROL_REQUEST_METHOD)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderMap, HeaderValue};

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in pairs {
            h.append(*n, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn a_preflight_is_options_with_origin_and_the_requested_method() {
        let both = headers(&[
            ("origin", "https://app.example"),
            ("access-control-request-method", "DELETE"),
        ]);
        let is = |m: &str, h: &HeaderMap| is_preflight(m, Some(h));
        assert!(is("OPTIONS", &both));
        assert!(!is("options", &both), "not the method a browser sends");
        assert!(!is("GET", &both));
        assert!(!is_preflight("OPTIONS", None), "no headers, no preflight");
        for partial in [
            headers(&[("origin", "https://app.example")]),
            headers(&[("access-control-request-method", "PUT")]),
            headers(&[("origin", ""), ("access-control-request-method", "PUT")]),
            headers(&[("origin", "null"), ("access-control-request-method", "")]),
            HeaderMap::new(),
        ] {
            assert!(!is("OPTIONS", &partial), "{partial:?}");
        }
        // An opaque origin is still an origin.
        assert!(is(
            "OPTIONS",
            &headers(&[("origin", "null"), ("access-control-request-method", "PUT")])
        ));
    }

    #[test]
    fn settings_parse() {
        assert_eq!(CorsPreflight::parse("pass"), Some(CorsPreflight::Pass));
        assert_eq!(CorsPreflight::parse("judge"), Some(CorsPreflight::Judge));
        assert_eq!(CorsPreflight::parse("Pass"), None);
        assert_eq!(CorsPreflight::default().as_str(), "pass");
    }
}
