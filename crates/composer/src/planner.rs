//! The pure step planner (spec §2): given the current and target app and what is known about
//! images and locks, emit the next batch of safe steps. The caller applies the batch and plans
//! again until the batch is empty.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::model::{AppState, Network, Service, ServiceStatus, Strategy, Volume};

/// One action on the engine or on the locks.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "action", rename_all = "camelCase")]
pub enum Step {
    /// Pull an image (no lock needed).
    Fetch {
        /// The service it is for.
        service: String,
        /// The image reference.
        image: String,
    },
    /// Stop and remove a container.
    Kill {
        /// The current service.
        current: Box<Service>,
    },
    /// Stop a container without removing it.
    Stop {
        /// The current service.
        current: Box<Service>,
    },
    /// Remove a dead container.
    Remove {
        /// The current service.
        current: Box<Service>,
    },
    /// Create (unless `container_id` is set) and start a container.
    Start {
        /// The target service.
        target: Box<Service>,
        /// An existing container with an equal config to start instead of creating one.
        container_id: Option<String>,
    },
    /// Rename a container for a new release whose config is unchanged.
    UpdateMetadata {
        /// The current service.
        current: Box<Service>,
        /// The target service.
        target: Box<Service>,
    },
    /// Start the target next to the current container, then kill the current one when it
    /// signals hand-over completion or on timeout.
    Handover {
        /// The current service.
        current: Box<Service>,
        /// The target service.
        target: Box<Service>,
    },
    /// Take the update locks of these services (all services of the app).
    TakeLock {
        /// Service names.
        services: Vec<String>,
    },
    /// Release the locks taken, and leftover locks of ours.
    ReleaseLock,
    /// Create a network.
    CreateNetwork {
        /// The network.
        network: Network,
    },
    /// Remove a network.
    RemoveNetwork {
        /// The network.
        network: Network,
    },
    /// Create a volume.
    CreateVolume {
        /// The volume.
        volume: Volume,
    },
    /// Remove a volume.
    RemoveVolume {
        /// The volume.
        volume: Volume,
    },
    /// Remove an image the composer pulled and nothing uses any more.
    RemoveImage {
        /// The image reference.
        image: String,
    },
    /// Nothing to do now; something is in flight or waiting.
    Noop,
}

impl Step {
    /// The step's action name, as in the reference (`fetch`, `kill`, `takeLock`, …).
    pub fn action(&self) -> &'static str {
        match self {
            Step::Fetch { .. } => "fetch",
            Step::Kill { .. } => "kill",
            Step::Stop { .. } => "stop",
            Step::Remove { .. } => "remove",
            Step::Start { .. } => "start",
            Step::UpdateMetadata { .. } => "updateMetadata",
            Step::Handover { .. } => "handover",
            Step::TakeLock { .. } => "takeLock",
            Step::ReleaseLock => "releaseLock",
            Step::CreateNetwork { .. } => "createNetwork",
            Step::RemoveNetwork { .. } => "removeNetwork",
            Step::CreateVolume { .. } => "createVolume",
            Step::RemoveVolume { .. } => "removeVolume",
            Step::RemoveImage { .. } => "removeImage",
            Step::Noop => "noop",
        }
    }

    /// The object the step acts on: a service, network, volume or image name.
    pub fn subject(&self) -> String {
        match self {
            Step::Fetch { service, .. } => service.clone(),
            Step::Kill { current } | Step::Stop { current } | Step::Remove { current } => {
                current.name.clone()
            }
            Step::Start { target, .. } => target.name.clone(),
            Step::UpdateMetadata { target, .. } | Step::Handover { target, .. } => {
                target.name.clone()
            }
            Step::TakeLock { services } => services.join(","),
            Step::CreateNetwork { network } | Step::RemoveNetwork { network } => {
                network.name.clone()
            }
            Step::CreateVolume { volume } | Step::RemoveVolume { volume } => volume.name.clone(),
            Step::RemoveImage { image } => image.clone(),
            Step::ReleaseLock | Step::Noop => String::new(),
        }
    }
}

/// An image the composer pulled for a service of the app and that no container uses now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnusedImage {
    /// The service it was pulled for.
    pub service: String,
    /// The image reference.
    pub image: String,
}

/// What the planner knows besides the two states.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlanContext {
    /// Target image references present on the engine.
    pub available_images: BTreeSet<String>,
    /// Image references being fetched right now.
    pub downloading: BTreeSet<String>,
    /// Whether this update holds the app's locks.
    pub lock_held: bool,
    /// Whether lockfiles of ours are left over (e.g. from a crash).
    pub leftover_locks: bool,
    /// Images pulled by the composer that no current container uses and the target does not
    /// name: removal candidates, unless kept as delta sources.
    pub unused_images: Vec<UnusedImage>,
}

