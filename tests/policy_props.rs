//! Property tests of the route policy: path normalisation against a stack model, matching
//! against a brute-force oracle, key rendering bounds and injectivity, client-IP safety.

use std::net::IpAddr;

use http::{HeaderMap, HeaderName, HeaderValue};
use proptest::prelude::*;
use tollgate::policy::key::{split_key, KeyTemplate, RequestFacts, MAX_RENDERED_KEY_BYTES};
use tollgate::policy::path::{normalize_path, normalize_path_as, PathError, PathReading};
use tollgate::policy::{ClientIpResolver, Peer, Policy, PolicySpec, RouteSpec};

// ---------------------------------------------------------------------------------------
// Normalisation

/// Raw request targets built from the characters that matter to normalisation.
fn raw_target() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("/".to_string()),
        Just(".".to_string()),
        Just("..".to_string()),
        Just("%2e".to_string()),
        Just("%2E%2e".to_string()),
        Just("%2F".to_string()),
        Just("%25".to_string()),
        Just("%41".to_string()),
        Just("%".to_string()),
        Just("%C3%A9".to_string()),
        Just("%C3".to_string()),
        Just("?".to_string()),
        Just("#".to_string()),
        Just(";".to_string()),
        Just("%00".to_string()),
        "[a-c]{1,3}",
        "[ -~]{1,2}",
        "\\PC{1,2}",
    ];
    proptest::collection::vec(piece, 0..24).prop_map(|v| v.concat())
}

