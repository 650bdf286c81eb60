//! Recording a revocation, and listing them: the admin operations every door offers
//! (`POST /admin/revoke` and `GET /admin/revocations` over HTTP, `REVOKE` over RESP).
//!
//! A door parses its own syntax into a [`RevokeRequest`], has the caller admitted by
//! [`super::AdminAccess`], and calls [`Gate::revoke`]; the gate applies it to the durable
//! store (on the blocking pool, since the store fsyncs its log) and answers a [`Revoked`] or
//! a [`RevokeError`] whose message is the same on every door.

use serde::Deserialize;

use super::Gate;
use crate::auth::{Revocation, RevocationError, RevocationStore, MAX_REVOCATION_ID_BYTES};

/// One revocation to record: a token by `jti` (kept until `exp`), or every token of a subject
/// issued before `before` (times in seconds since the epoch).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum RevokeRequest {
    Jti { jti: String, exp: i64 },
    Subject { sub: String, before: i64 },
}

impl RevokeRequest {
    /// Parses the JSON body of `POST /admin/revoke`, refusing unknown fields and mixed forms.
    pub fn from_json(body: &[u8]) -> Result<Self, String> {
        const FORMS: &str =
            r#"expected {"jti": string, "exp": seconds} or {"sub": string, "before": seconds}"#;
        let v: serde_json::Value =
            serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))?;
        let obj = v.as_object().ok_or("expected a JSON object")?;
        // A JSON object with a key given twice means whatever the parser keeps (serde_json
        // keeps the last, others the first): refused rather than guessed.
        serde::Deserializer::deserialize_map(
            &mut serde_json::Deserializer::from_slice(body),
            UniqueKeys,
        )
        .map_err(|e| e.to_string())?;
        let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
        keys.sort_unstable();
        if keys != ["exp", "jti"] && keys != ["before", "sub"] {
            return Err(FORMS.into());
        }
        serde_json::from_value(v).map_err(|_| FORMS.to_string())
    }

    /// The request as the JSON an answer echoes.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            RevokeRequest::Jti { jti, exp } => serde_json::json!({ "jti": jti, "exp": exp }),
            RevokeRequest::Subject { sub, before } => {
                serde_json::json!({ "sub": sub, "before": before })
            }
        }
    }

    /// Records it in `store` (durably, when the store keeps a log); `Ok(false)` when an equal
    /// or stronger revocation was already held. Blocks on an fsync: [`Gate::revoke`] runs it
    /// on the blocking pool.
    pub fn apply(&self, store: &RevocationStore) -> Result<bool, RevocationError> {
        match self {
            RevokeRequest::Jti { jti, exp } => store.revoke_jti(jti, *exp),
            RevokeRequest::Subject { sub, before } => store.revoke_subject(sub, *before),
        }
    }

    /// `jti` or `subject`, for logs and messages.
    pub fn kind(&self) -> &'static str {
        match self {
            RevokeRequest::Jti { .. } => "jti",
            RevokeRequest::Subject { .. } => "subject",
        }
    }

    /// The name of the request's time field.
    fn time_field(&self) -> &'static str {
        match self {
            RevokeRequest::Jti { .. } => "exp",
            RevokeRequest::Subject { .. } => "before",
        }
    }
}

/// A revocation in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Revoked {
    /// False when an equal or stronger revocation was already held.
    pub recorded: bool,
    /// Whether the store keeps a log, so the revocation survives a restart.
    pub durable: bool,
}

/// Why a revocation was not (fully) recorded. The message is the answer on every door.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RevokeError {
    /// The id is empty or too long: the caller's mistake.
    #[error("the {kind} must be 1 to {max} bytes", max = MAX_REVOCATION_ID_BYTES)]
    BadId { kind: &'static str },
    /// The time is not representable: the caller's mistake.
    #[error("{field} is out of range: a time in seconds since the epoch")]
    BadTime { field: &'static str },
    /// The store holds its maximum of entries.
    #[error("the revocation store is full ({0} entries)")]
    Full(usize),
    /// In force in this process, but the log write failed: it may not survive a restart.
    #[error(
        "the revocation is in force in this process, but writing it to the revocation log \
         failed, so it may not survive a restart; retry"
    )]
    NotSaved,
    /// Nothing was recorded (the log is unreadable, or the task failed).
    #[error("the revocation could not be recorded; retry")]
    Failed,
}

impl RevokeError {
    /// Whether the caller's request is at fault (HTTP 400) rather than the store.
    pub fn is_bad_request(&self) -> bool {
        matches!(
            self,
            RevokeError::BadId { .. } | RevokeError::BadTime { .. }
        )
    }

