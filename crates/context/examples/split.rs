//! Splits a project into its build contexts and writes each as a tar.
//!
//! `split PROJECT OUT [CONTEXT...]`: PROJECT is a directory, a `.tar` file or `-` (stdin);
//! OUT is a directory (one `<context>.tar` each) or `/dev/null`. Without CONTEXTs, every
//! top-level directory holding a `Dockerfile*` is a context. Each context gets a stand-in
//! "resolve": its `Dockerfile.template` (or `Dockerfile`) is read, `%%BALENA_ARCH%%` is
//! replaced, and the result is added as `Dockerfile`.
#![allow(clippy::print_stderr)]

use std::fs::File;
use std::path::Path;
use std::time::Instant;

use context::{Override, Project};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [project_arg, out, contexts @ ..] = args.as_slice() else {
        return Err("usage: split PROJECT OUT [CONTEXT...]".into());
    };
    let start = Instant::now();
    let project = if project_arg == "-" {
        // A regular file redirected to stdin is indexed in place; a pipe is spooled.
        use std::os::fd::AsFd;
        Project::from_tar_file(File::from(std::io::stdin().as_fd().try_clone_to_owned()?))?
    } else {
        Project::open(project_arg)?
    };
    let indexed = start.elapsed();
    let mut dirs: Vec<String> = contexts.to_vec();
    if dirs.is_empty() {
        for entry in project.entries() {
            if let Some((dir, name)) = entry.path().split_once('/')
                && !name.contains('/')
                && name.starts_with("Dockerfile")
                && !dirs.iter().any(|d| d == dir)
            {
                dirs.push(dir.to_owned());
            }
        }
    }
    let mut total = 0;
    for dir in &dirs {
        let ctx = project.context(dir)?;
        let template = match ctx.read_file("Dockerfile.template")? {
            Some(t) => t,
            None => ctx.read_file("Dockerfile")?.unwrap_or_default(),
        };
        let resolved = String::from_utf8_lossy(&template).replace("%%BALENA_ARCH%%", "amd64");
        let overrides = [Override::file("Dockerfile", resolved)];
        let sink: Box<dyn std::io::Write> = if out == "/dev/null" {
            Box::new(File::create(out)?)
        } else {
            let name = if dir == "." { "root" } else { dir.as_str() };
            Box::new(File::create(Path::new(out).join(format!("{name}.tar")))?)
        };
        total += ctx.write_tar(&overrides, sink)?;
    }
    eprintln!(
        "{} entries, {} contexts, {} bytes written; index {:.3}s, total {:.3}s",
        project.entries().len(),
        dirs.len(),
        total,
        indexed.as_secs_f64(),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}
