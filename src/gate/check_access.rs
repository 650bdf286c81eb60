//! Who may ask the rate-limit question (`GET /check`, RESP `CHECK`), on every door.
//!
//! `/check` spends and reads any key's quota — the same counters `/auth` spends for nginx —
//! so whoever can call it can drain a user's quota (`/check?key=<user>&hits=400`) or watch
//! it. It is therefore served only to callers the operator named in `[check]`:
//!
//! - callers on a Unix socket (`unix_socket = true`, the default): a local process that
//!   passed the socket file's permissions;
//! - callers whose address is inside `networks` (default: loopback, `127.0.0.0/8` and
//!   `::1/128` — the sidecar's own pod, where the application that calls `/check` runs);
//! - from anywhere, a named caller (`[[check.callers]]`) presenting its secret: over HTTP as
//!   `Authorization: Bearer <secret>` on each request, over RESP by `AUTH <name> <secret>`
//!   once per connection (the connection then holds a [`CheckProof`]) — the admin secret's
//!   shape ([`super::AdminAccess`]), and checked the same way, in constant time.
//!
//! What the peer is does not change during a connection, so a door asks
//! [`CheckAccess::standing`] once, when the connection opens, and keeps the
//! [`CheckStanding`]; each request then costs one comparison on the hot path. A door only
//! supplies the facts ([`CheckCaller`]) and renders the [`CheckRefusal`] (HTTP 403 with a
//! problem, RESP `NOPERM`/`NOAUTH`); [`super::Gate::check`] decides and counts refusals in
//! `tollgate_check_refusals_total{reason}`.
//!
//! `[check]` is read once at start, like `[auth.admin]`: a change needs a restart.

use ipnet::IpNet;

use crate::auth::{bearer_token, AdminSecret};
use crate::config::check::MIN_CHECK_SECRET_BYTES;
use crate::config::secret::SecretEnv;
use crate::config::Config;
use crate::policy::Peer;

/// Who may call `/check` and `CHECK`, built once from `[check]`.
#[derive(Debug)]
pub struct CheckAccess {
    networks: Box<[IpNet]>,
    unix_socket: bool,
    callers: Box<[NamedCaller]>,
}

#[derive(Debug)]
struct NamedCaller {
    name: Box<str>,
    secret: AdminSecret,
}

/// What a connection's peer is worth to [`CheckAccess`]: computed once per connection by
/// [`CheckAccess::standing`]. Only the gate makes one, so a door cannot admit its own peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckStanding(Standing);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Standing {
    /// On the Unix socket or inside `networks`: admitted without a secret.
    Trusted,
    /// Admitted only with a named caller's secret.
    NeedsSecret,
}

impl CheckStanding {
    /// Whether the peer is admitted without a secret (a door need not look for one).
    pub fn is_trusted(self) -> bool {
        self.0 == Standing::Trusted
    }
}

/// That a connection presented a named caller's secret (RESP `AUTH <name> <secret>`). Only
/// [`CheckAccess::prove`] makes one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckProof(());

/// What a caller presents besides its peer.
#[derive(Debug, Clone, Copy)]
pub enum CheckCredential<'a> {
    /// Nothing.
    None,
    /// An `Authorization` header value (`Bearer <secret>`), as received.
    Authorization(&'a [u8]),
    /// A proof obtained earlier on the same connection.
    Proven(CheckProof),
}

/// The facts about a `/check` or `CHECK` caller a door knows.
#[derive(Debug, Clone, Copy)]
pub struct CheckCaller<'a> {
    /// The connection's standing, from [`CheckAccess::standing`].
    pub standing: CheckStanding,
    pub credential: CheckCredential<'a>,
}

/// Why a caller may not ask the rate-limit question. Each door renders it in its own words;
/// [`CheckRefusal::reason`] is the metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CheckRefusal {
    /// Not on the Unix socket, not inside `[check] networks`, and no caller is named that
    /// could present a secret.
    #[error(
        "this caller may not spend or read quotas: /check and CHECK are served on the Unix \
         socket and to the addresses in [check] networks; add the caller's network there, or \
         name it in [[check.callers]] with a secret"
    )]
    UntrustedPeer,
    /// Outside the trusted networks, and no secret presented.
    #[error(
        "this caller is outside [check] networks and must present a caller's secret \
         (HTTP: Authorization: Bearer <secret>; RESP: AUTH <caller> <secret>)"
    )]
    SecretRequired,
    /// A secret was presented that is no named caller's.
    #[error("the secret presented is not that of any caller in [[check.callers]]")]
    SecretInvalid,
}

impl CheckRefusal {
    /// Every refusal, for metrics that exist from the start.
    pub const ALL: [CheckRefusal; 3] = [
        CheckRefusal::UntrustedPeer,
        CheckRefusal::SecretRequired,
        CheckRefusal::SecretInvalid,
    ];

