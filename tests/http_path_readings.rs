//! `/auth` judges the path the backend will route (`[policy] path_reading`), over real
//! sockets, on both the fast path and hyper: the request targets that reached protected
//! routes through nginx (`\`, `..\`, a leading `//`, upper case, `;` parameters) are refused
//! with `bad_path` by default, and judged by the rule the backend applies under each
//! backend's reading. The forms in every reading are tabulated in docs/policy.md and unit
//! tested in src/policy/path.rs.

mod auth_support;
#[path = "http_support/auth.rs"]
mod http_auth_support;
mod http_support;

use auth_support::token;
use http_auth_support::*;
use http_support::tcp_client;

/// `(X-Original-URI, as user_1?, expected status and reason per reading)`; for a 200, the
/// `X-User-Id` answered (`-` for none).
/// The test config (tests/http_support/auth.rs): `/api/**` required, `/api/users/{user_id}/**`
/// owner, `/api/admin/**` role admin, anything else optional.
type Row = (
    &'static str,
    bool,
    &'static [(&'static str, u16, &'static str)],
);

const ROWS: &[Row] = &[
    // Node and Next.js read `/api/admin/x`.
    (
        r"/api\admin\x",
        false,
        &[
            ("strict", 403, "bad_path"),
            ("node", 401, "missing_token"),
            ("starlette", 200, "-"),
            ("servlet", 403, "bad_path"),
        ],
    ),
    (
        "/api%5Cadmin%5Cx",
        false,
        &[
            ("strict", 403, "bad_path"),
            ("node", 200, "-"),
            ("go", 200, "-"),
        ],
    ),
    // The application reads bob's path.
    (
        r"/api/users/user_1/..\bob/tasks",
        true,
        &[
            ("strict", 403, "bad_path"),
            ("node", 403, "not_owner"),
            ("starlette", 200, "user_1"),
            ("express", 200, "user_1"),
        ],
    ),
    // A URL parser reads `//app.example` as the host.
    (
        "//app.example/api/users/bob/tasks",
        true,
        &[
            ("strict", 403, "bad_path"),
            ("node", 403, "not_owner"),
            ("go", 200, "user_1"),
            ("servlet", 200, "user_1"),
        ],
    ),
    // Express routes it to the admin route, ignoring case.
    (
        "/API/admin/x",
        false,
        &[
            ("strict", 403, "bad_path"),
            ("express", 401, "missing_token"),
            ("starlette", 200, "-"),
        ],
    ),
    (
        "/api/ADMIN/x",
        true,
        &[
            ("strict", 403, "bad_path"),
            ("express", 403, "forbidden"),
            ("go", 200, "user_1"),
        ],
    ),
    // Mixed case that decides no rule passes by default: ids are case-sensitive.
    (
        "/api/users/user_1/Tasks",
        true,
        &[("strict", 200, "user_1"), ("express", 200, "user_1")],
    ),
    // Servlet containers strip `;…` from every segment.
    (
        "/api;/admin/x",
        false,
        &[
            ("strict", 403, "bad_path"),
            ("servlet", 401, "missing_token"),
            ("node", 200, "-"),
        ],
    ),
    (
        "/api/users;x=1/bob/tasks",
        true,
        &[("strict", 403, "bad_path"), ("servlet", 403, "not_owner")],
    ),
    (
        "/api/users/user_1/..;/bob/tasks",
        true,
        &[
            ("strict", 403, "bad_path"),
            ("servlet", 403, "not_owner"),
            ("node", 403, "bad_path"),
        ],
    ),
    // Dot segments: resolved where the backend resolves them, refused where it keeps them
    // literal, and by default (the families disagree).
    (
        "/api/users/user_1/%2e%2e/bob/tasks",
        true,
        &[
            ("strict", 403, "bad_path"),
            ("starlette", 403, "bad_path"),
            ("express", 403, "bad_path"),
            ("go", 403, "not_owner"),
        ],
    ),
    // Look-alikes of `/`, control characters, overlong UTF-8.
    (
        "/api%EF%BC%8Fadmin",
        false,
        &[("strict", 403, "bad_path"), ("starlette", 200, "-")],
    ),
    (
        "/api/ad%09min/x",
        false,
        &[("strict", 403, "bad_path"), ("node", 403, "bad_path")],
    ),
    (
        "/api/admin%00",
        false,
        &[("strict", 403, "bad_path"), ("go", 403, "bad_path")],
    ),
    (
        "/%C0%AE%C0%AE/api",
        false,
        &[("strict", 403, "bad_path"), ("servlet", 403, "bad_path")],
    ),
    (
        "http://app.example/api/admin/x",
        false,
        &[("strict", 403, "bad_path"), ("node", 403, "bad_path")],
    ),
];

#[tokio::test]
async fn each_form_is_judged_as_the_backend_reads_it() {
    let user_1 = token("eddsa_better_auth");
    let readings = ["strict", "starlette", "node", "express", "go", "servlet"];
    for fast in [true, false] {
        for reading in readings {
            let mut c = config(100, 100, "");
            c.policy.path_reading = reading.into();
            let (s, _) = start(c, fast).await;
            let mut client = tcp_client(&s).await;
            for (uri, as_user, wants) in ROWS {
                let Some(&(_, status, reason)) = wants.iter().find(|(r, ..)| *r == reading) else {
                    continue;
                };
                let tok = as_user.then_some(user_1.as_str());
                client.send(&auth_request(uri, tok, &[])).await;
                let r = client.read_response().await.expect("an answer");
                assert_auth_contract(&r, tok);
                let what = format!("{uri:?} read as {reading} (fast path: {fast})");
                assert_eq!(r.status, status, "{what}: {:?}", r.headers);
                if status == 200 {
                    assert_eq!(r.header("x-user-id").unwrap_or("-"), reason, "{what}");
                } else {
                    assert_eq!(r.header("x-tollgate-reason"), Some(reason), "{what}");
                }
            }
            s.stop().await.unwrap();
        }
    }
}

#[test]
fn an_unknown_reading_is_a_configuration_error_at_its_line() {
    let text =
        "[tiers.basic]\nlimit = 1\nwindow = \"1m\"\n\n[policy]\npath_reading = \"fastapi\"\n";
    let e = tollgate::gate::compile::from_toml_str(text, "t.toml")
        .map(|_| ())
        .unwrap_err()
        .to_string();
    assert!(e.contains("t.toml:6"), "{e}");
    assert!(e.contains("path_reading"), "{e}");
    assert!(e.contains("\"starlette\""), "{e}");
}
