//! Registry tokens to push a release's images.

use reqwest::Method;
use serde_json::Value;

use super::Api;
use super::transport::invalid;
use crate::error::ApiError;
use crate::models::CreatedRelease;
use crate::secret::Secret;

impl Api {
    /// A registry token (`GET /auth/v1/token`) that may pull and push each repository of
    /// `registry`, e.g. `registry2.balena-cloud.com` and `v2/c089c4…`.
    ///
    /// # Errors
    /// Any API error (never swallowed, unlike the reference), or a response without `token`.
    pub async fn registry_token<'a>(
        &self,
        registry: &str,
        repositories: impl IntoIterator<Item = &'a str>,
    ) -> Result<Secret, ApiError> {
        let path = "/auth/v1/token";
        let mut query = vec![("service", registry.to_owned())];
        query.extend(
            repositories
                .into_iter()
                .map(|repo| ("scope", format!("repository:{repo}:pull,push"))),
        );
        let value = self.send(Method::GET, path, &query, None).await?;
        value
            .as_ref()
            .and_then(|v| v.get("token"))
            .and_then(Value::as_str)
            .map(Secret::new)
            .ok_or_else(|| invalid(&format!("GET {path}"), "no token"))
    }

    /// The registry and token to push a release's images: the registry of the first image,
    /// a token for every image's repository plus those of the fleet's previous successful
    /// release (failing to list those only loses blob mounting, so it is logged, not fatal).
    /// `None` when there is no image.
    ///
    /// # Errors
    /// An image location that cannot be parsed, or the token request failing.
    pub async fn push_token(
        &self,
        created: &CreatedRelease,
    ) -> Result<Option<(String, Secret)>, crate::Error> {
        let mut targets = Vec::new();
        for image in created.images.values() {
            targets.push(crate::push::ImageLocation::parse(&image.location)?);
        }
        let Some(first) = targets.first() else {
            return Ok(None);
        };
        let registry = first.registry.clone();
        let mut repos: Vec<String> = targets
            .iter()
            .filter(|t| t.registry == registry)
            .map(|t| t.repository.clone())
            .collect();
        {
            match self.previous_image_locations(created.fleet).await {
                Ok(previous) => {
                    for location in previous {
                        if let Ok(t) = crate::push::ImageLocation::parse(&location)
                            && t.registry == registry
                            && !repos.contains(&t.repository)
                        {
                            tracing::debug!(
                                "Requesting access to previously pushed image repo ({})",
                                t.repository
                            );
                            repos.push(t.repository);
                        }
                    }
                }
                Err(e) => tracing::debug!("could not list the previous release's images: {e}"),
            }
        }
        let token = self
            .registry_token(&registry, repos.iter().map(String::as_str))
            .await?;
        Ok(Some((registry, token)))
    }
}
