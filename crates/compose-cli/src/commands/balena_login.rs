//! The balena CLI's login, for `deploy` without `--api-key`/`BALENA_API_KEY` and
//! `--api-url`/`BALENA_API_URL`: the token it stores in its data directory and the
//! `BALENARC_BALENA_URL` setting.

use std::path::PathBuf;

use anyhow::Context as _;

/// The API when nothing names one (the balena CLI's default `balenaUrl`).
pub const DEFAULT_API_URL: &str = "https://api.balena-cloud.com";

/// The balena CLI's data directory: `BALENARC_DATA_DIRECTORY`, else `~/.balena`.
fn data_directory() -> Option<PathBuf> {
    std::env::var_os("BALENARC_DATA_DIRECTORY")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".balena")))
}

/// The token `balena login` stored (`<data directory>/token`), if there is one. Its content is
/// never put in an error.
pub fn stored_token() -> anyhow::Result<Option<String>> {
    let Some(path) = data_directory().map(|dir| dir.join("token")) else {
        return Ok(None);
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(Some(text.trim().to_owned()).filter(|t| !t.is_empty())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => {
            Err(e).with_context(|| format!("reading the balena CLI's login {}", path.display()))
        }
    }
}

/// The API URL the balena CLI uses: `https://api.<BALENARC_BALENA_URL>` (balena-settings-
/// client's `apiUrl`), else [`DEFAULT_API_URL`].
pub fn api_url() -> String {
    std::env::var("BALENARC_BALENA_URL")
        .ok()
        .map(|url| url.trim().trim_end_matches('/').to_owned())
        .filter(|url| !url.is_empty())
        .map_or_else(
            || DEFAULT_API_URL.to_owned(),
            |url| format!("https://api.{url}"),
        )
}
