//! Route policy costs per request: path normalisation, rule matching on a 48-rule policy,
//! authorisation, key rendering, client-IP resolution, and the whole sequence `/auth` runs.
//!
//! `cargo bench --bench policy`. The figures go in docs/benchmarks.md; the budget they are
//! compared with is the CPU an `auth_request` round trip costs nginx itself (≈ 21–23 µs per
//! request on these machines, measured by `benches/nginx.sh`).

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use http::{HeaderMap, HeaderValue};
use tollgate::policy::{
    normalize_path, normalize_path_as, IdentityRef, KeySpec, KeyTemplate, PathReading, Peer,
    Policy, PolicySpec, RequestFacts, RouteSpec,
};

const RESOURCES: [&str; 8] = [
    "tasks", "projects", "files", "comments", "teams", "invoices", "orders", "reports",
];

/// 48 rules shaped like an application's: per resource a collection prefix, an item, a
/// method-specific item rule with a limit, and a per-user owner subtree; plus fixed routes.
fn policy() -> Policy {
    let route = |path: String, methods: &[&str], owner: Option<&str>, limits: &[&str]| RouteSpec {
        path,
        methods: methods.iter().map(|s| s.to_string()).collect(),
        auth: None,
        roles: vec![],
        permissions: vec![],
        owner: owner.map(Into::into),
        bypass_roles: owner.map(|_| vec!["admin".to_string()]),
        limits: limits.iter().map(|s| s.to_string()).collect(),
        tier_limit: true,
    };
    let mut routes = Vec::new();
    for r in RESOURCES {
        routes.push(route(format!("/api/{r}/**"), &[], None, &[]));
        routes.push(route(format!("/api/{r}/{{id}}"), &["GET"], None, &[]));
        routes.push(route(
            format!("/api/{r}/{{id}}"),
            &["PUT", "DELETE"],
            None,
            &["writes"],
        ));
        routes.push(route(
            format!("/api/users/{{user_id}}/{r}/**"),
            &[],
            Some("user_id"),
            &[],
        ));
        routes.push(route(format!("/api/{r}/export**"), &[], None, &["writes"]));
    }
    for p in [
        "/api/me",
        "/api/auth/**",
        "/api/upload**",
        "/healthz",
        "/api/admin/**",
    ] {
        routes.push(route(p.into(), &[], None, &[]));
    }
    routes.push(route(
        "/api/users/{user_id}/**".into(),
        &[],
        Some("user_id"),
        &[],
    ));
    routes.push(route("/static/*/**".into(), &["GET"], None, &[]));
    routes.push(route("/api/search".into(), &["GET", "POST"], None, &[]));
    assert_eq!(routes.len(), 48);
    let key = |name: &str, template: &str| KeySpec {
        name: name.into(),
        template: Some(template.into()),
    };
    Policy::compile(&PolicySpec {
        routes,
        keys: vec![key("basic", "user"), key("writes", "user:method")],
        ..PolicySpec::default()
    })
    .unwrap()
}

