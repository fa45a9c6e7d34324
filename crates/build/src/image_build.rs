//! Building one context: with the classic builder through bollard, or — for build secrets —
//! with BuildKit (`version=2`) on a connection of our own, with a session serving the secrets,
//! or with balenaEngine's build volumes.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Duration;

use bollard::Docker;
use bollard::models::BuildInfo;
use bollard::query_parameters::{BuildImageOptionsBuilder, TagImageOptionsBuilder};
use futures::StreamExt;
use indexmap::IndexMap;
use tokio::sync::mpsc;

use crate::auth::RegistryAuth;
use crate::buildkit;
use crate::buildkit::BuildSecrets;
use crate::connect::REPEATED_VALUE_SEPARATOR;
use crate::context::{ContextBody, ProducerOutcome};
use crate::error::{Error, Result, describe_transport_error};
use crate::events::{
    BuildEvent, FromTag, LineBuffer, emit, extract_from_tag, extract_layer, parse_step,
};
use crate::pull::classify_pull_error;
use crate::reference::ImageReference;

/// How many output lines of the failing step a [`Error::BuildFailed`] keeps.
pub const FAILURE_OUTPUT_LINES: usize = 20;

/// What to build and how. `Default` is a plain classic build of `Dockerfile`.
#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    /// The Dockerfile's path inside the context (`Dockerfile` when `None`).
    pub dockerfile: Option<String>,
    /// Names to tag the result with (`name[:tag]`); the first goes with the build request,
    /// the others are added after it succeeds.
    pub tags: Vec<String>,
    /// `--build-arg`s.
    pub build_args: IndexMap<String, String>,
    /// Labels set on the image.
    pub labels: IndexMap<String, String>,
    /// The stage to stop at.
    pub target: Option<String>,
    /// Do not use the build cache.
    pub nocache: bool,
    /// Always pull the `FROM` images, even when present locally.
    pub pull: bool,
    /// Images to consider as cache sources.
    pub cache_from: Vec<String>,
    /// The platform to build for, e.g. `linux/arm64`.
    pub platform: Option<String>,
    /// Extra `/etc/hosts` entries, `host:ip` (a compose-style `host=ip` is converted).
    /// Several hosts need a client from [`crate::connect`].
    pub extra_hosts: Vec<String>,
    /// The network mode of `RUN` steps (`host`, `none`, a network name).
    pub network_mode: Option<String>,
    /// The size of `/dev/shm` in the build's containers, in bytes (the daemon's default,
    /// 64 MiB, when `None`). Sent to both builders; BuildKit of Docker 20.10 ignores it (as
    /// `DOCKER_BUILDKIT=1 docker build --shm-size` does there).
    pub shm_size: Option<u64>,
    /// Report everything BuildKit does, as `docker build --progress plain` shows it: its
    /// internal steps (`[internal] load …`, `exporting to image`) and a `CACHED` line per
    /// cached step. Off, a BuildKit build reads like a classic one: the Dockerfile's steps
    /// and their output. The classic builder ignores it.
    pub plain_progress: bool,
    /// Registry credentials for `FROM` images (sent as `X-Registry-Config`).
    pub registry_auth: RegistryAuth,
    /// Give up (and fail with [`Error::Timeout`]) after this long; no limit when `None`.
    pub timeout: Option<Duration>,
    /// Which builder runs the build.
    pub builder: Builder,
    /// Secrets for `RUN --mount=type=secret,id=<id>`, served over a BuildKit session; only
    /// with [`Builder::BuildKit`].
    pub secrets: BuildSecrets,
    /// balenaEngine build volumes (`host-dir:container-dir[:ro]`), for the classic builder.
    /// Only balenaEngine honours them; plain Docker accepts and ignores them, so never set
    /// them for a daemon [`crate::DaemonInfo::balena_engine`] did not confirm.
    pub volumes: Vec<String>,
    /// The daemon for the connections BuildKit and volumes builds open themselves (the one
    /// given to [`crate::connect_to`]); `None`: the one [`crate::Daemon::resolve`] finds from
    /// the environment alone.
    pub daemon: Option<crate::Daemon>,
}

