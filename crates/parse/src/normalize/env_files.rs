//! `env_file` and `label_file`: dotenv files inside the project.

use indexmap::IndexMap;
use serde_json::Value;

use super::{Context, boolean};
use crate::dotenv;
use crate::error::Error;
use crate::file::path_in_project;
use crate::values::string;

/// Reads `env_file`/`label_file` (a path, a list of paths, or `{path, required}` entries),
/// relative to the project directory; later files win.
pub(super) fn read_env_files(
    name: &str,
    files: &Value,
    ctx: &Context<'_>,
) -> Result<IndexMap<String, Option<String>>, Error> {
    let entries: Vec<&Value> = match files {
        Value::Array(items) => items.iter().collect(),
        Value::Null => Vec::new(),
        other => vec![other],
    };
    let mut out = IndexMap::new();
    for entry in entries {
        let (path, required) = match entry {
            Value::Object(m) => (
                m.get("path").map(string).transpose(),
                m.get("required").map(boolean).transpose(),
            ),
            other => (string(other).map(Some), Ok(None)),
        };
        let bad = |m: String| ctx.service_error(name, "env_file", format!("service.env_file {m}"));
        let path = path
            .map_err(bad)?
            .ok_or_else(|| bad("entry without path".into()))?;
        let required = required.map_err(bad)?.unwrap_or(true);
        // Lexically, as compose does: `a/b/../x` needs no `a/b` directory. Beyond the
        // reference, a path that climbs out later (`a/../../x`) is refused too. (`include`
        // rebases relative paths to absolute ones inside the project: those pass.)
        let full = path_in_project(ctx.project_dir, ctx.project_dir, &path)
            .and_then(|full| {
                // The reference's normalizeAndValidateFilePath refuses these even inside.
                if path.starts_with("..") {
                    Err(format!("Directory traversing not allowed : {path}"))
                } else if path.contains('*') {
                    Err(format!("Wildcards not allowed : {path}"))
                } else {
                    Ok(full)
                }
            })
            .map_err(|message| ctx.service_error(name, "env_file", message))?;
        let text = match ctx.reader.read(&full) {
            Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => continue,
            Err(cause) => return Err(Error::Io { path: full, cause }),
        };
        let parsed = dotenv::parse(&text, ctx.env).map_err(|e| Error::EnvFile {
            file: full.clone(),
            line: e.line,
            message: e.message,
        })?;
        for (k, v) in parsed {
            out.shift_remove(&k);
            out.insert(k, v);
        }
    }
    Ok(out)
}
