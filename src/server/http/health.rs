//! `/healthz` (the process answers), `/readyz` (every readiness condition holds: listeners
//! up, not draining, each issuer's key set fetched) and `/metrics` (Prometheus text).

use http::StatusCode;

use super::render::{json_reply, Reply, CONTENT_TYPE};
use super::HttpShared;

impl HttpShared {
    /// `GET /healthz`.
    pub(super) fn healthz(&self) -> Reply {
        json_reply(StatusCode::OK, r#"{"status":"ok"}"#.into())
    }

    /// `GET /readyz`: 200 when every condition holds, else 503; the body lists them.
    pub(super) fn readyz(&self) -> Reply {
        let report = self.readiness.report();
        let ready = report.iter().all(|(_, ok)| *ok);
        let checks: serde_json::Map<String, serde_json::Value> = report
            .into_iter()
            .map(|(name, ok)| (name, serde_json::Value::Bool(ok)))
            .collect();
        let body = serde_json::json!({ "ready": ready, "checks": checks }).to_string();
        let status = if ready {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        };
        json_reply(status, body)
    }

    /// `GET /metrics`.
    pub(super) fn metrics(&self) -> Reply {
        Reply::with_body(
            StatusCode::OK,
            |f| f.put_bytes(&CONTENT_TYPE, crate::metrics::CONTENT_TYPE.as_bytes()),
            self.gate.render_metrics().into(),
        )
    }
}