/// The builder of a build. [`crate::DaemonInfo::buildkit`] says whether a daemon has
/// BuildKit; callers choose it whenever it does (as `multibuild` does) and keep the classic
/// builder for daemons without it and for `DOCKER_BUILDKIT=0`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Builder {
    /// The classic builder (`version=1`): what the reference uses.
    #[default]
    Classic,
    /// BuildKit (`version=2`), with a session for [`BuildOptions::secrets`] and registry
    /// credentials. `RUN` steps need [`BuildOptions::network_mode`] `host` or `none` on a
    /// daemon without a `bridge` network; when it is `None`, `host` is used there. The image
    /// carries inline cache metadata (`BUILDKIT_INLINE_CACHE=1`, unless the build args set
    /// it) so that it can serve as [`BuildOptions::cache_from`] of a later build; its
    /// [`Built::layers`] are the image's layer digests (BuildKit commits no step images).
    BuildKit,
}

/// A successful build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Built {
    /// The image id, `sha256:…`.
    pub image_id: String,
    /// The repository digest, if the image has one (only after a push or for pulled images).
    pub digest: Option<String>,
    /// The classic builder's layer ids from the ` ---> <id>` lines, in order (one per step);
    /// on BuildKit, which commits no image per step, the image's layer digests.
    pub layers: Vec<String>,
    /// The base images of the `FROM` steps (stage names excluded).
    pub from_tags: Vec<FromTag>,
    /// Every tag the image received.
    pub tags: Vec<String>,
}

/// Builds `context` with the classic builder and reports progress on `events`.
///
/// The context is streamed; a producer's failure aborts the build with
/// [`Error::Context`]. A failing step gives [`Error::BuildFailed`] with the daemon's message,
/// the step and its last output lines; a `FROM` the registry refuses (or lacks) gives
/// [`Error::Unauthorized`] (or [`Error::ImageNotFound`]) naming the image and registry.
///
/// `events` is awaited on (back-pressure): drain its receiver concurrently, or the build
/// stalls once the channel is full. A dropped receiver is fine. For several
/// [`BuildOptions::extra_hosts`], `docker` must come from [`crate::connect`].
pub async fn build_image(
    docker: &Docker,
    context: ContextBody,
    options: &BuildOptions,
    events: &mpsc::Sender<BuildEvent>,
) -> Result<Built> {
    if options.builder == Builder::Classic && !options.secrets.is_empty() {
        return Err(Error::Unsupported(
            "build secrets need the BuildKit builder".to_owned(),
        ));
    }
    let run = async {
        match options.builder {
            Builder::BuildKit => buildkit::run_raw_build(docker, context, options, events).await,
            Builder::Classic if !options.volumes.is_empty() => {
                buildkit::run_raw_build(docker, context, options, events).await
            }
            Builder::Classic => run_build(docker, context, options, events).await,
        }
    };
    let built = match options.timeout {
        Some(limit) => tokio::time::timeout(limit, run)
            .await
            .map_err(|_| Error::Timeout {
                action: format!("building {}", describe_tags(&options.tags)),
                seconds: limit.as_secs(),
            })??,
        None => run.await?,
    };
    Ok(built)
}

fn lost_connection(options: &BuildOptions, reason: String) -> Error {
    Error::ConnectionLost {
        host: daemon_host(options),
        action: format!("building {}", describe_tags(&options.tags)),
        reason,
    }
}

/// hyper's words for a connection that ended in the middle of a response. bollard 0.21.1
/// hands a body's hyper error on as an `io::Error` holding only its text, so the text is all
/// there is to tell it from a framing error (also an `io::Error`, "bytes remaining on stream").
const HYPER_CONNECTION_LOST: [&str; 2] = [
    "error reading a body from connection",
    "connection closed before message completed",
];

/// Whether an I/O error is the connection ending under us.
fn is_connection_loss(e: &std::io::Error) -> bool {
    use std::io::ErrorKind as K;
    let text = e.to_string();
    matches!(
        e.kind(),
        K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe | K::UnexpectedEof
    ) || HYPER_CONNECTION_LOST.iter().any(|t| text.contains(t))
}

/// The daemon's address for a message: the one the build was given, else the environment's.
fn daemon_host(options: &BuildOptions) -> String {
    match &options.daemon {
        Some(daemon) => daemon.host.clone(),
        None => crate::Daemon::resolve(&crate::DaemonFlags::default())
            .map_or_else(|_| "the default address".to_owned(), |d| d.host),
    }
}

/// The image a build announced, inspected.
pub(crate) async fn inspect_built(
    docker: &Docker,
    announced: &str,
) -> Result<bollard::models::ImageInspect> {
    docker
        .inspect_image(announced)
        .await
        .map_err(|e| Error::docker(format!("inspecting built image {announced}"), e))
}

pub(crate) fn describe_tags(tags: &[String]) -> String {
    tags.first()
        .cloned()
        .unwrap_or_else(|| "an untagged image".to_owned())
}

