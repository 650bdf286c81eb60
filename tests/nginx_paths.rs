//! Request targets that application stacks read otherwise than tollgate, through a real nginx
//! with `examples/nginx.conf` and `examples/tollgate.toml` as shipped (the default
//! `[policy] path_reading = "strict"`): none of them reaches the application. nginx stops a
//! few itself (400 before asking tollgate); tollgate refuses the rest with `bad_path`, which
//! the shipped config turns into a 400.
//!
//! nginx must be installed (`tests/run.sh` installs it); without it these tests fail.

mod auth_support;
mod nginx_support;

use nginx_support::stack::Stack;

#[tokio::test]
async fn targets_a_backend_reads_otherwise_never_reach_the_application() {
    let s = Stack::start().await;
    let user_1 = auth_support::token("eddsa_better_auth");
    // What Node / Next.js, Express and servlet containers would have routed to a protected
    // route: refused by tollgate (`bad_path`, a 400 from the shipped config).
    for (target, token) in [
        (r"/api\admin\x", None),
        ("/api%5Cadmin%5Cx", None),
        (r"/api/users/user_1/..\bob/tasks", Some(&user_1)),
        ("//app.example/api/users/bob/tasks", Some(&user_1)),
        ("/API/admin/x", None),
        ("/api;/admin/x", None),
        ("/api/users;x=1/bob/tasks", Some(&user_1)),
        // Fullwidth solidi: a stack that folds Unicode would read bob's path.
        (
            "/api/users/user_1%EF%BC%8F..%EF%BC%8Fbob/tasks",
            Some(&user_1),
        ),
    ] {
        let r = s.get(target, token.map(|t| t.as_str())).await;
        assert_eq!(r.status, 400, "{target}: {:?} {}", r.headers, r.text());
        assert_eq!(r.json()["error"], "bad_path", "{target}: {}", r.text());
    }
    // Forms nginx answers 400 itself, before any auth subrequest.
    for target in ["/api/admin%00", "/api/../../x", "/api/%2e%2e/%2e%2e/x"] {
        let r = s.get(target, None).await;
        assert_eq!(r.status, 400, "{target}: {:?} {}", r.headers, r.text());
    }
    assert_eq!(s.reached(), 0, "{:?} {:?}", s.app.seen(), s.api.seen());
    // Mixed case that changes no rule passes, and the application gets the target as sent.
    let r = s.get("/api/users/user_1/Tasks", Some(&user_1)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(s.api.last().target, "/api/users/user_1/Tasks");
    s.stop().await;
}
