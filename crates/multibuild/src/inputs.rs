//! A build's inputs, recorded on its image as labels, and the decision whether an image on the
//! daemon can stand in for a build: `build`'s no-op path and what `deploy` reuses.
//!
//! The inputs digest is a sha256 over the target arch, the Dockerfile as sent
//! (rendered, and transposed when emulating), the context tar exactly as sent (streamed through
//! the hasher, never held), the build args, target stage and labels, and the local image id of
//! every base image. Build secrets are left out on purpose: even a hash of a secret in a label
//! would let anyone who can read the image check a guess of it. After changing a secret, build
//! with `--nocache`. A base image that is not on the daemon means "build" (there is no id to
//! record); its image gets no inputs label and the next build records them.
//!
//! The builder (BuildKit or classic) is not part of the digest either: from the same inputs
//! both make the same filesystem and settings, so an image of one stands in for a build on the
//! other (switching with `DOCKER_BUILDKIT=0` does not rebuild; `--nocache` does). Where the
//! builders need different Dockerfiles (a rewrite's bind-mounted qemu, secret mounts), the
//! Dockerfile as sent differs, and so does the digest.
//!
//! The device type is recorded (a label) but not part of the digest: it acts on the image only
//! through the Dockerfile it picks and renders, which are hashed. With it in, `build --arch
//! amd64` (device type `generic-amd64`) followed by a deploy to an `intel-nuc` fleet would
//! rebuild an identical image.

use std::collections::HashMap;
use std::io::{self, Write};

use bollard::Docker;
use indexmap::IndexMap;
use platform::Arch;

use crate::plan::BuildTask;

/// The label holding the digest over every input of the build.
pub const INPUTS_LABEL: &str = "io.balena-compose.inputs";
/// The label holding the balena architecture the image was built for.
pub const ARCH_LABEL: &str = "io.balena-compose.arch";
/// The label holding the device type the image was built for.
pub const DEVICE_TYPE_LABEL: &str = "io.balena-compose.device-type";
/// Prefix of the per-part digests, so that a mismatch can say which input changed.
const PART_LABEL_PREFIX: &str = "io.balena-compose.inputs.";

/// Which images may stand in for a build.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Reuse {
    /// Build every service (`--nocache`, `--pull`, `deploy --build`).
    #[default]
    Never,
    /// An image whose recorded inputs equal this build's (`build`'s no-op path).
    Matching,
    /// As `Matching`, and an image without input labels whose platform is the target's, and
    /// an already present image of a pulled service of the target's platform (`deploy`).
    MatchingOrPlatform,
}

/// The inputs of one service's build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inputs {
    arch: Arch,
    device_type: String,
    /// (part name, hex sha256), in a fixed order.
    parts: Vec<(&'static str, String)>,
    digest: String,
}

impl Inputs {
    /// The labels to put on the image.
    pub fn labels(&self) -> IndexMap<String, String> {
        let mut labels = IndexMap::new();
        labels.insert(INPUTS_LABEL.to_owned(), self.digest.clone());
        labels.insert(ARCH_LABEL.to_owned(), self.arch.slug().to_owned());
        labels.insert(DEVICE_TYPE_LABEL.to_owned(), self.device_type.clone());
        for (part, hex) in &self.parts {
            labels.insert(format!("{PART_LABEL_PREFIX}{part}"), hex.clone());
        }
        labels
    }

    /// Records these inputs on the image `options` builds from `dockerfile`: as one `LABEL`
    /// instruction appended to the Dockerfile (returned, to send instead) for the classic
    /// builder, which otherwise adds one step (one layer commit, about a second on vfs) per
    /// label; in `options.labels` for BuildKit (no steps there), a `target` stage (the last
    /// stage is not the one built) or a Dockerfile ending in a line continuation.
    pub fn label_into(
        &self,
        options: &mut build::BuildOptions,
        dockerfile: &str,
        targeted: bool,
    ) -> Option<String> {
        let continued = dockerfile.trim_end().ends_with(['\\', '`']);
        if targeted || continued || options.builder == build::Builder::BuildKit {
            options.labels.extend(self.labels());
            return None;
        }
        let pairs: Vec<String> = self
            .labels()
            .iter()
            .map(|(k, v)| {
                format!(
                    "{}={}",
                    serde_json::Value::from(k.as_str()),
                    serde_json::Value::from(v.as_str())
                )
            })
            .collect();
        Some(format!(
            "{}\nLABEL {}\n",
            dockerfile.trim_end_matches('\n'),
            pairs.join(" ")
        ))
    }

    /// `None` when `labels` record these inputs; otherwise why not, for the user.
    fn difference(&self, labels: &HashMap<String, String>) -> Option<String> {
        let recorded_arch = labels.get(ARCH_LABEL).map_or("none", String::as_str);
        if recorded_arch != self.arch.slug() {
            return Some(format!("arch {recorded_arch} ≠ {}", self.arch.slug()));
        }
        if labels.get(INPUTS_LABEL) == Some(&self.digest) {
            return None;
        }
        let changed: Vec<&str> = self
            .parts
            .iter()
            .filter(|(part, hex)| labels.get(&format!("{PART_LABEL_PREFIX}{part}")) != Some(hex))
            .map(|(part, _)| *part)
            .collect();
        Some(if changed.is_empty() {
            "inputs digest".to_owned()
        } else {
            changed.join(", ")
        })
    }
}