async fn run_build(
    docker: &Docker,
    context: ContextBody,
    options: &BuildOptions,
    events: &mpsc::Sender<BuildEvent>,
) -> Result<Built> {
    let build_args: HashMap<String, String> = options.build_args.clone().into_iter().collect();
    let labels: HashMap<String, String> = options.labels.clone().into_iter().collect();
    let extra_hosts = options
        .extra_hosts
        .iter()
        .map(|h| compose_host_to_docker(h))
        .collect::<Vec<_>>()
        .join(&REPEATED_VALUE_SEPARATOR.to_string());
    let mut builder = BuildImageOptionsBuilder::default()
        .dockerfile(options.dockerfile.as_deref().unwrap_or("Dockerfile"))
        .nocache(options.nocache)
        .rm(true)
        .forcerm(true)
        .buildargs(&build_args)
        .labels(&labels)
        .platform(options.platform.as_deref().unwrap_or_default())
        .target(options.target.as_deref().unwrap_or_default());
    if let Some(tag) = options.tags.first() {
        builder = builder.t(tag);
    }
    if options.pull {
        builder = builder.pull("1");
    }
    if !options.cache_from.is_empty() {
        builder = builder.cachefrom(&options.cache_from);
    }
    if !extra_hosts.is_empty() {
        builder = builder.extrahosts(&extra_hosts);
    }
    if let Some(mode) = &options.network_mode {
        builder = builder.networkmode(mode);
    }
    // bollard 0.21.1 takes an i32: a larger size is sent as the most it can say.
    if let Some(bytes) = options
        .shm_size
        .map(|b| i32::try_from(b).unwrap_or(i32::MAX))
    {
        builder = builder.shmsize(bytes);
    }
    // Even an empty map is sent, as the reference does: it costs nothing and keeps the
    // daemon's behaviour the same with and without secrets.
    let credentials = Some(options.registry_auth.as_build_config());

    let (chunks, producer) = context.into_stream();
    let body = bollard::body_try_stream(chunks);
    let mut state = BuildState::default();
    let stream = docker.build_image(builder.build(), credentials, Some(body));
    futures::pin_mut!(stream);
    while let Some(item) = stream.next().await {
        match item {
            Ok(info) => state.handle(info, events).await,
            Err(error) => {
                state.flush(events).await;
                return state.fail(docker, error, &producer, events, options).await;
            }
        }
    }
    state.flush(events).await;
    if let Some(e) = producer.take_error() {
        return Err(Error::Context(e));
    }
    state.finish(docker, options).await
}

/// compose-go writes `host=ip`; the daemon wants `host:ip`. Only the first `=` is a separator.
pub(crate) fn compose_host_to_docker(entry: &str) -> String {
    if entry.contains(':') && !entry.contains('=') {
        return entry.to_owned();
    }
    entry.replacen('=', ":", 1)
}

#[derive(Debug, Default)]
pub(crate) struct BuildState {
    lines: LineBuffer,
    image_id: Option<String>,
    successfully_built: Option<String>,
    layers: Vec<String>,
    from_tags: Vec<FromTag>,
    aliases: HashSet<String>,
    current_step: Option<String>,
    step_output: VecDeque<String>,
}

impl BuildState {
    pub(crate) async fn handle(&mut self, info: BuildInfo, events: &mpsc::Sender<BuildEvent>) {
        if let Some(text) = &info.stream {
            for line in self.lines.push(text) {
                self.line(line, events).await;
            }
        }
        if let Some(status) = info.status {
            let event = BuildEvent::progress(info.id, status, info.progress_detail);
            emit(events, event).await;
        }
        if let Some(id) = info.aux.and_then(|aux| aux.id) {
            self.image_id = Some(id);
        }
    }

    pub(crate) async fn flush(&mut self, events: &mpsc::Sender<BuildEvent>) {
        if let Some(line) = self.lines.finish() {
            self.line(line, events).await;
        }
    }

    async fn line(&mut self, line: String, events: &mpsc::Sender<BuildEvent>) {
        if let Some((index, total, instruction)) = parse_step(&line) {
            self.current_step = Some(line.clone());
            self.step_output.clear();
            if let Some(from) = extract_from_tag(&line) {
                self.record_from(from);
            }
            emit(
                events,
                BuildEvent::Step {
                    index,
                    total,
                    instruction,
                },
            )
            .await;
            return;
        }
        if let Some(id) = line.strip_prefix("Successfully built ") {
            self.successfully_built = Some(id.trim().to_owned());
        }
        let layer = extract_layer(&line);
        if self.step_output.len() == FAILURE_OUTPUT_LINES {
            self.step_output.pop_front();
        }
        self.step_output.push_back(line.clone());
        emit(events, BuildEvent::Output { line }).await;
        if let Some(id) = layer {
            self.layers.push(id.clone());
            emit(events, BuildEvent::Layer { id }).await;
        }
    }

