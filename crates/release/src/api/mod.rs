//! The balena API client: pine/OData v7 plus the user and registry-token endpoints.
//!
//! `transport` is how a call goes (timeouts, retries, errors), `odata` the shapes of its
//! queries; the resources each have a file: `fleet` (whoami, fleets), `release`, `image`,
//! `current` (a fleet's current release) and `tokens` (registry tokens).

use std::fmt;
use std::time::Duration;

use crate::error::ApiError;
use crate::retry::RetryPolicy;
use crate::secret::Secret;

mod current;
mod fleet;
mod image;
mod odata;
mod release;
mod tokens;
mod transport;

/// How many services (and, per service, labels or variables) are created at a time, as the
/// reference's `p-map` concurrency.
const CONCURRENCY: usize = 5;

/// The default timeout of one request.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// A balena API client. Cheap to clone; the key is sent as a bearer token and never shown.
#[derive(Clone)]
pub struct Api {
    client: reqwest::Client,
    base: String,
    key: Secret,
    timeout: Duration,
    retry: RetryPolicy,
    on_retry: Option<RetryNotice>,
}

/// Told about every retry of a request, with a line for people (the balena CLI's wording).
pub type RetryNotice = std::sync::Arc<dyn Fn(&str) + Send + Sync>;

impl fmt::Debug for Api {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Api")
            .field("base", &self.base)
            .field("key", &self.key)
            .field("timeout", &self.timeout)
            .field("retry", &self.retry)
            .finish()
    }
}

impl Api {
    /// A client for the API at `base_url` (e.g. `https://api.balena-cloud.com`), to which
    /// `/v7/…`, `/user/v1/whoami` and `/auth/v1/token` are added.
    ///
    /// # Errors
    /// [`ApiError::MissingApiKey`] for a blank key, [`ApiError::InvalidUrl`] for a URL that is
    /// not `http(s)://host[/prefix]`.
    pub fn new(base_url: &str, api_key: impl Into<Secret>) -> Result<Api, ApiError> {
        let key = api_key.into();
        if key.is_blank() {
            return Err(ApiError::MissingApiKey);
        }
        let invalid = |reason: &str| ApiError::InvalidUrl {
            url: base_url.to_owned(),
            reason: reason.to_owned(),
        };
        let url = reqwest::Url::parse(base_url).map_err(|e| invalid(&e.to_string()))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(invalid("the scheme must be http or https"));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(invalid("a base URL has no query or fragment"));
        }
        let client = reqwest::Client::builder()
            .user_agent(concat!("balena-compose/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| invalid(&e.to_string()))?;
        Ok(Api {
            client,
            base: url.as_str().trim_end_matches('/').to_owned(),
            key,
            timeout: DEFAULT_TIMEOUT,
            retry: RetryPolicy::API,
            on_retry: None,
        })
    }

    /// Sets the timeout of each request (each attempt of it).
    pub fn with_timeout(mut self, timeout: Duration) -> Api {
        self.timeout = timeout;
        self
    }

    /// Sets how transient failures are retried.
    pub fn with_retry(mut self, retry: RetryPolicy) -> Api {
        self.retry = retry;
        self
    }

    /// Calls `notice` before every retry (the library itself prints nothing; the CLI shows
    /// it, as the balena CLI does).
    pub fn with_retry_notice(mut self, notice: RetryNotice) -> Api {
        self.on_retry = Some(notice);
        self
    }

    /// The base URL, without a trailing slash.
    pub fn base_url(&self) -> &str {
        &self.base
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn new_rejects_blank_keys_and_bad_urls() {
        assert!(matches!(
            Api::new("http://x", " "),
            Err(ApiError::MissingApiKey)
        ));
        assert!(matches!(
            Api::new("ftp://x", "k"),
            Err(ApiError::InvalidUrl { .. })
        ));
        assert!(matches!(
            Api::new("not a url", "k"),
            Err(ApiError::InvalidUrl { .. })
        ));
        let api = Api::new("https://api.example.com/", "sekrit").unwrap();
        assert_eq!(api.base_url(), "https://api.example.com");
        assert!(!format!("{api:?}").contains("sekrit"));
    }
}