/// Plans the next steps from `current` to `target` (spec §2.1 phases 2–3, §2.2).
pub fn plan(current: &AppState, target: &AppState, ctx: &PlanContext) -> Vec<Step> {
    let images = image_cleanup(Some(target), ctx);
    if !images.is_empty() {
        return images;
    }
    Planner::new(current, target, ctx).run()
}

/// Plans the removal of the whole app: lock, kill every container, remove networks, then
/// volumes (unless `keep_volumes`), then release the locks (spec §2.2 `stepsToRemoveApp`).
pub fn plan_removal(current: &AppState, ctx: &PlanContext, keep_volumes: bool) -> Vec<Step> {
    let images = image_cleanup(None, ctx);
    if !images.is_empty() {
        return images;
    }
    if !current.services.is_empty() {
        if !ctx.lock_held {
            return vec![Step::TakeLock {
                services: names(current.services.iter()),
            }];
        }
        return current
            .services
            .iter()
            .map(|s| match s.status {
                ServiceStatus::Stopping => Step::Noop,
                _ => Step::Kill {
                    current: Box::new(s.clone()),
                },
            })
            .collect();
    }
    if !current.networks.is_empty() {
        return current
            .networks
            .iter()
            .map(|n| Step::RemoveNetwork { network: n.clone() })
            .collect();
    }
    if !keep_volumes && !current.volumes.is_empty() {
        return current
            .volumes
            .iter()
            .map(|v| Step::RemoveVolume { volume: v.clone() })
            .collect();
    }
    if ctx.lock_held || ctx.leftover_locks {
        return vec![Step::ReleaseLock];
    }
    Vec::new()
}

fn names<'a>(services: impl Iterator<Item = &'a Service>) -> Vec<String> {
    let set: BTreeSet<String> = services.map(|s| s.name.clone()).collect();
    set.into_iter().collect()
}

/// Phase 2: remove images nothing needs, only while nothing downloads. An unused image of a
/// service whose new image still has to be fetched is kept as delta source, except with
/// `delete-then-download`.
fn image_cleanup(target: Option<&AppState>, ctx: &PlanContext) -> Vec<Step> {
    if !ctx.downloading.is_empty() {
        return Vec::new();
    }
    let delta_source_services: BTreeSet<&str> = target
        .map(|t| {
            t.services
                .iter()
                .filter(|s| {
                    !ctx.available_images.contains(&s.image_name)
                        && s.strategy() != Strategy::DeleteThenDownload
                })
                .map(|s| s.name.as_str())
                .collect()
        })
        .unwrap_or_default();
    let mut seen = BTreeSet::new();
    ctx.unused_images
        .iter()
        .filter(|i| !delta_source_services.contains(i.service.as_str()))
        .filter(|i| seen.insert(i.image.clone()))
        .map(|i| Step::RemoveImage {
            image: i.image.clone(),
        })
        .collect()
}

struct Planner<'a> {
    current: &'a AppState,
    target: &'a AppState,
    ctx: &'a PlanContext,
    /// Engine names of current networks/volumes being removed or recreated.
    changing_networks: BTreeSet<String>,
    changing_volumes: BTreeSet<String>,
    /// Engine names of target networks/volumes not created yet.
    missing_networks: BTreeSet<String>,
    missing_volumes: BTreeSet<String>,
    /// Names of services in a pair with a target that still changes.
    changing_services: BTreeSet<String>,
    lock_needed: bool,
}

type Pair<'a> = (Option<&'a Service>, Option<&'a Service>);

impl<'a> Planner<'a> {
    fn new(current: &'a AppState, target: &'a AppState, ctx: &'a PlanContext) -> Self {
        Self {
            current,
            target,
            ctx,
            changing_networks: BTreeSet::new(),
            changing_volumes: BTreeSet::new(),
            missing_networks: BTreeSet::new(),
            missing_volumes: BTreeSet::new(),
            changing_services: BTreeSet::new(),
            lock_needed: false,
        }
    }

    fn all_images_ready(&self) -> bool {
        self.target
            .services
            .iter()
            .all(|s| self.ctx.available_images.contains(&s.image_name))
    }

    fn needs_download(&self, target: Option<&Service>) -> bool {
        target.is_some_and(|t| !self.ctx.available_images.contains(&t.image_name))
    }

