//! `balena-compose config`: print the normalised composition.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

/// Output formats of `config`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// A YAML document.
    Yaml,
    /// One JSON object.
    Json,
}

/// Validate the project's compose files and print the normalised composition.
///
/// The files are merged in order, interpolated (`${VAR}` from the environment, then the
/// project's `.env` or `--env-file`), checked against every balena rule and printed with the
/// compose-spec key names in normalised form: ports and volumes as short strings,
/// `depends_on` as a list, labels and environment as string maps, build contexts relative to
/// the project directory. A rule violation is reported as
/// `error: <file>: service "<name>": <message>` with nothing on stdout.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The project directory. Without -f, the compose file is looked for here
    /// (docker-compose.yml, docker-compose.yaml, compose.yaml, compose.yml); with none but a
    /// Dockerfile, the default single-service composition is printed. Defaults to the first
    /// -f file's directory, else the current directory.
    pub project_dir: Option<PathBuf>,

    /// A compose file (relative to the current directory); repeat to merge several, later
    /// ones overriding earlier ones.
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub files: Vec<PathBuf>,

    /// Read interpolation variables from this file instead of the project's `.env`.
    #[arg(long, value_name = "FILE")]
    pub env_file: Option<PathBuf>,

    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Yaml)]
    pub format: Format,

    /// Enable a profile (repeatable; `*` enables all). Without it, COMPOSE_PROFILES
    /// (comma-separated) is read. Services with `profiles` are left out unless one is enabled.
    #[arg(long = "profile", value_name = "NAME")]
    pub profiles: Vec<String>,

    /// Print only the service names, one a line.
    #[arg(long)]
    pub services: bool,
}

/// Runs `config`.
#[allow(clippy::print_stderr)]
pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let options = parse::LoadOptions {
        project_dir: args.project_dir,
        files: args.files,
        env_file: args.env_file,
        environment: None,
        profiles: args.profiles,
        reader: parse::FileReader::default(),
    };
    let composition = parse::load(&options)?;
    for warning in &composition.warnings {
        eprintln!("warning: {warning}");
    }
    let mut text = if args.services {
        composition
            .service_names()
            .map(|name| format!("{name}\n"))
            .collect::<String>()
    } else {
        match args.format {
            // `$` printed as `$$`: the output is a compose file that loads back the same.
            Format::Json => format!("{}\n", composition.to_compose_json()),
            Format::Yaml => composition.to_compose_yaml(),
        }
    };
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
        .context("cannot write to stdout")?;
    Ok(ExitCode::SUCCESS)
}
