//! The flags that choose the Docker daemon besides `--docker-host`: `--context`, and the
//! balena CLI's spellings (`--dockerHost`, `--dockerPort`, `--ca`, `--cert`, `--key`).

use std::path::PathBuf;

use anyhow::bail;

/// Shared by build, deploy and up.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct DaemonArgs {
    /// A Docker context (`docker context ls`); see "Docker connections" in the README for
    /// which of --docker-host, --context, DOCKER_HOST, DOCKER_CONTEXT wins.
    #[arg(long, value_name = "NAME")]
    pub context: Option<String>,
    /// The balena CLI's --dockerHost: the daemon's host name or IP (tcp).
    #[arg(long = "dockerHost", value_name = "HOST", hide = true)]
    pub balena_docker_host: Option<String>,
    /// The balena CLI's --dockerPort (default 2376 with --dockerHost).
    #[arg(
        long = "dockerPort",
        value_name = "PORT",
        hide = true,
        requires = "balena_docker_host"
    )]
    pub balena_docker_port: Option<u16>,
    /// The balena CLI's --ca: the CA the daemon's TLS certificate must chain to.
    #[arg(long, value_name = "FILE", hide = true)]
    pub ca: Option<PathBuf>,
    /// The balena CLI's --cert: the TLS client certificate.
    #[arg(long, value_name = "FILE", hide = true)]
    pub cert: Option<PathBuf>,
    /// The balena CLI's --key: the TLS client certificate's key.
    #[arg(long, value_name = "FILE", hide = true)]
    pub key: Option<PathBuf>,
}

impl DaemonArgs {
    /// The daemon these flags and `docker_host` (`--docker-host`) name, with the environment
    /// and Docker contexts (see [`build::Daemon::resolve`]).
    pub fn resolve(&self, docker_host: Option<&str>) -> anyhow::Result<build::Daemon> {
        let balena_host = self
            .balena_docker_host
            .as_ref()
            .map(|host| format!("tcp://{host}:{}", self.balena_docker_port.unwrap_or(2376)));
        if docker_host.is_some() && balena_host.is_some() {
            bail!("give the Docker daemon with --docker-host or --dockerHost, not both");
        }
        let flags = build::DaemonFlags {
            docker_host: docker_host.map(str::to_owned).or(balena_host),
            context: self.context.clone(),
            ..self.resolve_tls()?
        };
        Ok(build::Daemon::resolve(&flags)?)
    }

    /// The TLS files of `--ca/--cert/--key` (all three or none), for every `tcp://` address
    /// these flags apply to (`--builder`'s too).
    pub fn resolve_tls(&self) -> anyhow::Result<build::DaemonFlags> {
        let tls = [&self.ca, &self.cert, &self.key];
        if tls.iter().any(|f| f.is_some()) && !tls.iter().all(|f| f.is_some()) {
            bail!("--ca, --cert and --key go together: give all three or none");
        }
        Ok(build::DaemonFlags {
            ca: self.ca.clone(),
            cert: self.cert.clone(),
            key: self.key.clone(),
            ..build::DaemonFlags::default()
        })
    }

    /// Connects to the daemon [`DaemonArgs::resolve`] names.
    pub async fn connect(&self, docker_host: Option<&str>) -> anyhow::Result<bollard::Docker> {
        Ok(build::connect_to(&self.resolve(docker_host)?).await?)
    }
}
