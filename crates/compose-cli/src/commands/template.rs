//! `balena-compose template`: render one `%%VARIABLE%%` Dockerfile template, as `resolve`
//! and `build` render a service's `Dockerfile.template`.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use platform::{Arch, Target};
use resolve::Params;

use super::output::{Stdout, write_output};
use super::project;

/// Render a Dockerfile template for a target, with the variables `build` gives it.
///
/// `%%BALENA_ARCH%%`, `%%BALENA_MACHINE_NAME%%` (and their `RESIN_` twins) come from --arch
/// and --device-type, `%%BALENA_SERVICE_NAME%%` from --service, and any other from --var.
/// Lines starting with `#` are copied as they are; a variable that is not defined is an
/// error naming it and its line.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  balena-compose template app/Dockerfile.template --arch aarch64 --device-type raspberrypi4-64\n  balena-compose template - --arch amd64 --var BALENA_APP_NAME=myfleet < Dockerfile.template"
)]
pub struct Args {
    /// The template file, or `-` for standard input.
    #[arg(value_name = "FILE")]
    file: PathBuf,

    /// The target architecture: amd64, aarch64, armv7hf, i386 or rpi. Default: the device
    /// type's, else this machine's.
    #[arg(short = 'A', long, value_name = "ARCH", value_parser = project::parse_arch)]
    arch: Option<Arch>,

    /// The device type (`%%BALENA_MACHINE_NAME%%`). Default: a generic type for the
    /// architecture.
    #[arg(short = 'd', long = "device-type", value_name = "TYPE", value_parser = project::parse_device_type)]
    device_type: Option<String>,

    /// The service name (`%%BALENA_SERVICE_NAME%%`).
    #[arg(short = 's', long, value_name = "NAME")]
    service: Option<String>,

    /// A further variable, `NAME=VALUE`; repeatable. It overrides the built-in ones.
    #[arg(long = "var", value_name = "NAME=VALUE", value_parser = project::parse_key_value)]
    vars: Vec<(String, String)>,

    /// Where to write the rendered Dockerfile; `-` or nothing for standard output.
    #[arg(short = 'o', long, value_name = "FILE")]
    output: Option<PathBuf>,
}

/// Runs the command.
pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let target = Target::from_flags(args.arch, args.device_type.as_deref())?
        .unwrap_or_else(|| Target::generic(emulate::host_arch().unwrap_or(Arch::Amd64)));
    let mut params = Params::new(target.arch, target.device_type);
    params.service = args.service;
    params.vars.extend(args.vars);

    let name = args.file.display().to_string();
    let template = read_text(&args.file)?;
    let rendered = dockerfile::process(&template, &params.template_vars())
        .with_context(|| format!("cannot render {name}"))?;
    write_output(args.output.as_deref(), Stdout::Any, |out| {
        out.write_all(rendered.as_bytes())
    })?;
    Ok(ExitCode::SUCCESS)
}

/// Reads a UTF-8 text file, `-` being standard input.
fn read_text(path: &Path) -> anyhow::Result<String> {
    let bytes = if path == Path::new("-") {
        let mut bytes = Vec::new();
        std::io::stdin()
            .read_to_end(&mut bytes)
            .context("cannot read standard input")?;
        bytes
    } else {
        std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?
    };
    String::from_utf8(bytes).with_context(|| format!("{} is not UTF-8 text", path.display()))
}