fn bench(c: &mut Criterion) {
    let policy = policy();
    // `..` is resolved only under the readings of backends that resolve it (the default
    // refuses it): measured under `go`.
    let targets: [(&str, &[u8], PathReading); 4] = [
        (
            "plain",
            b"/api/users/alice/tasks/42?page=2",
            PathReading::Strict,
        ),
        (
            "dotdot",
            b"/api/users/alice/../bob/tasks/42",
            PathReading::Go,
        ),
        (
            "encoded",
            b"/api/users/%61lice/caf%C3%A9/%E2%9C%93",
            PathReading::Strict,
        ),
        (
            "long",
            b"/static/v1/assets/js/vendor/lib/module/chunk/part/a/b/c/d/e/f/g.js",
            PathReading::Strict,
        ),
    ];

    let mut g = c.benchmark_group("normalize");
    for (name, t, reading) in targets {
        g.bench_function(name, |b| {
            b.iter(|| normalize_path_as(black_box(t), reading).unwrap())
        });
    }
    g.finish();

    let mut g = c.benchmark_group("evaluate_48_rules");
    let cases = [
        ("owner_subtree", "GET", "/api/users/alice/tasks/42"),
        ("item_method", "DELETE", "/api/invoices/7"),
        ("prefix", "POST", "/api/reports/export-2024"),
        ("exact", "GET", "/api/me"),
        ("fallback", "GET", "/nothing/matches/here"),
    ];
    for (name, method, path) in cases {
        let p = normalize_path(path.as_bytes()).unwrap();
        g.bench_function(name, |b| {
            b.iter(|| {
                black_box(policy.evaluate(black_box(method), black_box(&p)))
                    .rule
                    .index
            })
        });
    }
    g.finish();

    // What the gate calls: the default (strict) reading, which also compares case-insensitively
    // where a literal differs, so that a path whose rule depends on case is refused.
    let mut g = c.benchmark_group("evaluate_read_strict_48_rules");
    let mixed_case = [(
        "owner_subtree_mixed_case",
        "GET",
        "/api/users/AlIcE/tasks/42",
    )];
    for (name, method, path) in cases.into_iter().chain(mixed_case) {
        let p = normalize_path(path.as_bytes()).unwrap();
        g.bench_function(name, |b| {
            b.iter(|| {
                black_box(policy.evaluate_read(black_box(method), black_box(&p)))
                    .unwrap()
                    .rule
                    .index
            })
        });
    }
    g.finish();

    let path = normalize_path(b"/api/users/alice/tasks/42").unwrap();
    let m = policy.evaluate("GET", &path);
    let roles = ["user".to_string()];
    let alice = IdentityRef {
        user_id: "alice",
        roles: &roles[..],
        permissions: &[],
    };
    c.bench_function("authorize_owner", |b| {
        b.iter(|| black_box(&m).authorize(Some(black_box(&alice))))
    });

    let mut headers = HeaderMap::new();
    headers.insert(
        "x-forwarded-for",
        HeaderValue::from_static("6.6.6.6, 203.0.113.7"),
    );
    headers.insert("x-device", HeaderValue::from_static("ios-17.4"));
    let peer = Peer::Ip("127.0.0.1".parse().unwrap());
    c.bench_function("client_ip_xff", |b| {
        b.iter(|| policy.client_ip(black_box(peer), black_box(&headers)))
    });

    let facts = RequestFacts {
        client_ip: Some("203.0.113.7".parse().unwrap()),
        user: Some("8f14e45fceea167a5a36dedd4bea2543"),
        route: "/api/users/{user_id}/tasks/**",
        method: "GET",
        tier: "basic",
        headers: Some(&headers),
    };
    let mut g = c.benchmark_group("render_key");
    for t in ["ip", "user", "ip:user:method", "user:header=x-device"] {
        let template = KeyTemplate::parse(t).unwrap();
        let mut buf = String::new();
        g.bench_function(t, |b| {
            b.iter(|| {
                template.render_into(black_box(&facts), &mut buf);
                buf.len()
            })
        });
    }
    g.finish();

    // Everything `/auth` asks of the policy for one request.
    c.bench_function("auth_request_policy_total", |b| {
        let mut key = String::new();
        b.iter(|| {
            let path = normalize_path(black_box(b"/api/users/alice/tasks/42?page=2")).unwrap();
            let m = policy.evaluate("PUT", &path);
            m.authorize(Some(&alice)).unwrap();
            let ip = policy.client_ip(peer, &headers);
            let facts = RequestFacts {
                client_ip: ip,
                user: Some("alice"),
                route: m.rule.route(),
                method: "PUT",
                tier: "basic",
                headers: Some(&headers),
            };
            let mut n = 0;
            if let Some(t) = policy.key_template("basic") {
                t.render_into(&facts, &mut key);
                n += key.len();
            }
            for l in m.rule.limits.iter() {
                l.key.render_into(&facts, &mut key);
                n += key.len();
            }
            n
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
