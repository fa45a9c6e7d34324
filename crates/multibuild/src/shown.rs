//! What a build shows and keeps: its events with the daemon's emulation noise filtered,
//! secrets redacted and the flags we added hidden, its failure in the user's terms, and its
//! log (capped at [`MAX_LOG_BYTES`]).

use emulate::BuildOutput;

use crate::run::MAX_LOG_BYTES;

pub(crate) fn filter_event(
    filter: &mut BuildOutput,
    event: build::BuildEvent,
) -> build::BuildEvent {
    match event {
        build::BuildEvent::Output { line } => build::BuildEvent::Output {
            line: filter.line(&line).into_owned(),
        },
        build::BuildEvent::Step {
            index,
            total,
            instruction,
        } => {
            let shown = filter
                .line(&format!("Step {index}/{total} : {instruction}"))
                .into_owned();
            let instruction = shown
                .split_once(" : ")
                .map_or(instruction, |(_, rest)| rest.to_owned());
            build::BuildEvent::Step {
                index,
                total,
                instruction,
            }
        }
        other => other,
    }
}

/// The error text of a failed build: the failing step as the user wrote it (without the
/// flags we added), and an emulation failure explained.
pub(crate) fn failure_text(
    mut e: build::Error,
    added_flags: &[String],
    filter: Option<&BuildOutput>,
) -> String {
    if let build::Error::BuildFailed {
        step: Some(step), ..
    } = &mut e
    {
        for flag in added_flags {
            *step = step.replace(flag.as_str(), "");
        }
    }
    let explained = match (filter, &e) {
        (Some(filter), build::Error::BuildFailed { message, .. }) => {
            filter.explain_failure(message).map(|e| e.to_string())
        }
        _ => None,
    };
    explained.unwrap_or_else(|| e.to_string())
}

/// An event of a build with secrets: a printed secret redacted, and the secret mounts we
/// added to each `RUN` not shown (the user did not write them).
pub(crate) fn hide_secrets(
    event: build::BuildEvent,
    redactor: &build::Redactor,
    added_flags: &[String],
) -> build::BuildEvent {
    match event {
        build::BuildEvent::Output { line } => build::BuildEvent::Output {
            line: redactor.apply(line),
        },
        build::BuildEvent::Error { message } => build::BuildEvent::Error {
            message: redactor.apply(message),
        },
        build::BuildEvent::Step {
            index,
            total,
            instruction,
        } => {
            let mut shown = instruction;
            for flag in added_flags {
                shown = shown.replace(flag.as_str(), "");
            }
            build::BuildEvent::Step {
                index,
                total,
                instruction: redactor.apply(shown),
            }
        }
        other => other,
    }
}

/// The secrets as files in a new private directory (mode 0700), for a balenaEngine build
/// volume; removed when the returned value is dropped.
pub(crate) fn write_secrets_dir(
    secrets: &build::BuildSecrets,
) -> std::io::Result<tempfile::TempDir> {
    let dir = tempfile::Builder::new()
        .prefix("balena-compose-secrets-")
        .tempdir()?;
    for (dest, contents) in secrets.iter() {
        let path = dir.path().join(dest);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, contents)?;
    }
    Ok(dir)
}

pub(crate) fn append_log(log: &mut String, line: &str) {
    if log.len() + line.len() < MAX_LOG_BYTES {
        log.push_str(line);
        log.push('\n');
    }
}