    fn run(mut self) -> Vec<Step> {
        let mut steps: Vec<Step> = self
            .current
            .services
            .iter()
            .filter(|s| s.status == ServiceStatus::Dead)
            .map(|s| Step::Remove {
                current: Box::new(s.clone()),
            })
            .collect();
        let (network_removes, network_creates) = self.compare_networks();
        let (volume_removes, volume_creates) = self.compare_volumes();
        let pairs = self.compare_services();
        let mut service_steps = Vec::new();
        for pair in &pairs {
            service_steps.extend(self.steps_for_service(*pair));
        }
        if self.lock_needed && !self.ctx.lock_held {
            let all = names(
                self.current
                    .services
                    .iter()
                    .chain(self.target.services.iter()),
            );
            steps.push(Step::TakeLock { services: all });
        }
        steps.extend(service_steps);
        let in_use = |pred: &dyn Fn(&Service) -> bool| self.current.services.iter().any(pred);
        for v in volume_removes {
            if !in_use(&|s| s.uses_volume(&v.docker_name)) {
                steps.push(Step::RemoveVolume { volume: v.clone() });
            }
        }
        steps.extend(
            volume_creates
                .into_iter()
                .map(|v| Step::CreateVolume { volume: v.clone() }),
        );
        for n in network_removes {
            if !in_use(&|s| s.uses_network(&n.docker_name)) {
                steps.push(Step::RemoveNetwork { network: n.clone() });
            }
        }
        steps.extend(
            network_creates
                .into_iter()
                .map(|n| Step::CreateNetwork { network: n.clone() }),
        );
        if steps.is_empty() && (self.ctx.lock_held || self.ctx.leftover_locks) {
            steps.push(Step::ReleaseLock);
        }
        steps
    }

    /// Networks: changed → remove (create later); absent from the target or duplicated →
    /// remove; missing → create.
    fn compare_networks(&mut self) -> (Vec<&'a Network>, Vec<&'a Network>) {
        let mut removes = Vec::new();
        let mut creates = Vec::new();
        let mut seen = BTreeSet::new();
        for c in &self.current.networks {
            let duplicate = !seen.insert(c.name.as_str());
            let target = self.target.networks.iter().find(|t| t.name == c.name);
            let differs = target.is_none_or(|t| !c.config.is_equal(&t.config));
            if duplicate || differs {
                self.changing_networks.insert(c.docker_name.clone());
                removes.push(c);
            }
        }
        for t in &self.target.networks {
            if !self.current.networks.iter().any(|c| c.name == t.name) {
                self.missing_networks.insert(t.docker_name.clone());
                creates.push(t);
            } else if self.changing_networks.contains(&t.docker_name) {
                self.missing_networks.insert(t.docker_name.clone());
            }
        }
        (removes, creates)
    }

    /// Volumes: changed → remove (create later); missing → create; never removed for being
    /// absent from the target.
    fn compare_volumes(&mut self) -> (Vec<&'a Volume>, Vec<&'a Volume>) {
        let mut removes = Vec::new();
        let mut creates = Vec::new();
        for t in &self.target.volumes {
            match self.current.volumes.iter().find(|c| c.name == t.name) {
                None => {
                    self.missing_volumes.insert(t.docker_name.clone());
                    creates.push(t);
                }
                Some(c) if c.config != t.config => {
                    self.changing_volumes.insert(c.docker_name.clone());
                    self.missing_volumes.insert(t.docker_name.clone());
                    removes.push(c);
                }
                Some(_) => {}
            }
        }
        (removes, creates)
    }

    fn needs_special_kill(&self, s: &Service) -> bool {
        self.changing_networks.iter().any(|n| s.uses_network(n))
            || self.changing_volumes.iter().any(|v| s.uses_volume(v))
    }