    /// A `FROM <stage>` is not a base image (a stage named before this line, as the
    /// reference decides).
    fn record_from(&mut self, from: FromTag) {
        let alias = from.alias.clone();
        if !self.aliases.contains(&from.repo) {
            self.from_tags.push(from);
        }
        if let Some(alias) = alias {
            self.aliases.insert(alias);
        }
    }

    /// The id the daemon announced (`aux.ID`, else `Successfully built`).
    pub(crate) fn announced_id(&self) -> Option<&str> {
        self.image_id
            .as_deref()
            .or(self.successfully_built.as_deref())
    }

    pub(crate) async fn fail(
        self,
        docker: &Docker,
        error: bollard::errors::Error,
        producer: &ProducerOutcome,
        events: &mpsc::Sender<BuildEvent>,
        options: &BuildOptions,
    ) -> Result<Built> {
        use bollard::errors::Error as B;
        // A failed upload shows up as a transport error or a daemon complaint about a
        // truncated tar; the producer's own error is the one that explains it.
        if let Some(e) = producer.take_failure() {
            return Err(Error::Context(e));
        }
        let message = match error {
            B::DockerStreamError { error } => error,
            B::DockerResponseServerError { message, .. } => message,
            // bollard 0.21.1 can end a good stream with a framing error when `}` and `\r\n`
            // arrive in different reads (upstream #560): trust an id we already saw.
            B::IOError { .. } | B::JsonDataError { .. } if self.announced_id().is_some() => {
                return self.finish(docker, options).await;
            }
            // The stream broke before the build ended: the daemon went away under it. (A
            // framing error is an `IOError` too, of another kind: not a lost connection.)
            e @ B::HyperResponseError { .. } => {
                return Err(lost_connection(options, describe_transport_error(&e)));
            }
            B::IOError { err } if is_connection_loss(&err) => {
                return Err(lost_connection(options, err.to_string()));
            }
            other => {
                return Err(Error::docker(
                    format!("building {}", describe_tags(&options.tags)),
                    other,
                ));
            }
        };
        emit(
            events,
            BuildEvent::Error {
                message: message.clone(),
            },
        )
        .await;
        if let Some(pull_error) = self.base_image_pull_error(&message, options) {
            return Err(pull_error);
        }
        Err(Error::BuildFailed {
            message,
            step: self.current_step,
            output: self.step_output.into(),
            layers: self.layers,
        })
    }

    /// A failing `FROM` step whose message is a registry refusal or a missing image is
    /// reported like the same failure of a pull, naming the image and registry.
    fn base_image_pull_error(&self, message: &str, options: &BuildOptions) -> Option<Error> {
        let step = self.current_step.as_deref()?;
        let from = extract_from_tag(step)?;
        let image = match (&from.tag, &from.digest) {
            (_, Some(digest)) => format!("{}@{digest}", from.repo),
            (Some(tag), None) => format!("{}:{tag}", from.repo),
            (None, None) => from.repo.clone(),
        };
        let reference = ImageReference::parse(&image).ok()?;
        let had_credentials = options.registry_auth.for_image(&image).is_some();
        match classify_pull_error(&reference, &image, message.to_owned(), had_credentials) {
            e @ (Error::Unauthorized { .. } | Error::ImageNotFound { .. }) => Some(e),
            _ => None,
        }
    }

    pub(crate) async fn finish(self, docker: &Docker, options: &BuildOptions) -> Result<Built> {
        let announced = self
            .announced_id()
            .map(str::to_owned)
            .or_else(|| self.layers.last().cloned())
            .ok_or_else(|| Error::BuildFailed {
                message: "the daemon finished the build without reporting an image id".into(),
                step: self.current_step.clone(),
                output: self.step_output.iter().cloned().collect(),
                layers: Vec::new(),
            })?;
        let inspect = inspect_built(docker, &announced).await?;
        let image_id = inspect.id.unwrap_or(announced);
        for extra in options.tags.iter().skip(1) {
            tag_image(docker, &image_id, extra).await?;
        }
        let digest = inspect
            .repo_digests
            .unwrap_or_default()
            .into_iter()
            .find_map(|d| d.split_once('@').map(|(_, digest)| digest.to_owned()));
        Ok(Built {
            image_id,
            digest,
            layers: self.layers,
            from_tags: self.from_tags,
            tags: options.tags.clone(),
        })
    }
}

