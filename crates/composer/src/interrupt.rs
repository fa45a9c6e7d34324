//! What an interrupted update did and left: the report behind [`crate::Error::Interrupted`].
//! It is built from the steps the executor completed and the app's state read back from the
//! engine after the step in flight finished, so it never guesses.

use std::collections::BTreeMap;

use crate::model::{AppState, ServiceStatus};

/// An interrupted update or removal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interruption {
    /// The app, by name (or id when it has none).
    pub app: String,
    /// The steps that changed the engine before the interrupt, as `action subject`.
    pub changes: Vec<String>,
    /// What each service is now, e.g. `running old release c0ffee` or `no container`.
    pub services: BTreeMap<String, String>,
    /// Why the services could not be read back, when they could not.
    pub unknown: Option<String>,
}

impl Interruption {
    /// The report of an interrupt after `changes`: `current` is the state read back, with the
    /// services the target names (`target_services`) and its release (`target_commit`).
    pub(crate) fn new(
        app: String,
        changes: Vec<String>,
        current: &AppState,
        target_commit: Option<&str>,
        target_services: &[String],
    ) -> Self {
        let mut services: BTreeMap<String, String> = target_services
            .iter()
            .map(|name| (name.clone(), "no container".to_owned()))
            .collect();
        let mut newest_first: Vec<_> = current.services.iter().collect();
        newest_first.sort_by(|a, b| b.created_at.cmp(&a.created_at));
        for s in newest_first {
            if services.get(&s.name).is_some_and(|p| p != "no container") {
                continue;
            }
            let age = match target_commit {
                Some(c) if c == s.commit => "new ",
                Some(_) => "old ",
                None => "",
            };
            let status = status_phrase(&s.status);
            services.insert(
                s.name.clone(),
                format!("{status} {age}release {}", s.commit),
            );
        }
        Self {
            app,
            changes,
            services,
            unknown: None,
        }
    }

    /// The services grouped by what they are: `box, web: no container; db: running …`.
    fn services_phrase(&self) -> String {
        if let Some(why) = &self.unknown {
            return format!("its services could not be read back: {why}");
        }
        let mut by_phrase: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for (name, phrase) in &self.services {
            by_phrase.entry(phrase).or_default().push(name);
        }
        if by_phrase.is_empty() {
            return "no services".to_owned();
        }
        by_phrase
            .iter()
            .map(|(phrase, names)| format!("{}: {phrase}", names.join(", ")))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

fn status_phrase(status: &ServiceStatus) -> String {
    match status {
        ServiceStatus::Running => "running".to_owned(),
        ServiceStatus::Exited => "stopped".to_owned(),
        ServiceStatus::Installed | ServiceStatus::Installing => "created, not started".to_owned(),
        ServiceStatus::Stopping => "stopping".to_owned(),
        ServiceStatus::Dead => "dead".to_owned(),
        ServiceStatus::Downloading | ServiceStatus::Downloaded => "not created".to_owned(),
        ServiceStatus::Other(s) => s.clone(),
    }
}

impl std::fmt::Display for Interruption {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let services = self.services_phrase();
        if self.changes.is_empty() {
            return write!(
                f,
                "interrupted before any change: app {} is untouched ({services}); run `up` again to continue",
                self.app
            );
        }
        write!(
            f,
            "interrupted after {} change(s) ({}): app {} is partly updated ({services}); run `up` again to converge",
            self.changes.len(),
            self.changes.join(", "),
            self.app
        )
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn reports_changes_and_services_grouped() {
        let report = Interruption {
            app: "demo".into(),
            changes: vec!["kill box".into(), "kill web".into()],
            services: BTreeMap::from([
                ("box".into(), "no container".into()),
                ("web".into(), "no container".into()),
                ("db".into(), "running old release c1".into()),
            ]),
            unknown: None,
        };
        assert_eq!(
            report.to_string(),
            "interrupted after 2 change(s) (kill box, kill web): app demo is partly updated \
             (box, web: no container; db: running old release c1); run `up` again to converge"
        );
        let untouched = Interruption {
            changes: Vec::new(),
            ..report
        };
        assert!(untouched.to_string().contains("before any change"));
    }
}
