//! Key templates: how tollgate builds a limit's key when it builds the key itself (`/auth`,
//! `VERIFY`), written in the configuration as parts joined by `:`, e.g. `key = "ip:user"`.
//!
//! | part            | the key takes                                                        |
//! |-----------------|----------------------------------------------------------------------|
//! | `ip`            | the client IP (from `X-Forwarded-For`/`X-Real-IP` only behind a trusted proxy) |
//! | `user`          | the identity's user id (token subject or API-key owner); for a request without identity, the client IP, so anonymous callers are still counted one by one |
//! | `route`         | the path pattern of the matched route rule (every path under `/api/upload**` shares one count) |
//! | `method`        | the request method                                                   |
//! | `tier`          | the request's tier                                                   |
//! | `header=<name>` | the value of that request header (empty when absent)                 |
//!
//! The template is parsed here, once, when the configuration is loaded; the decision core
//! walks [`KeyTemplate::parts`] per request. Headers that carry credentials are refused as
//! key parts: a key ends up in memory, in the cluster's datagrams and in abuse logs, and a
//! token must never get there.

use std::fmt;
use std::str::FromStr;

/// Parts per template. More would only make longer keys, not better ones.
pub const MAX_KEY_PARTS: usize = 8;

/// Request headers that carry credentials and so can never be key parts.
const SECRET_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "cookie",
    "x-api-key",
];

/// One part of a key template.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum KeyPart {
    /// The client IP.
    Ip,
    /// The identity's user id; the client IP when there is no identity.
    User,
    /// The matched route rule's path pattern.
    Route,
    /// The request method.
    Method,
    /// The request's tier.
    Tier,
    /// A request header's value. The name is lower-case.
    Header(String),
}

impl fmt::Display for KeyPart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyPart::Ip => f.write_str("ip"),
            KeyPart::User => f.write_str("user"),
            KeyPart::Route => f.write_str("route"),
            KeyPart::Method => f.write_str("method"),
            KeyPart::Tier => f.write_str("tier"),
            KeyPart::Header(name) => write!(f, "header={name}"),
        }
    }
}

/// A parsed key template: one or more distinct parts.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KeyTemplate {
    parts: Vec<KeyPart>,
}

impl KeyTemplate {
    /// The template used when a limit sets no `key`: `user` (which is the client IP for a
    /// request without identity).
    pub fn default_for_limit() -> Self {
        Self {
            parts: vec![KeyPart::User],
        }
    }

    /// The parts, in the order written.
    pub fn parts(&self) -> &[KeyPart] {
        &self.parts
    }
}

impl fmt::Display for KeyTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, part) in self.parts.iter().enumerate() {
            if i > 0 {
                f.write_str(":")?;
            }
            write!(f, "{part}")?;
        }
        Ok(())
    }
}

/// Why a key template was refused. The message names the offending part.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct KeyTemplateError(String);

impl FromStr for KeyTemplate {
    type Err = KeyTemplateError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        const HELP: &str = "parts joined by ':' from ip, user, route, method, tier, header=<name>";
        if text.trim().is_empty() {
            return Err(KeyTemplateError(format!(
                "the key template is empty ({HELP})"
            )));
        }
        let mut parts = Vec::new();
        for raw in text.split(':') {
            let word = raw.trim();
            let part = match word {
                "ip" => KeyPart::Ip,
                "user" => KeyPart::User,
                "route" => KeyPart::Route,
                "method" => KeyPart::Method,
                "tier" => KeyPart::Tier,
                "" => {
                    return Err(KeyTemplateError(format!(
                        "{text:?} has an empty part ({HELP})"
                    )))
                }
                _ => match word.strip_prefix("header=") {
                    Some(name) => KeyPart::Header(header_part(text, name)?),
                    None => {
                        return Err(KeyTemplateError(format!(
                            "{text:?}: unknown key part {word:?} ({HELP})"
                        )))
                    }
                },
            };
            if parts.contains(&part) {
                return Err(KeyTemplateError(format!("{text:?} names {part} twice")));
            }
            parts.push(part);
        }
        if parts.len() > MAX_KEY_PARTS {
            return Err(KeyTemplateError(format!(
                "{text:?} has {} parts; at most {MAX_KEY_PARTS}",
                parts.len()
            )));
        }
        Ok(Self { parts })
    }
}

fn header_part(template: &str, name: &str) -> Result<String, KeyTemplateError> {
    if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
        return Err(KeyTemplateError(format!(
            "{template:?}: {name:?} is not a header name"
        )));
    }
    let lower = name.to_ascii_lowercase();
    if SECRET_HEADERS.contains(&lower.as_str()) {
        return Err(KeyTemplateError(format!(
            "{template:?}: the {lower} header carries credentials and cannot be part of a key \
             (keys are kept in memory, sent to peers and logged)"
        )));
    }
    Ok(lower)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<KeyTemplate, String> {
        s.parse::<KeyTemplate>().map_err(|e| e.to_string())
    }

    #[test]
    fn parses_every_part_and_round_trips() {
        let t = parse("ip:user:route:method:tier:header=X-Tenant").unwrap();
        assert_eq!(
            t.parts(),
            [
                KeyPart::Ip,
                KeyPart::User,
                KeyPart::Route,
                KeyPart::Method,
                KeyPart::Tier,
                KeyPart::Header("x-tenant".into())
            ]
        );
        assert_eq!(t.to_string(), "ip:user:route:method:tier:header=x-tenant");
        assert_eq!(parse(&t.to_string()).unwrap(), t);
        assert_eq!(
            parse(" ip : user ").unwrap().parts(),
            [KeyPart::Ip, KeyPart::User]
        );
    }

    #[test]
    fn refuses_bad_templates_with_a_reason() {
        assert!(parse("").unwrap_err().contains("empty"));
        assert!(parse("ip::user").unwrap_err().contains("empty part"));
        assert!(parse("ip:usr")
            .unwrap_err()
            .contains("unknown key part \"usr\""));
        assert!(parse("ip:ip").unwrap_err().contains("twice"));
        assert!(parse("header=bad name")
            .unwrap_err()
            .contains("not a header name"));
        assert!(parse("header=").unwrap_err().contains("not a header name"));
    }

    #[test]
    fn credential_headers_never_become_keys() {
        for h in [
            "Authorization",
            "cookie",
            "X-Api-Key",
            "proxy-authorization",
        ] {
            let e = parse(&format!("ip:header={h}")).unwrap_err();
            assert!(e.contains("carries credentials"), "{h}: {e}");
        }
    }
}