/// A `Write` that hashes what goes through it and keeps nothing.
struct HashingWriter(ring::digest::Context);

impl Write for HashingWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn sha256_hex(parts: &[&[u8]]) -> String {
    let mut context = ring::digest::Context::new(&ring::digest::SHA256);
    for part in parts {
        // Length-prefixed, so that moving bytes from one part to the next changes the digest.
        context.update(&(part.len() as u64).to_le_bytes());
        context.update(part);
    }
    hex::encode(context.finish())
}

/// Sorted `key=value` lines, length-prefixed by [`sha256_hex`].
fn map_digest<'a>(map: impl Iterator<Item = (&'a String, &'a String)>) -> String {
    let mut pairs: Vec<(&String, &String)> = map.collect();
    pairs.sort();
    let flat: Vec<&[u8]> = pairs
        .iter()
        .flat_map(|(k, v)| [k.as_bytes(), v.as_bytes()])
        .collect();
    sha256_hex(&flat)
}

/// Computes the inputs of `task` built with `dockerfile` (what is sent) for `arch` and
/// `device_type`. `Err` says why there are none (a base image missing, the context
/// unreadable): the service is then built.
pub(crate) async fn compute(
    docker: &Docker,
    task: &BuildTask,
    dockerfile: &str,
    arch: Arch,
    device_type: &str,
) -> Result<Inputs, String> {
    let mut base_ids = Vec::new();
    for base in dockerfile::base_images(&task.resolved.contents) {
        let id = docker
            .inspect_image(&base)
            .await
            .ok()
            .and_then(|i| i.id)
            .ok_or_else(|| format!("base image {base} is not on the daemon"))?;
        base_ids.push(format!("{base}={id}"));
    }
    let base_refs: Vec<&[u8]> = base_ids.iter().map(|s| s.as_bytes()).collect();
    let (context, overrides) = task.context_with(Some(dockerfile));
    // A pass over the context's bytes: off the async threads.
    let context_hex = tokio::task::spawn_blocking(move || {
        let mut hasher = HashingWriter(ring::digest::Context::new(&ring::digest::SHA256));
        context
            .write_tar(&overrides, &mut hasher)
            .map(|_| hex::encode(hasher.0.finish()))
            .map_err(|e| format!("reading the build context: {e}"))
    })
    .await
    .map_err(|e| format!("hashing the build context: {e}"))??;
    let options = sha256_hex(&[
        task.target.as_deref().unwrap_or_default().as_bytes(),
        map_digest(task.labels.iter()).as_bytes(),
        task.extra_hosts.join("\n").as_bytes(),
    ]);
    let parts = vec![
        ("dockerfile", sha256_hex(&[dockerfile.as_bytes()])),
        ("context", context_hex),
        ("build-args", map_digest(task.build_args.iter())),
        ("base-images", sha256_hex(&base_refs)),
        ("options", options),
    ];
    let mut all: Vec<&[u8]> = vec![arch.slug().as_bytes()];
    for (part, hex) in &parts {
        all.push(part.as_bytes());
        all.push(hex.as_bytes());
    }
    let digest = sha256_hex(&all);
    Ok(Inputs {
        arch,
        device_type: device_type.to_owned(),
        parts,
        digest,
    })
}

/// What to do with a service given what is on the daemon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Use the image as it is: the message says why (`reusing <image> (…)`).
    Reuse {
        /// The image id.
        id: String,
        /// The image size.
        size: Option<u64>,
        /// For the user.
        message: String,
    },
    /// Build (or pull): the message says why (`building <service> (…)`).
    Build {
        /// For the user.
        message: String,
    },
}

/// Whether the image `name` on the daemon can stand in for building `service` with `inputs`
/// (`Err`: the inputs could not be computed, and why).
pub async fn decide_build(
    docker: &Docker,
    reuse: Reuse,
    service: &str,
    name: &str,
    inputs: &Result<Inputs, String>,
    arch: Arch,
) -> Decision {
    let build = |why: String| Decision::Build {
        message: format!("building {service} ({why})"),
    };
    let Ok(image) = docker.inspect_image(name).await else {
        return build("no image".to_owned());
    };
    let labels = image
        .config
        .as_ref()
        .and_then(|c| c.labels.clone())
        .unwrap_or_default();
    let reused = |note: &str| Decision::Reuse {
        id: image.id.clone().unwrap_or_default(),
        size: image.size.and_then(|s| u64::try_from(s).ok()),
        message: format!("reusing {name} ({note})"),
    };
    if !labels.contains_key(INPUTS_LABEL) {
        let platform = image_platform(&image);
        return match reuse {
            Reuse::MatchingOrPlatform if platform_matches(&platform, arch) => reused(&format!(
                "no build labels, platform {platform} matches; build with --build to record its inputs"
            )),
            _ if reuse == Reuse::MatchingOrPlatform => build(format!(
                "no build labels and platform {platform} differs from {}",
                arch.docker_platform()
            )),
            _ => build("no build labels".to_owned()),
        };
    }
    match inputs {
        Err(why) => build(why.clone()),
        Ok(inputs) => match inputs.difference(&labels) {
            None => reused("inputs match"),
            Some(why) => build(format!("inputs differ: {why}")),
        },
    }
}

