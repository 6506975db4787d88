//! Keeping a Response for `GET /v1/responses/{id}` and `previous_response_id`: what is
//! stored, in which log mode, in the background ([`Saver`]).

use super::responses::{Db, on_db};
use crate::api::responses::{InputItem, ResponseObject, ResponsesRequest};
use crate::config::LogMode;
use crate::gateway::Gateway;
use crate::store::responses::StoredResponse;
use crate::store::state_db::STATE_WRITE_WAIT;
use serde_json::Value;

/// Keeps the final response of a request that asked for it (`store`, the default) when the
/// log mode allows: built only then.
pub(super) struct Saver {
    pub(super) db: Db,
    pub(super) mode: LogMode,
    pub(super) gw: Gateway,
    pub(super) owner: String,
    pub(super) request_id: String,
    pub(super) req: ResponsesRequest,
    pub(super) hist: Vec<InputItem>,
}

impl Saver {
    /// This saver under a policy's log mode `policy` (the row's mode when a policy sets one):
    /// `metadata` and `off` keep nothing, `redacted` stores redacted.
    pub(super) fn under(self, policy: Option<LogMode>) -> Option<Saver> {
        match policy {
            None => Some(self),
            Some(mode @ (LogMode::Full | LogMode::Redacted)) => Some(Saver { mode, ..self }),
            Some(LogMode::Metadata | LogMode::Off) => None,
        }
    }

    /// Stores `resp` in the background (never holds the reply).
    pub(super) fn save(self, resp: &ResponseObject) {
        self.save_value(serde_json::to_value(resp).unwrap_or(Value::Null));
    }

    /// Stores a Response object given as JSON (a native route's, under its own `id`).
    pub(super) fn save_value(self, response: Value) {
        let (db, mode) = (self.db, self.mode);
        let Some(id) = response
            .get("id")
            .and_then(Value::as_str)
            .map(str::to_string)
        else {
            return;
        };
        let created_at = response
            .get("created_at")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        let to_values = |items: &[InputItem]| -> Vec<Value> {
            items
                .iter()
                .filter_map(|i| serde_json::to_value(i).ok())
                .collect()
        };
        let mut stored = StoredResponse {
            id,
            owner: self.owner,
            created_ms: created_at * 1000,
            request_id: self.request_id,
            model: self.req.model.clone(),
            history: to_values(&self.hist),
            input: to_values(&self.req.input_items()),
            response,
        };
        if mode == LogMode::Redacted {
            let d = self.gw.policy().detector();
            let red = |v: &Vec<Value>| -> Vec<Value> {
                v.iter()
                    .map(|x| crate::store::redact::redact_json(d, x))
                    .collect()
            };
            stored.history = red(&stored.history);
            stored.input = red(&stored.input);
            stored.response = crate::store::redact::redact_json(d, &stored.response);
        }
        let (response_id, request_id) = (stored.id.clone(), stored.request_id.clone());
        tokio::spawn(async move {
            match on_db(db, STATE_WRITE_WAIT, true, move |c| c.put_response(&stored)).await {
                Ok(true) => {}
                Ok(false) => tracing::warn!(
                    %request_id,
                    response_id = %crate::telemetry::log_safe(&response_id),
                    "not stored: another key's response has this id (the backend repeated an id); the first is kept"
                ),
                Err(e) => {
                    tracing::warn!(%request_id, %response_id, error = %e.body.message, "could not store a response");
                }
            }
        });
    }
}