/// The stack model of dot-segment removal on already-decoded, slash-free segments.
fn model(segments: &[&str]) -> Option<String> {
    let mut stack: Vec<&str> = Vec::new();
    for s in segments {
        match *s {
            "" | "." => {}
            ".." => {
                stack.pop()?;
            }
            s => stack.push(s),
        }
    }
    Some(format!("/{}", stack.join("/")))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn normalisation_is_idempotent_and_canonical(raw in raw_target()) {
        if let Ok(p) = normalize_path(raw.as_bytes()) {
            let s = p.as_str();
            prop_assert!(s.starts_with('/'));
            prop_assert!(!s.contains("//"), "{s:?}");
            prop_assert!(!s.contains("/./") && !s.contains("/../"), "{s:?}");
            prop_assert!(!s.ends_with("/.") && !s.ends_with("/.."), "{s:?}");
            prop_assert!(s == "/" || !s.ends_with('/'), "{s:?}");
            prop_assert!(!s.bytes().any(|b| b < 0x20 || b == 0x7f));
            prop_assert_eq!(p.segments().count(), p.segment_count());
            prop_assert!(p.segments().all(|seg| !seg.is_empty() && seg != "." && seg != ".."));
            // The canonical URI form is a fixed point.
            let again = normalize_path(p.to_uri_string().as_bytes()).unwrap();
            prop_assert_eq!(&again, &p);
            prop_assert_eq!(again.to_uri_string(), p.to_uri_string());
            // Normalising the decoded form again changes nothing when it has no characters
            // that are special before decoding.
            if !s.contains(['%', '?', '#']) {
                prop_assert_eq!(normalize_path(s.as_bytes()).unwrap(), p);
            }
        }
    }

    #[test]
    fn dot_segments_follow_the_stack_model(
        segs in proptest::collection::vec(
            prop_oneof![Just(""), Just("."), Just(".."), Just("a"), Just("b"), Just("cc")], 0..16),
        query in "[?#][ -~]{0,8}",
        with_query in any::<bool>(),
    ) {
        let mut raw = format!("/{}", segs.join("/"));
        if with_query {
            raw.push_str(&query);
        }
        // The default (strict) reading refuses a leading `//` and any `.` or `..` segment
        // (backends disagree on both); the readings of backends that resolve dot segments
        // follow the model.
        let strict = normalize_path(raw.as_bytes());
        if raw.starts_with("//") {
            prop_assert_eq!(strict, Err(PathError::LeadingDoubleSlash));
        } else if segs.iter().any(|s| *s == "." || *s == "..") {
            prop_assert_eq!(strict, Err(PathError::DotSegment));
        } else {
            prop_assert_eq!(strict.unwrap().as_str().to_owned(), model(&segs).unwrap());
        }
        for reading in [PathReading::Go, PathReading::Servlet, PathReading::Node] {
            if raw.starts_with("//") && reading == PathReading::Node {
                continue;
            }
            let got = normalize_path_as(raw.as_bytes(), reading);
            match model(&segs) {
                Some(want) => prop_assert_eq!(got.unwrap().as_str().to_owned(), want),
                None => prop_assert_eq!(got, Err(PathError::AboveRoot)),
            }
        }
    }

    #[test]
    fn dot_dot_never_escapes_a_prefix(
        base in proptest::collection::vec("[a-z]{1,4}", 1..4),
        rest in proptest::collection::vec(prop_oneof![Just("..".to_string()), Just(".".to_string()), "[a-z]{1,3}"], 0..10),
    ) {
        // If the model keeps the base, so does the normaliser; if `..` would climb out of the
        // base, the result must not start with the base unless the model's does.
        let raw = format!("/{}/{}", base.join("/"), rest.join("/"));
        let all: Vec<&str> = base.iter().map(|s| s.as_str()).chain(rest.iter().map(|s| s.as_str())).collect();
        match (normalize_path_as(raw.as_bytes(), PathReading::Go), model(&all)) {
            (Ok(p), Some(want)) => prop_assert_eq!(p.as_str(), want),
            (Err(e), None) => prop_assert_eq!(e, PathError::AboveRoot),
            (got, want) => prop_assert!(false, "{raw:?}: got {got:?}, model {want:?}"),
        }
    }

    #[test]
    fn percent_decoding_matches_the_percent_encoding_crate(s in "\\PC{0,12}") {
        // Encode every byte, then normalise: the one segment must decode back exactly, unless
        // it is a dot segment or contains bytes the normaliser refuses.
        let encoded: String = s.bytes().map(|b| format!("%{b:02X}")).collect();
        let raw = format!("/x/{encoded}");
        let got = normalize_path(raw.as_bytes());
        let reference = percent_encoding::percent_decode_str(&encoded).decode_utf8().unwrap();
        // The first of `/` and `\` decides: each is refused where it is met.
        let first_separator = s.find(['/', '\\']).map(|i| s.as_bytes()[i]);
        if first_separator == Some(b'/') {
            prop_assert_eq!(got, Err(PathError::EncodedSlash));
        } else if first_separator == Some(b'\\') {
            prop_assert_eq!(got, Err(PathError::Backslash));
        } else if s.chars().any(|c| c.is_ascii_control()) {
            prop_assert_eq!(got, Err(PathError::ControlCharacter));
        } else if s.is_empty() {
            prop_assert_eq!(got.unwrap().as_str().to_owned(), "/x");
        } else if s == "." || s == ".." {
            prop_assert_eq!(got, Err(PathError::DotSegment));
        } else if s.starts_with(".;") || s.starts_with("..;") {
            prop_assert_eq!(got, Err(PathError::DotSegmentWithParameters));
        } else if s.contains(['\u{FF0F}', '\u{FF3C}', '\u{FF0E}', '\u{FF1B}', '\u{FF05}', '\u{FE52}',
            '\u{FE68}', '\u{FE54}', '\u{FE6A}', '\u{2024}', '\u{037E}']) {
            prop_assert_eq!(got, Err(PathError::LookalikeCharacter));
        } else {
            let p = got.unwrap();
            prop_assert_eq!(p.segment(1), Some(&*reference));
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = normalize_path(&bytes);
    }
}

// ---------------------------------------------------------------------------------------
// Matching against a brute-force oracle

/// Per path position, what consumed the segment: (rank, prefix length).
type OracleKey = Vec<(u8, usize)>;

#[derive(Debug, Clone)]
enum Seg {
    Lit(&'static str),
    Param,
    Star,
}

#[derive(Debug, Clone)]
enum Tail {
    Exact,
    Rest,
    Prefix(&'static str),
}

#[derive(Debug, Clone)]
struct GenRule {
    segs: Vec<Seg>,
    tail: Tail,
    methods: Vec<&'static str>,
}

impl GenRule {
    fn pattern(&self) -> String {
        let mut s = String::new();
        for (i, seg) in self.segs.iter().enumerate() {
            s.push('/');
            match seg {
                Seg::Lit(l) => s.push_str(l),
                Seg::Param => s.push_str(&format!("{{p{i}}}")),
                Seg::Star => s.push('*'),
            }
        }
        match self.tail {
            Tail::Exact if s.is_empty() => s.push('/'),
            Tail::Exact => {}
            Tail::Rest => s.push_str("/**"),
            Tail::Prefix(p) => {
                s.push('/');
                s.push_str(p);
                s.push_str("**");
            }
        }
        s
    }

    /// Per path position, what consumed that segment; the last entry is what happens at the
    /// end of the path. `None` when the rule does not match. Larger is more specific.
    fn oracle_key(&self, path: &[&str]) -> Option<OracleKey> {
        let mut key = Vec::new();
        let mut i = 0;
        for seg in &self.segs {
            let actual = path.get(i)?;
            match seg {
                Seg::Lit(l) if l == actual => key.push((4, 0)),
                Seg::Lit(_) => return None,
                Seg::Param | Seg::Star => key.push((2, 0)),
            }
            i += 1;
        }
        match self.tail {
            Tail::Exact => {
                if i != path.len() {
                    return None;
                }
                key.push((5, 0));
            }
            Tail::Rest => {
                // `**` consumes the rest and the end alike.
                key.extend(std::iter::repeat((1, 0)).take(path.len() - i + 1));
            }
            Tail::Prefix(p) => {
                let actual = path.get(i)?;
                if !actual.starts_with(p) {
                    return None;
                }
                key.push((3, p.len()));
                key.extend(std::iter::repeat((1, 0)).take(path.len() - i));
            }
        }
        Some(key)
    }

    fn method_matches(&self, m: &str) -> bool {
        self.methods.is_empty()
            || self
                .methods
                .iter()
                .any(|x| *x == m || (*x == "GET" && m == "HEAD"))
    }
}

fn gen_rule() -> impl Strategy<Value = GenRule> {
    let seg = prop_oneof![
        3 => prop_oneof![Just("a"), Just("b"), Just("ab")].prop_map(Seg::Lit),
        1 => Just(Seg::Param),
        1 => Just(Seg::Star),
    ];
    let tail = prop_oneof![
        Just(Tail::Exact),
        Just(Tail::Rest),
        prop_oneof![Just("a"), Just("ab"), Just("abc")].prop_map(Tail::Prefix),
    ];
    let methods = prop_oneof![
        2 => Just(vec![]),
        1 => Just(vec!["GET"]),
        1 => Just(vec!["POST", "GET"]),
        1 => Just(vec!["DELETE"]),
    ];
    (proptest::collection::vec(seg, 0..4), tail, methods).prop_map(|(segs, tail, methods)| {
        GenRule {
            segs,
            tail,
            methods,
        }
    })
}

fn compile(rules: &[GenRule]) -> Option<Policy> {
    let routes: Vec<RouteSpec> = rules
        .iter()
        .map(|r| RouteSpec {
            path: r.pattern(),
            methods: r.methods.iter().map(|m| m.to_string()).collect(),
            auth: None,
            roles: vec![],
            permissions: vec![],
            owner: None,
            bypass_roles: None,
            limits: vec![],
            tier_limit: true,
        })
        .collect();
    // Rule sets with a shadowed rule are refused by validation; those are skipped.
    Policy::compile(&PolicySpec {
        routes,
        ..PolicySpec::default()
    })
    .ok()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1500))]

    #[test]
    fn evaluate_picks_the_most_specific_matching_rule(
        rules in proptest::collection::vec(gen_rule(), 1..8),
        path in proptest::collection::vec(prop_oneof![Just("a"), Just("b"), Just("ab"), Just("abc"), Just("c")], 0..5),
        method in prop_oneof![Just("GET"), Just("HEAD"), Just("POST"), Just("DELETE"), Just("PUT")],
    ) {
        let Some(policy) = compile(&rules) else { return Ok(()); };
        let raw = format!("/{}", path.join("/"));
        let normalised = normalize_path(raw.as_bytes()).unwrap();
        let got = policy.evaluate(method, &normalised);

        // Oracle: among matching rules, the largest (oracle key, has methods), then the first.
        let mut best: Option<(usize, OracleKey, bool)> = None;
        for (i, r) in rules.iter().enumerate() {
            if !r.method_matches(method) {
                continue;
            }
            let Some(key) = r.oracle_key(&path) else { continue };
            let specific = !r.methods.is_empty();
            let better = match &best {
                None => true,
                Some((_, bk, bs)) => (&key, specific) > (bk, *bs),
            };
            if better {
                best = Some((i, key, specific));
            }
        }
        match best {
            None => prop_assert!(got.is_fallback()),
            Some((i, _, _)) => {
                prop_assert!(!got.is_fallback());
                prop_assert_eq!(got.rule.index, i, "path {} method {} rules {:?}", raw, method,
                    rules.iter().map(|r| (r.pattern(), r.methods.clone())).collect::<Vec<_>>());
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Key templates

fn template() -> impl Strategy<Value = String> {
    let part = prop_oneof![
        Just("ip".to_string()),
        Just("user".to_string()),
        Just("route".to_string()),
        Just("method".to_string()),
        Just("tier".to_string()),
        "header=x-[a-z]{1,3}",
    ];
    proptest::collection::vec(part, 1..9).prop_map(|v| v.join(":"))
}

fn header_value() -> impl Strategy<Value = Vec<u8>> {
    // Visible ASCII, space, tab and obs-text: what HeaderValue accepts.
    proptest::collection::vec(
        prop_oneof![0x20u8..0x7f, Just(b'\t'), 0x80u8..=0xff],
        0..120,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn rendered_keys_are_bounded(
        t in template(),
        user in proptest::option::of("\\PC{0,300}"),
        route in "\\PC{0,300}",
        method in "[ -~]{0,100}",
        tier in "[ -~]{0,100}",
        ip in proptest::option::of(any::<IpAddr>()),
        values in proptest::collection::vec(header_value(), 4),
    ) {
        let Ok(template) = KeyTemplate::parse(&t) else { return Ok(()); };
        let mut headers = HeaderMap::new();
        for (name, v) in ["x-a", "x-b", "x-ab", "x-abc"].iter().zip(&values) {
            headers.insert(HeaderName::from_static(name), HeaderValue::from_bytes(v).unwrap());
        }
        let facts = RequestFacts {
            client_ip: ip,
            user: user.as_deref(),
            route: &route,
            method: &method,
            tier: &tier,
            headers: Some(&headers),
        };
        let key = template.render(&facts);
        prop_assert!(key.len() <= MAX_RENDERED_KEY_BYTES, "{} bytes", key.len());
        prop_assert!(key.bytes().all(|b| (0x21..=0x7e).contains(&b)), "{key:?}");
        // Every key reads back into one (name, value) per part, in the template's order:
        // the rendering is injective. An anonymous `user` reads back as its `ip` part.
        let parts = split_key(&key);
        prop_assert!(parts.is_some(), "{key:?} does not read back");
        let names: Vec<String> = parts.unwrap().iter().map(|p| p.0.to_owned()).collect();
        let expected: Vec<String> = template
            .to_string()
            .split(':')
            .map(|p| if p == "user" && user.is_none() { "ip".to_owned() } else { p.to_owned() })
            .collect();
        prop_assert_eq!(names, expected, "{:?}", key);
    }

    #[test]
    fn distinct_users_get_distinct_keys(
        a in proptest::option::of("\\PC{0,80}"),
        b in proptest::option::of("\\PC{0,80}"),
        ip in any::<std::net::Ipv4Addr>(),
        h1 in header_value(),
        h2 in header_value(),
    ) {
        let t = KeyTemplate::parse("user:header=x-device").unwrap();
        let render = |user: Option<&str>, h: &[u8]| {
            let mut headers = HeaderMap::new();
            headers.insert("x-device", HeaderValue::from_bytes(h).unwrap());
            t.render(&RequestFacts {
                client_ip: Some(IpAddr::V4(ip)),
                user,
                route: "/r",
                method: "GET",
                tier: "basic",
                headers: Some(&headers),
            })
        };
        let ka = render(a.as_deref(), &h1);
        let kb = render(b.as_deref(), &h2);
        prop_assert_eq!(ka == kb, a == b && h1 == h2, "{:?} {:?}", ka, kb);
    }
}

// ---------------------------------------------------------------------------------------
// Client IP

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn client_ip_is_the_peer_or_an_address_from_the_header(
        xff in proptest::collection::vec(
            prop_oneof![
                any::<IpAddr>().prop_map(|ip| ip.to_string()),
                Just("127.0.0.1".to_string()),
                Just("10.1.1.1".to_string()),
                "[ -~]{0,12}",
            ],
            0..6),
        real in proptest::option::of(header_value()),
        peer_trusted in any::<bool>(),
    ) {
        let r = ClientIpResolver::new(&["127.0.0.0/8", "10.0.0.0/8"], true, &["x-forwarded-for", "x-real-ip"]).unwrap();
        let mut headers = HeaderMap::new();
        let joined = xff.join(",");
        if !xff.is_empty() {
            headers.insert("x-forwarded-for", HeaderValue::from_str(&joined).unwrap());
        }
        if let Some(v) = &real {
            headers.insert("x-real-ip", HeaderValue::from_bytes(v).unwrap());
        }
        let peer: IpAddr = if peer_trusted { "127.0.0.1" } else { "198.51.100.1" }.parse().unwrap();
        let got = r.resolve(Peer::Ip(peer), &headers);
        let got = got.expect("an IP peer always yields an address");
        if !peer_trusted {
            prop_assert_eq!(got, peer);
        } else if got != peer {
            let real_text = real.as_deref().map(String::from_utf8_lossy).unwrap_or_default();
            let mentioned = joined.contains(&got.to_string()) || real_text.contains(&got.to_string())
                || joined.contains(&format!("::ffff:{got}"));
            prop_assert!(mentioned, "{got} not in {joined:?} / {real_text:?}");
        }
    }
}