/// Tags `image` as `name[:tag]`.
pub async fn tag_image(docker: &Docker, image: &str, name: &str) -> Result<()> {
    let reference = ImageReference::parse(name)?;
    let options = TagImageOptionsBuilder::default()
        .repo(&reference.name())
        .tag(reference.tag.as_deref().unwrap_or("latest"))
        .build();
    docker
        .tag_image(image, Some(options))
        .await
        .map_err(|e| Error::docker(format!("tagging {image} as {name}"), e))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn a_body_cut_off_is_a_lost_connection_and_a_framing_error_is_not() {
        use std::io::{Error as Io, ErrorKind};
        // What bollard 0.21.1 makes of hyper's error when dockerd is killed mid-build.
        let cut = Io::other("error reading a body from connection");
        assert!(is_connection_loss(&cut));
        assert!(is_connection_loss(&Io::from(ErrorKind::ConnectionReset)));
        assert!(!is_connection_loss(&Io::other("bytes remaining on stream")));
    }

    #[test]
    fn compose_extra_hosts_become_docker_ones() {
        assert_eq!(compose_host_to_docker("db=10.0.0.1"), "db:10.0.0.1");
        assert_eq!(compose_host_to_docker("db:10.0.0.1"), "db:10.0.0.1");
        assert_eq!(compose_host_to_docker("v6=::1"), "v6:::1");
    }

    fn info_stream(text: &str) -> BuildInfo {
        BuildInfo {
            stream: Some(text.to_owned()),
            ..BuildInfo::default()
        }
    }

    /// The reference's build_stream.spec: every `stream` string comes out, in order, and
    /// nothing else does; layers and FROM tags are collected on the way.
    #[tokio::test]
    async fn stream_lines_become_ordered_events() {
        let (tx, mut rx) = mpsc::channel(100);
        let mut state = BuildState::default();
        let chunks = [
            "Step 1/3 : FROM debian:bullseye-slim AS base",
            "\n",
            " ---> 2e2f252f3c88\n",
            "Step 2/3 : FROM base\n ---> 2e2f252f3c88\n",
            "Step 3/3 : RUN echo hi\n ---> Running in 2730e2762325\nhi\n",
            "Removing intermediate container 2730e2762325\n ---> 71c5f44586ba\n",
            "Successfully built 71c5f44586ba\n",
        ];
        for chunk in chunks {
            state.handle(info_stream(chunk), &tx).await;
        }
        state
            .handle(
                BuildInfo {
                    status: Some("Downloading".into()),
                    id: Some("abc".into()),
                    ..BuildInfo::default()
                },
                &tx,
            )
            .await;
        state.flush(&tx).await;
        drop(tx);
        let mut got = Vec::new();
        while let Some(e) = rx.recv().await {
            got.push(e);
        }
        let step = |index, instruction: &str| BuildEvent::Step {
            index,
            total: 3,
            instruction: instruction.into(),
        };
        let out = |line: &str| BuildEvent::Output { line: line.into() };
        let layer = |id: &str| BuildEvent::Layer { id: id.into() };
        assert_eq!(
            got,
            vec![
                step(1, "FROM debian:bullseye-slim AS base"),
                out(" ---> 2e2f252f3c88"),
                layer("2e2f252f3c88"),
                step(2, "FROM base"),
                out(" ---> 2e2f252f3c88"),
                layer("2e2f252f3c88"),
                step(3, "RUN echo hi"),
                out(" ---> Running in 2730e2762325"),
                out("hi"),
                out("Removing intermediate container 2730e2762325"),
                out(" ---> 71c5f44586ba"),
                layer("71c5f44586ba"),
                out("Successfully built 71c5f44586ba"),
                BuildEvent::Progress {
                    id: Some("abc".into()),
                    status: "Downloading".into(),
                    current: None,
                    total: None
                },
            ]
        );
        assert_eq!(state.layers.len(), 3);
        assert_eq!(state.from_tags.len(), 1, "FROM base is a stage");
        assert_eq!(state.from_tags[0].repo, "debian");
        assert_eq!(state.announced_id(), Some("71c5f44586ba"));
        assert_eq!(state.step_output.len(), 5);
    }
}