/// Whether the already present image `name` of a pulled service is of the target's platform
/// (`deploy` does not pull it again then).
pub async fn decide_pull(docker: &Docker, service: &str, name: &str, arch: Arch) -> Decision {
    let Ok(image) = docker.inspect_image(name).await else {
        return Decision::Build {
            message: format!("pulling {name} for {service} (not on the daemon)"),
        };
    };
    let platform = image_platform(&image);
    if platform_matches(&platform, arch) {
        Decision::Reuse {
            id: image.id.clone().unwrap_or_default(),
            size: image.size.and_then(|s| u64::try_from(s).ok()),
            message: format!("reusing {name} (platform {platform} matches)"),
        }
    } else {
        Decision::Build {
            message: format!(
                "pulling {name} for {service} (the local image's platform {platform} differs from {})",
                arch.docker_platform()
            ),
        }
    }
}

fn image_platform(image: &bollard::models::ImageInspect) -> String {
    let mut platform = format!(
        "{}/{}",
        image.os.as_deref().unwrap_or("linux"),
        image.architecture.as_deref().unwrap_or("unknown")
    );
    if let Some(variant) = image.variant.as_deref().filter(|v| !v.is_empty()) {
        platform.push('/');
        platform.push_str(variant);
    }
    platform
}

/// An image's `os/arch[/variant]` is the target's; a missing variant is not held against it
/// (images built under emulation often record none).
fn platform_matches(platform: &str, arch: Arch) -> bool {
    let want = arch.docker_platform();
    platform == want || want.starts_with(&format!("{platform}/"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn inputs(arch: Arch) -> Inputs {
        Inputs {
            arch,
            device_type: "intel-nuc".to_owned(),
            parts: vec![
                ("dockerfile", "d1".to_owned()),
                ("context", "c1".to_owned()),
            ],
            digest: "all1".to_owned(),
        }
    }

    #[test]
    fn the_difference_names_what_changed() {
        let built = inputs(Arch::Amd64);
        let labels: HashMap<String, String> = built.labels().into_iter().collect();
        assert_eq!(built.difference(&labels), None);
        assert_eq!(
            inputs(Arch::Aarch64).difference(&labels).as_deref(),
            Some("arch amd64 ≠ aarch64")
        );
        let mut changed = inputs(Arch::Amd64);
        changed.parts[1].1 = "c2".to_owned();
        changed.digest = "all2".to_owned();
        assert_eq!(changed.difference(&labels).as_deref(), Some("context"));
    }

    #[test]
    fn the_classic_builder_gets_one_label_instruction_and_the_others_labels() {
        let inputs = inputs(Arch::Amd64);
        let mut options = build::BuildOptions::default();
        let sent = inputs
            .label_into(&mut options, "FROM a\nCMD [\"x\"]\n", false)
            .unwrap();
        let added: Vec<&str> = sent.lines().skip(2).collect();
        assert_eq!(added.len(), 1, "{sent}");
        assert!(
            added[0].starts_with("LABEL \"io.balena-compose.inputs\"=\"all1\" "),
            "{sent}"
        );
        assert!(options.labels.is_empty());
        for (dockerfile, targeted) in [("FROM a\n", true), ("FROM a\nRUN x \\\n", false)] {
            let mut options = build::BuildOptions::default();
            assert_eq!(inputs.label_into(&mut options, dockerfile, targeted), None);
            assert_eq!(options.labels, inputs.labels());
        }
        let mut options = build::BuildOptions {
            builder: build::Builder::BuildKit,
            ..build::BuildOptions::default()
        };
        assert_eq!(inputs.label_into(&mut options, "FROM a\n", false), None);
        assert_eq!(options.labels.len(), 5);
    }

    #[test]
    fn a_missing_variant_still_matches_but_another_arch_does_not() {
        assert!(platform_matches("linux/arm", Arch::Armv7hf));
        assert!(platform_matches("linux/amd64", Arch::Amd64));
        assert!(!platform_matches("linux/arm64", Arch::Amd64));
        assert!(!platform_matches("linux/arm/v6", Arch::Armv7hf));
    }

    #[test]
    fn map_digests_ignore_order_but_not_values() {
        let a = [
            ("A".to_owned(), "1".to_owned()),
            ("B".to_owned(), "2".to_owned()),
        ];
        let b = [
            ("B".to_owned(), "2".to_owned()),
            ("A".to_owned(), "1".to_owned()),
        ];
        let c = [
            ("A".to_owned(), "12".to_owned()),
            ("B".to_owned(), String::new()),
        ];
        let digest = |m: &[(String, String)]| map_digest(m.iter().map(|(k, v)| (k, v)));
        assert_eq!(digest(&a), digest(&b));
        assert_ne!(digest(&a), digest(&c));
    }
}
