//! A service's build context (`context::Context`) as `resolve` reads it.

use std::io;

use resolve::ContextFiles;

/// A [`context::Context`] seen as [`resolve::ContextFiles`]: its files in context order, read
/// from the project (with the context's overrides applied), so `resolve` can pick and render a
/// Dockerfile from exactly what the build will be sent.
///
/// ```
/// use multibuild::BuildContextFiles;
/// use resolve::{Arch, Params, ResolverKind};
///
/// let dir = tempfile::tempdir()?;
/// std::fs::create_dir(dir.path().join("app"))?;
/// std::fs::write(dir.path().join("app/Dockerfile.template"), "FROM %%BALENA_ARCH%%/base\n")?;
/// let project = context::Project::open_dir(dir.path())?;
/// let context = project.context("app")?;
/// let resolved = resolve::resolve(
///     &BuildContextFiles(&context),
///     &Params::new(Arch::Aarch64, "raspberrypi4-64"),
/// )?;
/// assert_eq!(resolved.resolver, ResolverKind::Template);
/// assert_eq!(resolved.contents, "FROM aarch64/base\n");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy)]
pub struct BuildContextFiles<'a>(pub &'a context::Context);

impl ContextFiles for BuildContextFiles<'_> {
    fn paths(&self) -> Box<dyn Iterator<Item = &str> + '_> {
        Box::new(self.0.files().map(|f| f.path))
    }

    fn read(&self, path: &str) -> io::Result<Vec<u8>> {
        self.0
            .read_file(path)
            .map_err(io::Error::other)?
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("{path}: not in the context"),
                )
            })
    }
}
