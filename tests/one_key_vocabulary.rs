//! One key vocabulary: a user's key is `user:<id>` and an address's `ip:<address>` through
//! every door, so the hits a caller spends through `/auth` (nginx) or `VERIFY` show on the
//! same bucket a `/check` or `CHECK` caller (the application) names by that key, and the
//! other way round. One server, both doors, one manual clock.

mod auth_support;
mod http_support;

use std::net::IpAddr;

use tokio::net::TcpStream;

use tollgate::client::{Client, ClientOptions, Target};
use tollgate::config::Config;
use tollgate::server::{ServerBuilder, ServerHandle};

use auth_support::{token, HS256_ENV};
use http_support::{RawClient, RawResponse};

fn config() -> Config {
    let text = format!(
        r#"
[server]
http = "127.0.0.1:0"

[resp]
enabled = true
tcp = "127.0.0.1:0"

# An anonymous caller under a `user` template counts under its address's key.
[tiers.anonymous]
limit = 50
window = "1h"
key = "user"

[tiers.basic]
limit = 100
window = "1h"
key = "user"

[auth]
anonymous_tier = "anonymous"
default_tier = "basic"

[[auth.issuers]]
name = "fastapi"
hs256_secret_env = "{HS256_ENV}"
"#
    );
    Config::from_toml_str(&text, "one-key").unwrap_or_else(|e| panic!("config: {e}"))
}

struct Doors {
    server: ServerHandle,
    resp: Client,
}

impl Doors {
    async fn start() -> Self {
        let server = ServerBuilder::new(config())
            .clock(auth_support::clock())
            .env(auth_support::env)
            .start()
            .await
            .expect("server starts");
        let resp = Client::connect(
            Target::tcp(server.resp_addr().expect("RESP door")),
            ClientOptions {
                pool_size: 1,
                ..ClientOptions::default()
            },
        )
        .await
        .expect("RESP connects");
        Doors { server, resp }
    }

    async fn http(&self) -> RawClient<TcpStream> {
        RawClient::new(TcpStream::connect(self.server.http_addr()).await.unwrap())
    }

    /// `/auth` for `GET /api/x` from `client_ip`, with the token when given.
    async fn auth(&self, token: Option<&str>, client_ip: &str) -> RawResponse {
        let bearer = token
            .map(|t| format!("Authorization: Bearer {t}\r\n"))
            .unwrap_or_default();
        let mut c = self.http().await;
        c.send(&format!(
            "GET /auth HTTP/1.1\r\nHost: t\r\nX-Original-URI: /api/x\r\n\
             X-Original-Method: GET\r\nX-Forwarded-For: {client_ip}\r\n{bearer}\r\n"
        ))
        .await;
        c.read_response().await.expect("an /auth answer")
    }

    /// `/check`'s remaining after spending `hits` (0 peeks) on `key` in `tier`.
    async fn check(&self, key: &str, tier: &str, hits: u64) -> u64 {
        let key = key.replace(':', "%3A").replace('/', "%2F");
        let r = self
            .http()
            .await
            .get(&format!("/check?key={key}&tier={tier}&hits={hits}"))
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()["remaining"].as_u64().expect("remaining")
    }
}

fn remaining(r: &RawResponse) -> u64 {
    assert_eq!(r.status, 200, "{:?}", r.headers);
    let v = r
        .header("x-ratelimit-remaining")
        .expect("X-RateLimit-Remaining");
    v.parse().unwrap()
}

#[tokio::test]
async fn a_user_is_one_bucket_through_check_check_auth_and_verify() {
    let doors = Doors::start().await;
    let jwt = token("hs256");
    let user = "user:user_hs";
    assert_eq!(doors.check(user, "basic", 0).await, 100);

    // nginx spends 3 through /auth: the application's /check sees them.
    for _ in 0..3 {
        doors.auth(Some(&jwt), "203.0.113.7").await;
    }
    assert_eq!(doors.check(user, "basic", 0).await, 97);

    // One through VERIFY: CHECK on the same key sees all four.
    let v = doors
        .resp
        .verify(Some(&jwt), "GET", "/api/x", "203.0.113.7".parse().unwrap())
        .await
        .unwrap();
    assert_eq!(v.remaining, Some(96));
    assert_eq!(
        doors.resp.check(user, "basic", 0).await.unwrap().remaining,
        96
    );

    // The application spends 5 through CHECK and 10 through /check: /auth sees them.
    assert_eq!(
        doors.resp.check(user, "basic", 5).await.unwrap().remaining,
        91
    );
    assert_eq!(doors.check(user, "basic", 10).await, 81);
    assert_eq!(remaining(&doors.auth(Some(&jwt), "198.51.100.1").await), 80);

    // The user's bucket is not the address's.
    assert_eq!(doors.check("ip:203.0.113.7", "anonymous", 0).await, 50);
}

#[tokio::test]
async fn an_address_is_one_bucket_through_check_check_auth_and_verify() {
    let doors = Doors::start().await;
    // Anonymous callers: the `user` template counts them under their address's key.
    for _ in 0..3 {
        assert_eq!(doors.auth(None, "203.0.113.7").await.status, 200);
    }
    assert_eq!(doors.check("ip:203.0.113.7", "anonymous", 0).await, 47);
    let v = doors
        .resp
        .verify(None, "GET", "/api/x", "203.0.113.7".parse().unwrap())
        .await
        .unwrap();
    assert_eq!(v.remaining, Some(46));
    let c = doors.resp.check("ip:203.0.113.7", "anonymous", 6).await;
    assert_eq!(c.unwrap().remaining, 40);
    assert_eq!(remaining(&doors.auth(None, "203.0.113.7").await), 39);

    // IPv6: every address of a /64 is the network's key, `ip:<network>/64`.
    let v6: IpAddr = "2001:db8:1:2::7".parse().unwrap();
    doors.resp.verify(None, "GET", "/api/x", v6).await.unwrap();
    doors.auth(None, "2001:db8:1:2:ffff::1").await;
    assert_eq!(
        doors.check("ip:2001:db8:1:2::/64", "anonymous", 0).await,
        48
    );
    let c = doors
        .resp
        .check("ip:2001:db8:1:2::/64", "anonymous", 0)
        .await;
    assert_eq!(c.unwrap().remaining, 48);
}
