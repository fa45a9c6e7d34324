//! How a call reaches the API: one request with its timeout, the retry loop (and the POST
//! that a retry never doubles), and the mapping of failures to [`ApiError`]s.

use reqwest::{Method, header};
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::Api;
use super::odata::{Lookup, odata_filter};
use crate::error::ApiError;

impl Api {
    pub(super) async fn send_once(
        &self,
        method: &Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<Option<Value>, ApiError> {
        let request = format!("{method} {path}");
        let mut builder = self
            .client
            .request(method.clone(), format!("{}{path}", self.base))
            .bearer_auth(self.key.expose())
            .header(header::ACCEPT, "application/json")
            .timeout(self.timeout);
        if !query.is_empty() {
            builder = builder.query(query);
        }
        if let Some(body) = body {
            builder = builder.json(body);
        }
        let broken = |e: reqwest::Error| self.transport_error(&request, &e);
        let response = builder.send().await.map_err(broken)?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(broken)?;
        if !status.is_success() {
            let message = self.key.redact(&server_message(&bytes));
            return Err(ApiError::from_status(request, status.as_u16(), message));
        }
        // PATCH answers a plain `OK`: a body that is not JSON means "no value".
        Ok(serde_json::from_slice(&bytes).ok())
    }

    fn transport_error(&self, request: &str, error: &reqwest::Error) -> ApiError {
        if error.is_timeout() {
            return ApiError::Timeout {
                request: request.to_owned(),
                timeout: self.timeout,
            };
        }
        let mut message = error.to_string();
        let mut source = std::error::Error::source(error);
        while let Some(cause) = source {
            message.push_str(": ");
            message.push_str(&cause.to_string());
            source = cause.source();
        }
        ApiError::Transport {
            request: request.to_owned(),
            message: self.key.redact(&message),
        }
    }

    async fn pause(&self, error: &ApiError, attempt: u32) {
        let delay = self.retry.delay(attempt);
        let line = format!(
            "API call failed ({error}). Attempting retry {} of {} in {:.1} seconds",
            attempt,
            self.retry.max_attempts.saturating_sub(1),
            delay.as_secs_f64()
        );
        tracing::debug!("{line}");
        if let Some(notice) = &self.on_retry {
            notice(&line);
        }
        tokio::time::sleep(delay).await;
    }

    /// A call that is safe to repeat (GET, PATCH), retried on transient failures.
    pub(super) async fn send(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<Option<Value>, ApiError> {
        let mut attempt = 1;
        loop {
            match self.send_once(&method, path, query, body).await {
                Err(e) if e.is_transient() && self.retry.allows_retry_after(attempt) => {
                    self.pause(&e, attempt).await;
                    attempt += 1;
                }
                result => return result,
            }
        }
    }

    /// The rows (`d`) of a GET.
    pub(super) async fn get_rows(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<Vec<Value>, ApiError> {
        let value = self.send(Method::GET, path, query, None).await?;
        match value {
            Some(Value::Object(mut map)) => match map.remove("d") {
                Some(Value::Array(rows)) => Ok(rows),
                _ => Err(invalid(&format!("GET {path}"), "no `d` array")),
            },
            _ => Err(invalid(&format!("GET {path}"), "not a JSON object")),
        }
    }

    pub(super) async fn find(
        &self,
        resource: &str,
        lookup: &Lookup<'_>,
    ) -> Result<Option<Value>, ApiError> {
        let query = [
            ("$filter", odata_filter(&lookup.filter)),
            ("$orderby", "id desc".to_owned()),
        ];
        let rows = self.get_rows(&format!("/v7/{resource}"), &query).await?;
        Ok(rows
            .into_iter()
            .find(|row| lookup.accept.is_none_or(|accept| accept(row))))
    }

    /// POSTs a record so that a retry never makes a second one: after a failure that may have
    /// been applied (a 5xx, a timeout, a broken connection), the record is looked up and
    /// reused before the POST is tried again.
    pub(super) async fn post_idempotent(
        &self,
        resource: &str,
        body: &Value,
        lookup: &Lookup<'_>,
    ) -> Result<Value, ApiError> {
        let path = format!("/v7/{resource}");
        let mut attempt = 1;
        loop {
            let error = match self.send_once(&Method::POST, &path, &[], Some(body)).await {
                Ok(Some(record)) if record.get("id").is_some_and(Value::is_u64) => {
                    return Ok(record);
                }
                Ok(_) => return Err(invalid(&format!("POST {path}"), "no record id")),
                Err(e) => e,
            };
            // A unique-key clash after an earlier attempt means that attempt did create it.
            let clash_after_retry =
                attempt > 1 && matches!(error, ApiError::UniqueConstraint { .. });
            if !error.is_transient() && !clash_after_retry {
                return Err(error);
            }
            if let Some(existing) = self.find(resource, lookup).await? {
                tracing::debug!("POST {path} failed ({error}) but the record exists: reusing it");
                return Ok(existing);
            }
            if clash_after_retry || !self.retry.allows_retry_after(attempt) {
                return Err(error);
            }
            self.pause(&error, attempt).await;
            attempt += 1;
        }
    }

    pub(super) async fn patch(&self, path: &str, body: &Value) -> Result<(), ApiError> {
        self.send(Method::PATCH, path, &[], Some(body))
            .await
            .map(drop)
    }
}

pub(super) fn invalid(request: &str, message: &str) -> ApiError {
    ApiError::InvalidResponse {
        request: request.to_owned(),
        message: message.to_owned(),
    }
}

pub(super) fn decode<T: DeserializeOwned>(
    request: &str,
    value: Option<Value>,
) -> Result<T, ApiError> {
    let value = value.ok_or_else(|| invalid(request, "not JSON"))?;
    serde_json::from_value(value).map_err(|e| invalid(request, &e.to_string()))
}

pub(super) fn to_value(update: &impl serde::Serialize) -> Result<Value, ApiError> {
    serde_json::to_value(update).map_err(|e| invalid("encoding an update", &e.to_string()))
}

/// The text of an error body: a JSON `error`/`message` string, or the body itself, capped.
fn server_message(body: &[u8]) -> String {
    let json = serde_json::from_slice::<Value>(body).ok();
    let field = json.as_ref().and_then(|v| {
        ["error", "message"]
            .iter()
            .find_map(|k| v.get(*k).and_then(Value::as_str))
    });
    let text = match field {
        Some(f) => f.to_owned(),
        None => String::from_utf8_lossy(body).trim().to_owned(),
    };
    text.chars().take(2000).collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn server_messages_prefer_json_error_fields() {
        assert_eq!(
            server_message(br#"{"error":"Patch Image Error"}"#),
            "Patch Image Error"
        );
        assert_eq!(server_message(b" Unauthorized \n"), "Unauthorized");
    }
}
