//! Building one service: the builder and platform, the inputs that may let an image on the
//! daemon stand in for the build, the secrets, the build itself and its outcome.

use emulate::{BuildOutput, Emulation};
use tokio::sync::mpsc;

use super::{Action, Event, SecretsMode, ServiceOutcome, Worker};
use crate::Error;
use crate::inputs::{self, Reuse};
use crate::plan::BuildTask;
use crate::shown::{append_log, failure_text, filter_event, hide_secrets, write_secrets_dir};

impl Worker<'_> {
    /// Before a foreign-platform build, makes each base image the daemon holds of the
    /// target's platform ([`build::ensure_base_platform`]): a local variant of another
    /// platform is replaced by the target's (with a warning), or the build fails naming both.
    pub(super) async fn check_base_platforms(&self, task: &BuildTask) -> Result<(), build::Error> {
        let target: build::Platform = self.plan.arch.docker_platform().parse()?;
        let contents = &task.resolved.contents;
        let images = dockerfile::target_base_images(contents, |name| {
            task.build_args.get(name).map(String::as_str)
        });
        for image in images {
            let (tx, mut rx) = mpsc::channel(256);
            let credentials = self.auth.for_image(&image);
            let target = &target;
            let check = async move {
                let result =
                    build::ensure_base_platform(self.docker, &image, target, credentials, &tx)
                        .await;
                drop(tx);
                (image, result)
            };
            let ((image, result), ()) = tokio::join!(check, self.forward(&mut rx));
            if let build::BaseImage::Pulled { was } = result? {
                let message = format!(
                    "the base image {image} on the Docker daemon was {was}: pulled its {target} variant"
                );
                self.send(Event::Warning {
                    service: self.service.to_owned(),
                    message,
                })
                .await;
            }
        }
        Ok(())
    }

    pub(super) async fn build(&self, task: &BuildTask) -> ServiceOutcome {
        let with_secrets = !task.secrets.is_empty();
        let buildkit = self.uses_buildkit(task);
        // Before the inputs are taken: a pulled base of the right platform changes its ID.
        if self.foreign()
            && let Err(e) = self.check_base_platforms(task).await
        {
            return ServiceOutcome {
                resolver: task.resolved.resolver.name().to_owned(),
                ..ServiceOutcome::failed(self.service, &Error::Build(e))
            };
        }
        let (sent_dockerfile, inputs) = match self.inputs_or_reuse(task, buildkit).await {
            Ok(prepared) => prepared,
            Err(reused) => return reused,
        };
        self.send(Event::Start {
            service: self.service.to_owned(),
            action: Action::Build {
                resolver: task.resolved.resolver.name().to_owned(),
                dockerfile: task.resolved.dockerfile_path.clone(),
                emulated: task.transposed,
            },
        })
        .await;
        let platform = self.platform_for(task, buildkit).await;
        let mut options = self.build_options(task, platform);
        // Kept alive until the build ends: the balenaEngine volume's directory.
        let (volume_dir, added_flags) = match self.pass_secrets(task, buildkit, &mut options) {
            Ok(passed) => passed,
            Err(e) => {
                let mut outcome = ServiceOutcome::failed(self.service, &e);
                outcome.error = outcome.error.map(|e| task.secrets.redact(e));
                return outcome;
            }
        };
        let labelled_dockerfile = inputs.as_ref().ok().and_then(|inputs| {
            inputs.label_into(&mut options, &sent_dockerfile, task.target.is_some())
        });
        let mut filter = match &self.plan.emulation {
            Emulation::Rewrite { options, .. } if task.transposed => {
                Some(BuildOutput::new(self.plan.arch, options.clone()))
            }
            _ => None,
        };
        let (tx, mut rx) = mpsc::channel(256);
        let sent = labelled_dockerfile.unwrap_or_else(|| sent_dockerfile.clone());
        let build = build_once_more_after_a_race(self.docker, task, sent, &options, tx);
        let mut log = String::new();
        // One redactor for the whole build: every event, and so the log, goes through it.
        let redactor = task.secrets.redactor();
        let forward =
            self.forward_build(&mut rx, &redactor, &added_flags, filter.as_mut(), &mut log);
        let (result, ()) = tokio::join!(build, forward);
        drop(volume_dir);
        let mut outcome = ServiceOutcome {
            image: task.tags.first().cloned(),
            resolver: task.resolved.resolver.name().to_owned(),
            dockerfile: Some(sent_dockerfile),
            contract: task.contract.clone(),
            log,
            ..ServiceOutcome::new(self.service)
        };
        match result {
            Ok(built) => {
                outcome.size = self.image_size(&built.image_id).await;
                outcome.image_id = Some(built.image_id);
            }
            Err(e) => {
                outcome.connection_lost = matches!(e, build::Error::ConnectionLost { .. });
                let text = failure_text(e, &added_flags, filter.as_ref());
                outcome.error = Some(if with_secrets {
                    redactor.apply(text)
                } else {
                    text
                });
            }
        }
        outcome
    }

    /// Whether the task builds on BuildKit: the secrets' mode decides for a task with
    /// secrets, the worker's builder otherwise.
    fn uses_buildkit(&self, task: &BuildTask) -> bool {
        let with_secrets = !task.secrets.is_empty();
        match *self.secrets_mode {
            SecretsMode::BuildKit if with_secrets => true,
            SecretsMode::Volumes if with_secrets => false,
            _ => self.buildkit,
        }
    }

    /// The `platform` of the build.
    async fn platform_for(&self, task: &BuildTask, buildkit: bool) -> Option<String> {
        if buildkit && self.foreign() {
            // BuildKit looks a base image up for the build's platform only: without it, a
            // local single-arch base of the target arch is ignored and pulled from Docker Hub.
            Some(self.plan.arch.docker_platform().to_owned())
        } else {
            self.build_platform(task).await
        }
    }

    /// Sets the builder and passes the task's secrets to it: to BuildKit's session, or in a
    /// directory mounted as balenaEngine's build volume (returned: it must outlive the
    /// build), and the `RUN` flags added (to hide them from the output).
    fn pass_secrets(
        &self,
        task: &BuildTask,
        buildkit: bool,
        options: &mut build::BuildOptions,
    ) -> Result<(Option<tempfile::TempDir>, Vec<String>), Error> {
        if buildkit {
            options.builder = build::Builder::BuildKit;
            options.secrets = task.secrets.clone();
            return Ok((None, self.added_run_flags(task)));
        }
        if task.secrets.is_empty() || *self.secrets_mode != SecretsMode::Volumes {
            return Ok((None, Vec::new()));
        }
        match write_secrets_dir(&task.secrets) {
            Ok(dir) => {
                options
                    .volumes
                    .push(format!("{}:/run/secrets:ro", dir.path().display()));
                Ok((Some(dir), Vec::new()))
            }
            Err(e) => Err(Error::SecretsUnsupported(format!(
                "writing the build secrets for balenaEngine's build volume: {e}"
            ))),
        }
    }

    /// The Dockerfile to send and the build's inputs; or, as `Err`, the outcome of the image
    /// on the daemon that stands in for the build.
    async fn inputs_or_reuse(
        &self,
        task: &BuildTask,
        buildkit: bool,
    ) -> Result<(String, Result<inputs::Inputs, String>), ServiceOutcome> {
        let sent_dockerfile = match &task.mounted_dockerfile {
            Some(mounted) if buildkit => mounted.clone(),
            // The classic builder has no $BUILDPLATFORM: build-host stages name the host's.
            _ => dockerfile::pin_build_platform(
                &task.dockerfile,
                self.options.host_arch.docker_platform(),
            ),
        };
        // Always computed, so that every image records its inputs for a later reuse.
        let inputs = inputs::compute(
            self.docker,
            task,
            &sent_dockerfile,
            self.plan.arch,
            &self.plan.device_type,
        )
        .await;
        match self.reuse_image(task, &sent_dockerfile, &inputs).await {
            Some(reused) => Err(reused),
            None => Ok((sent_dockerfile, inputs)),
        }
    }

    /// The outcome of the image already on the daemon when it can stand in for this build
    /// (no context is sent then); `None`: build.
    async fn reuse_image(
        &self,
        task: &BuildTask,
        sent_dockerfile: &str,
        inputs: &Result<inputs::Inputs, String>,
    ) -> Option<ServiceOutcome> {
        let image = task.tags.first()?;
        if self.options.reuse == Reuse::Never {
            return None;
        }
        let decision = inputs::decide_build(
            self.docker,
            self.options.reuse,
            self.service,
            image,
            inputs,
            self.plan.arch,
        )
        .await;
        let outcome = self.announce(decision, image).await?;
        Some(ServiceOutcome {
            resolver: task.resolved.resolver.name().to_owned(),
            dockerfile: Some(sent_dockerfile.to_owned()),
            contract: task.contract.clone(),
            ..outcome
        })
    }

    /// The build's options from the task and the run's options; the builder, secrets and
    /// volumes are the caller's to set.
    fn build_options(&self, task: &BuildTask, platform: Option<String>) -> build::BuildOptions {
        let mut cache_from = task.cache_from.clone();
        cache_from.extend(self.options.cache_from.iter().cloned());
        build::BuildOptions {
            dockerfile: Some(task.resolved.dockerfile_path.clone()),
            tags: task.tags.clone(),
            build_args: task.build_args.clone(),
            labels: task.labels.clone(),
            target: task.target.clone(),
            nocache: self.options.nocache,
            pull: self.options.pull,
            cache_from,
            platform,
            extra_hosts: task.extra_hosts.clone(),
            network_mode: None,
            plain_progress: self.options.plain_progress,
            registry_auth: self.auth.clone(),
            timeout: self.options.timeout,
            daemon: self.options.daemon.clone(),
            ..build::BuildOptions::default()
        }
    }

    /// The flags BuildKit's `RUN`s get that the user did not write (secret mounts, the
    /// rewrite's qemu mount), each with its trailing space, as they appear in step texts.
    fn added_run_flags(&self, task: &BuildTask) -> Vec<String> {
        let mut flags: Vec<String> = task
            .secrets
            .ids()
            .map(|id| format!("{} ", dockerfile::secret_mount_flag(id)))
            .collect();
        if let Emulation::Rewrite {
            options: rewrite, ..
        } = &self.plan.emulation
            && task.transposed
        {
            flags.push(format!("{} ", rewrite.qemu_mount_flag()));
        }
        flags
    }

    /// Passes a build's events on as progress, and into `log`: the daemon's platform warning
    /// once, secrets redacted and our flags hidden, emulation noise filtered.
    async fn forward_build(
        &self,
        rx: &mut mpsc::Receiver<build::BuildEvent>,
        redactor: &build::Redactor,
        added_flags: &[String],
        mut filter: Option<&mut BuildOutput>,
        log: &mut String,
    ) {
        // The daemon repeats its platform warning at every step of a foreign build: the first
        // says it all.
        let mut platform_warned = false;
        while let Some(mut event) = rx.recv().await {
            if let build::BuildEvent::Output { line } = &event
                && emulate::is_platform_mismatch_warning(line)
            {
                if platform_warned {
                    continue;
                }
                platform_warned = true;
            }
            if !redactor.is_empty() || !added_flags.is_empty() {
                event = hide_secrets(event, redactor, added_flags);
            }
            if let Some(filter) = filter.as_deref_mut() {
                event = filter_event(filter, event);
            }
            match &event {
                build::BuildEvent::Output { line } => append_log(log, line),
                build::BuildEvent::Step {
                    index,
                    total,
                    instruction,
                } => append_log(log, &format!("Step {index}/{total} : {instruction}")),
                _ => {}
            }
            self.send(Event::Progress {
                service: self.service.to_owned(),
                event,
            })
            .await;
        }
    }

    /// The `platform` of a build, as the reference decides it (toolkit.md §6.10), with the
    /// reference's race fixed (we decide after resolution, from the rendered Dockerfile):
    /// none on the daemon's own arch; always with binfmt emulation (the `FROM` images must be
    /// the target's); otherwise only when every base image the daemon can look up is a
    /// manifest list, so single-arch local bases keep working.
    async fn build_platform(&self, task: &BuildTask) -> Option<String> {
        if !self.foreign() {
            return None;
        }
        let platform = self.plan.arch.docker_platform().to_owned();
        // The same rule under binfmt_misc as under the rewrite: a platform given to the
        // classic builder also binds `COPY --from` a `$BUILDPLATFORM` stage, which it then
        // refuses ("does not match the specified platform").
        let references = dockerfile::base_images(&task.resolved.contents);
        let mut manifests = Vec::new();
        for reference in &references {
            let manifest =
                build::inspect_manifest(self.docker, reference, self.auth.for_image(reference))
                    .await
                    .ok();
            manifests.push((reference.as_str(), manifest));
        }
        match build::select_platform_handling(manifests.iter().map(|(r, m)| (*r, m.as_ref()))) {
            build::PlatformSelection::Use => Some(platform),
            build::PlatformSelection::DoNotUse => None,
            build::PlatformSelection::Mixed { with, without } => {
                self.send(Event::Warning {
                    service: self.service.to_owned(),
                    message: build::mixed_platform_warning(self.service, &with, &without),
                })
                .await;
                None
            }
        }
    }
}

/// Builds `task` with `sent` as its Dockerfile; once more if BuildKit lost the build.
async fn build_once_more_after_a_race(
    docker: &build::Docker,
    task: &BuildTask,
    sent: String,
    options: &build::BuildOptions,
    tx: mpsc::Sender<build::BuildEvent>,
) -> build::Result<build::Built> {
    let body = task.context_body_with(Some(sent.as_str()));
    let mut result = build::build_image(docker, body, options, &tx).await;
    if result
        .as_ref()
        .is_err_and(build::Error::is_buildkit_scheduler_race)
    {
        // Docker 20.10's BuildKit can lose one of several identical concurrent builds;
        // nothing was built, and once is enough to say so.
        let line = "BuildKit lost this build (a race between identical builds running \
                    at once); building it again"
            .to_owned();
        let _ = tx.send(build::BuildEvent::Output { line }).await;
        let body = task.context_body_with(Some(sent.as_str()));
        result = build::build_image(docker, body, options, &tx).await;
    }
    drop(tx);
    result
}