    fn compare_services(&mut self) -> Vec<Pair<'a>> {
        let mut by_name: BTreeMap<&str, Vec<&'a Service>> = BTreeMap::new();
        for s in &self.current.services {
            by_name.entry(s.name.as_str()).or_default().push(s);
        }
        let mut pairs: Vec<Pair<'a>> = Vec::new();
        let mut kept: BTreeMap<&str, &'a Service> = BTreeMap::new();
        for (name, mut list) in by_name {
            // The newest container of a name is current; older ones are spurious.
            list.sort_by(|a, b| b.created_at.cmp(&a.created_at));
            let mut it = list.into_iter();
            if let Some(newest) = it.next() {
                kept.insert(name, newest);
            }
            // A dead container already has its remove step.
            pairs.extend(
                it.filter(|o| o.status != ServiceStatus::Dead)
                    .map(|old| (Some(old), None)),
            );
        }
        for (name, c) in &kept {
            match self.target.services.iter().find(|t| t.name == *name) {
                None => pairs.push((Some(*c), None)),
                Some(t) => {
                    let equal = c.config.is_equal(&t.config) && c.commit == t.commit;
                    if !equal
                        || should_be_started(c, t)
                        || (!t.config.running && c.config.running)
                        || self.needs_special_kill(c)
                    {
                        if !equal || self.needs_special_kill(c) {
                            self.changing_services.insert(t.name.clone());
                        }
                        pairs.push((Some(*c), Some(t)));
                    }
                }
            }
        }
        for t in &self.target.services {
            if !kept.contains_key(t.name.as_str()) {
                self.changing_services.insert(t.name.clone());
                pairs.push((None, Some(t)));
            }
        }
        pairs
    }

    fn lock_then(&mut self, step: Step) -> Vec<Step> {
        if self.ctx.lock_held {
            vec![step]
        } else {
            self.lock_needed = true;
            Vec::new()
        }
    }

    fn dependencies_met_for_start(&self, t: &Service) -> bool {
        let deps_ready = t.depends_on.iter().all(|dep| {
            let unstarted = self.current.services.iter().any(|c| {
                c.name == *dep
                    && matches!(
                        c.status,
                        ServiceStatus::Installing | ServiceStatus::Installed
                    )
            });
            !unstarted && !self.changing_services.contains(dep)
        });
        let networks_ready = !self.missing_networks.iter().any(|n| t.uses_network(n));
        let volumes_ready = !self.missing_volumes.iter().any(|v| t.uses_volume(v));
        deps_ready && networks_ready && volumes_ready && self.all_images_ready()
    }

    fn steps_for_service(&mut self, (current, target): Pair<'a>) -> Vec<Step> {
        if let Some(c) = current {
            match c.status {
                ServiceStatus::Stopping => return vec![Step::Noop],
                ServiceStatus::Dead => return Vec::new(),
                _ => {}
            }
        }
        let needs_download = self.needs_download(target);
        if let Some(t) = target
            && needs_download
            && self.ctx.downloading.contains(&t.image_name)
        {
            return vec![Step::Noop];
        }
        let fetch = |t: &Service| Step::Fetch {
            service: t.name.clone(),
            image: t.image_name.clone(),
        };
        let Some(c) = current else {
            let Some(t) = target else { return Vec::new() };
            if needs_download {
                return vec![fetch(t)];
            }
            if self.dependencies_met_for_start(t) {
                return self.lock_then(Step::Start {
                    target: Box::new(t.clone()),
                    container_id: None,
                });
            }
            return vec![Step::Noop];
        };
        let special_kill = self.needs_special_kill(c);
        if let Some(t) = target
            && !special_kill
            && c.config.is_equal(&t.config)
        {
            if c.commit != t.commit {
                if t.strategy() == Strategy::DownloadThenKill && !self.all_images_ready() {
                    return vec![Step::Noop];
                }
                return self.lock_then(Step::UpdateMetadata {
                    current: Box::new(c.clone()),
                    target: Box::new(t.clone()),
                });
            }
            if should_be_started(c, t) {
                return vec![Step::Start {
                    target: Box::new(t.clone()),
                    container_id: c.container_id.clone(),
                }];
            }
            if !t.config.running && c.config.running {
                return self.lock_then(Step::Stop {
                    current: Box::new(c.clone()),
                });
            }
            return Vec::new();
        }
        let kill = Step::Kill {
            current: Box::new(c.clone()),
        };
        let strategy = target.unwrap_or(c).strategy();
        match strategy {
            Strategy::DownloadThenKill => {
                if let Some(t) = target.filter(|_| needs_download) {
                    vec![fetch(t)]
                } else if self.all_images_ready() {
                    self.lock_then(kill)
                } else {
                    vec![Step::Noop]
                }
            }
            Strategy::KillThenDownload | Strategy::DeleteThenDownload => self.lock_then(kill),
            Strategy::HandOver => match target {
                Some(t) if needs_download => vec![fetch(t)],
                Some(t) if !special_kill => {
                    if self.dependencies_met_for_start(t) {
                        // The reference hands over without the lock (spec §7.4): we take it.
                        self.lock_then(Step::Handover {
                            current: Box::new(c.clone()),
                            target: Box::new(t.clone()),
                        })
                    } else {
                        vec![Step::Noop]
                    }
                }
                _ if self.all_images_ready() => self.lock_then(kill),
                _ => vec![Step::Noop],
            },
        }
    }
}

/// A container that never started (or failed on a host interface that did not exist yet) and
/// should run; an exited container is left to the engine's restart policy.
fn should_be_started(c: &Service, t: &Service) -> bool {
    if !t.config.running || c.config.running {
        return false;
    }
    match c.status {
        ServiceStatus::Installing | ServiceStatus::Installed => true,
        ServiceStatus::Exited => c.exit_error.as_deref().is_some_and(|e| {
            let e = e.to_lowercase();
            e.contains("userland proxy") && e.ends_with("cannot assign requested address")
        }),
        _ => false,
    }
}

#[cfg(test)]
#[path = "planner_tests.rs"]
mod tests;