    /// The `reason` label of `tollgate_check_refusals_total`.
    pub fn reason(self) -> &'static str {
        match self {
            CheckRefusal::UntrustedPeer => "untrusted_peer",
            CheckRefusal::SecretRequired => "secret_required",
            CheckRefusal::SecretInvalid => "secret_invalid",
        }
    }
}

impl CheckAccess {
    /// Reads `[check]`, taking each caller's secret from the environment through `env`.
    pub fn from_config(
        config: &Config,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, String> {
        let c = &config.check;
        let mut callers = Vec::with_capacity(c.callers.len());
        for (i, caller) in c.callers.iter().enumerate() {
            let var = &caller.secret_env;
            let value = SecretEnv {
                key: &format!("check.callers[{i}].secret_env"),
                var,
                what: &format!("the secret of caller {:?}", caller.name),
                when_unset: "export it, or remove the caller",
                min_bytes: MIN_CHECK_SECRET_BYTES,
            }
            .read(env)?;
            let secret = AdminSecret::new(value.as_bytes()).map_err(|e| format!("{var}: {e}"))?;
            callers.push(NamedCaller {
                name: caller.name.as_str().into(),
                secret,
            });
        }
        Ok(Self {
            networks: c.parsed_networks().into(),
            unix_socket: c.unix_socket,
            callers: callers.into(),
        })
    }

    /// What `peer` is worth, once per connection. `None` (a peer whose address the kernel no
    /// longer knows) is trusted by nothing.
    pub fn standing(&self, peer: Option<Peer>) -> CheckStanding {
        let trusted = match peer {
            Some(Peer::Unix) => self.unix_socket,
            Some(Peer::Ip(ip)) => {
                let ip = ip.to_canonical();
                self.networks.iter().any(|n| n.contains(&ip))
            }
            None => false,
        };
        CheckStanding(if trusted {
            Standing::Trusted
        } else {
            Standing::NeedsSecret
        })
    }

    /// Whether `caller` may ask the rate-limit question.
    #[inline]
    pub fn admit(&self, caller: &CheckCaller<'_>) -> Result<(), CheckRefusal> {
        if caller.standing.is_trusted() {
            return Ok(());
        }
        self.admit_untrusted(caller.credential)
    }

    #[cold]
    fn admit_untrusted(&self, credential: CheckCredential<'_>) -> Result<(), CheckRefusal> {
        if self.callers.is_empty() {
            return Err(CheckRefusal::UntrustedPeer);
        }
        match credential {
            CheckCredential::Proven(CheckProof(())) => Ok(()),
            CheckCredential::None => Err(CheckRefusal::SecretRequired),
            CheckCredential::Authorization(h) => match bearer_token(h) {
                // Every caller's secret is compared, so timing does not tell which matched.
                Some(t) => {
                    let matched = self
                        .callers
                        .iter()
                        .fold(false, |any, c| c.secret.verify(t) | any);
                    if matched {
                        Ok(())
                    } else {
                        Err(CheckRefusal::SecretInvalid)
                    }
                }
                None => Err(CheckRefusal::SecretInvalid),
            },
        }
    }

    /// Checks a named caller's secret presented on its own (RESP `AUTH <name> <secret>`), in
    /// constant time; the proof admits the connection's later checks. `None` when no caller
    /// has that name (the name is configuration, not a secret).
    pub fn prove(&self, name: &[u8], secret: &[u8]) -> Option<Result<CheckProof, CheckRefusal>> {
        let caller = self.callers.iter().find(|c| c.name.as_bytes() == name)?;
        Some(if caller.secret.verify(secret) {
            Ok(CheckProof(()))
        } else {
            Err(CheckRefusal::SecretInvalid)
        })
    }

    /// Whether any caller is named (so a secret could admit an untrusted peer).
    pub fn has_callers(&self) -> bool {
        !self.callers.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::IpAddr;

    const SECRET: &str = "check-caller-secret-0123456789abcdef-01";
    const OTHER: &str = "other-caller-secret-0123456789abcdef-01";

    fn config(text: &str) -> Config {
        let base = "[tiers.anonymous]\nlimit = 5\nwindow = \"1h\"\n[tiers.basic]\nlimit = 5\nwindow = \"1h\"\n";
        Config::from_toml_str(&format!("{base}{text}"), "test").unwrap()
    }

    fn env(v: &str) -> Option<String> {
        match v {
            "API" => Some(SECRET.into()),
            "JOBS" => Some(OTHER.into()),
            "SHORT" => Some("short".into()),
            _ => None,
        }
    }

    fn ip(s: &str) -> Option<Peer> {
        Some(Peer::Ip(s.parse::<IpAddr>().unwrap()))
    }

    fn caller(standing: CheckStanding, credential: CheckCredential<'_>) -> CheckCaller<'_> {
        CheckCaller {
            standing,
            credential,
        }
    }

    #[test]
    fn by_default_loopback_and_the_socket_only() {
        let a = CheckAccess::from_config(&config(""), &env).unwrap();
        for peer in [
            ip("127.0.0.1"),
            ip("127.9.9.9"),
            ip("::1"),
            ip("::ffff:127.0.0.1"),
            Some(Peer::Unix),
        ] {
            let s = a.standing(peer);
            assert!(s.is_trusted(), "{peer:?}");
            assert_eq!(a.admit(&caller(s, CheckCredential::None)), Ok(()));
        }
        for peer in [ip("10.0.0.5"), ip("203.0.113.7"), ip("::2"), None] {
            let s = a.standing(peer);
            assert_eq!(
                a.admit(&caller(s, CheckCredential::None)),
                Err(CheckRefusal::UntrustedPeer),
                "{peer:?}"
            );
        }
        // Without named callers there is nothing a secret could prove.
        let h = format!("Bearer {SECRET}");
        let s = a.standing(ip("10.0.0.5"));
        assert_eq!(
            a.admit(&caller(s, CheckCredential::Authorization(h.as_bytes()))),
            Err(CheckRefusal::UntrustedPeer)
        );
        assert!(a.prove(b"api", SECRET.as_bytes()).is_none());
    }

    #[test]
    fn networks_and_the_socket_are_configurable() {
        let a = CheckAccess::from_config(
            &config("[check]\nnetworks = [\"10.0.0.0/8\"]\nunix_socket = false\n"),
            &env,
        )
        .unwrap();
        assert!(a.standing(ip("10.1.2.3")).is_trusted());
        assert!(!a.standing(ip("127.0.0.1")).is_trusted());
        assert!(!a.standing(Some(Peer::Unix)).is_trusted());
    }

    #[test]
    fn a_named_caller_is_admitted_by_its_secret_from_anywhere() {
        let a = CheckAccess::from_config(
            &config(
                "[check]\nnetworks = []\n[[check.callers]]\nname = \"api\"\nsecret_env = \"API\"\n\
                 [[check.callers]]\nname = \"jobs\"\nsecret_env = \"JOBS\"\n",
            ),
            &env,
        )
        .unwrap();
        let s = a.standing(ip("127.0.0.1"));
        assert!(!s.is_trusted(), "networks = [] trusts no address");
        assert_eq!(
            a.admit(&caller(s, CheckCredential::None)),
            Err(CheckRefusal::SecretRequired)
        );
        for secret in [SECRET, OTHER] {
            let h = format!("Bearer {secret}");
            assert_eq!(
                a.admit(&caller(s, CheckCredential::Authorization(h.as_bytes()))),
                Ok(())
            );
        }
        for bad in [
            "Bearer nope".to_string(),
            format!("Basic {SECRET}"),
            SECRET.to_string(),
        ] {
            assert_eq!(
                a.admit(&caller(s, CheckCredential::Authorization(bad.as_bytes()))),
                Err(CheckRefusal::SecretInvalid),
                "{bad}"
            );
        }
        // RESP: the name picks the caller, and only its own secret proves it.
        let proof = a.prove(b"api", SECRET.as_bytes()).unwrap().unwrap();
        assert_eq!(a.admit(&caller(s, CheckCredential::Proven(proof))), Ok(()));
        assert_eq!(
            a.prove(b"api", OTHER.as_bytes()),
            Some(Err(CheckRefusal::SecretInvalid))
        );
        assert!(a.prove(b"nobody", SECRET.as_bytes()).is_none());
    }

    #[test]
    fn every_reason_has_its_series_from_the_start() {
        let reasons: Vec<_> = CheckRefusal::ALL.iter().map(|r| r.reason()).collect();
        assert_eq!(reasons, crate::metrics::CHECK_REFUSALS);
    }

    #[test]
    fn secrets_come_from_the_environment_and_are_never_shown() {
        let unset = config("[[check.callers]]\nname = \"api\"\nsecret_env = \"UNSET\"\n");
        let e = CheckAccess::from_config(&unset, &env).unwrap_err();
        assert!(e.contains("UNSET") && e.contains("check.callers[0]"), "{e}");
        let short = config("[[check.callers]]\nname = \"api\"\nsecret_env = \"SHORT\"\n");
        let e = CheckAccess::from_config(&short, &env).unwrap_err();
        assert!(e.contains("at least 32") && !e.contains("short\""), "{e}");
        let ok = config("[[check.callers]]\nname = \"api\"\nsecret_env = \"API\"\n");
        let a = CheckAccess::from_config(&ok, &env).unwrap();
        assert!(!format!("{a:?}").contains(SECRET));
    }
}