    fn from_store(e: RevocationError, req: &RevokeRequest) -> Self {
        match e {
            RevocationError::BadId => RevokeError::BadId { kind: req.kind() },
            RevocationError::BadTime => RevokeError::BadTime {
                field: req.time_field(),
            },
            RevocationError::Full(n) => RevokeError::Full(n),
            RevocationError::Io(e) => {
                tracing::error!(error = %e, "writing a revocation to the log failed");
                RevokeError::NotSaved
            }
        }
    }
}

impl Gate {
    /// Records `req` in the revocation store (durably when it keeps a log); from then on the
    /// tokens it names are refused, from the token cache or not. The caller must have been
    /// admitted ([`super::AdminAccess::admit`]).
    pub async fn revoke(&self, req: &RevokeRequest) -> Result<Revoked, RevokeError> {
        let store = self.authenticator().revocations().clone();
        let durable = store.is_durable();
        let job = req.clone();
        let applied = tokio::task::spawn_blocking(move || job.apply(&store)).await;
        let recorded = match applied {
            Ok(Ok(recorded)) => recorded,
            Ok(Err(e)) => return Err(RevokeError::from_store(e, req)),
            Err(e) => {
                tracing::error!(error = %e, "the revocation task failed");
                return Err(RevokeError::Failed);
            }
        };
        tracing::info!(kind = req.kind(), recorded, "admin: revocation");
        Ok(Revoked { recorded, durable })
    }

    /// Every live revocation, and whether the store is durable (read on the blocking pool:
    /// the list can be long).
    pub async fn revocations(&self) -> Result<(Vec<Revocation>, bool), RevokeError> {
        let store = self.authenticator().revocations().clone();
        tokio::task::spawn_blocking(move || (store.list(), store.is_durable()))
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "listing revocations failed");
                RevokeError::Failed
            })
    }
}

/// Reads an object's keys (and skips their values), failing on a key given twice.
struct UniqueKeys;

impl<'de> serde::de::Visitor<'de> for UniqueKeys {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen: Vec<String> = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            if seen.contains(&key) {
                return Err(serde::de::Error::custom(format!(
                    "the key {key:?} is given twice"
                )));
            }
            map.next_value::<serde::de::IgnoredAny>()?;
            seen.push(key);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_given_twice_is_refused() {
        for body in [
            &br#"{"jti":"a","exp":5,"jti":"b"}"#[..],
            br#"{"sub":"u","before":1,"before":2}"#,
        ] {
            let e = RevokeRequest::from_json(body).unwrap_err();
            assert!(e.contains("is given twice"), "{e}");
        }
        assert!(RevokeRequest::from_json(br#"{"jti":"a","exp":5}"#).is_ok());
    }

    #[test]
    fn request_forms() {
        assert_eq!(
            RevokeRequest::from_json(br#"{"jti":"a","exp":5}"#).unwrap(),
            RevokeRequest::Jti {
                jti: "a".into(),
                exp: 5
            }
        );
        assert_eq!(
            RevokeRequest::from_json(br#"{"sub":"u","before":7}"#).unwrap(),
            RevokeRequest::Subject {
                sub: "u".into(),
                before: 7
            }
        );
        for bad in [
            &br#"{"jti":"a"}"#[..],
            br#"{"jti":"a","exp":"5"}"#,
            br#"{"jti":"a","exp":5,"sub":"u"}"#,
            br#"{"sub":"u","before":1,"x":1}"#,
            br#"[1]"#,
            b"nope",
        ] {
            assert!(
                RevokeRequest::from_json(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[tokio::test]
    async fn store_errors_read_the_same_on_every_door() {
        let g = Gate::new(
            &crate::config::Config::default(),
            std::sync::Arc::new(crate::clock::ManualClock::new(1_000_000)),
        )
        .unwrap();
        let bad_id = RevokeRequest::Subject {
            sub: String::new(),
            before: 1,
        };
        let e = g.revoke(&bad_id).await.unwrap_err();
        assert_eq!(e.to_string(), "the subject must be 1 to 256 bytes");
        assert!(e.is_bad_request());
        let bad_time = RevokeRequest::Jti {
            jti: "a".into(),
            exp: i64::MAX,
        };
        let e = g.revoke(&bad_time).await.unwrap_err();
        assert_eq!(
            e.to_string(),
            "exp is out of range: a time in seconds since the epoch"
        );
        let ok = RevokeRequest::Jti {
            jti: "a".into(),
            exp: 4_102_444_800,
        };
        assert_eq!(
            g.revoke(&ok).await.unwrap(),
            Revoked {
                recorded: true,
                durable: false
            }
        );
        assert!(!g.revoke(&ok).await.unwrap().recorded, "already held");
        let (list, durable) = g.revocations().await.unwrap();
        assert_eq!((list.len(), durable), (1, false));
    }
}
