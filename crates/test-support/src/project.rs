//! Temp projects and what the binary prints.

use std::path::{Path, PathBuf};

use serde_json::Value;

/// Writes `contents` to `root/path`, creating the directories; the file's path.
pub fn write(root: &Path, path: &str, contents: &str) -> PathBuf {
    let path = root.join(path);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, contents).unwrap();
    path
}

/// Every line of `stdout` as JSON; a line that is not JSON fails the test.
pub fn json_lines(stdout: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}
