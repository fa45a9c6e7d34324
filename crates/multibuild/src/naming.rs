//! Image names, as the balena CLI gives them (balena-cli.md §2.8).

/// `<project>_<service>[:<tag>]`, lower-cased, with `:` in the parts replaced by `_`.
///
/// The reference lower-cases the tag too; a Docker tag may hold upper case, but matching the
/// reference keeps images from both tools interchangeable.
pub fn image_name(project: &str, service: &str, tag: Option<&str>) -> String {
    let repo = format!("{project}_{service}").replace(':', "_");
    match tag {
        Some(tag) => format!("{repo}:{}", tag.replace(':', "_")),
        None => repo,
    }
    .to_lowercase()
}

/// What tells one target's images from another's when a run builds for several `targets`
/// (`build --arch a --arch b`, `deploy` to fleets of several architectures): `None` for a
/// run with one target (names stay as they are); else the target's architecture, or its
/// device type when another target shares that architecture (device type slugs are unique,
/// so two targets never get the same suffix).
pub fn target_suffix(target: &platform::Target, targets: &[platform::Target]) -> Option<String> {
    let distinct = |t: &&platform::Target| *t != target;
    let others: Vec<&platform::Target> = targets.iter().filter(distinct).collect();
    if others.is_empty() {
        return None;
    }
    if others.iter().any(|other| other.arch == target.arch) {
        Some(target.device_type.clone())
    } else {
        Some(target.arch.to_string())
    }
}

/// The `<tag>` of a target's images: `<tag>-<suffix>` (`latest-<suffix>` without a tag), or
/// the tag as given when there is no suffix (see [`target_suffix`]). With it,
/// [`image_name`] gives `<project>_<service>:<tag>-<arch>`.
pub fn target_tag(tag: Option<&str>, suffix: Option<&str>) -> Option<String> {
    match suffix {
        None => tag.map(str::to_owned),
        Some(suffix) => Some(format!("{}-{suffix}", tag.unwrap_or("latest"))),
    }
}

/// A project name (`-p`, or the base name of the real path as the reference takes it) made
/// into a valid repository component: lower case, and any character Docker does
/// not allow in a repository name replaced by `_`. The reference does no sanitising and
/// produces invalid references for such directories.
pub fn project_name_from_dir(dir_name: &str) -> String {
    let name: String = dir_name
        .chars()
        .map(|c| match c {
            'a'..='z' | '0'..='9' | '.' | '-' | '_' => c,
            'A'..='Z' => c.to_ascii_lowercase(),
            _ => '_',
        })
        .collect();
    let trimmed = name.trim_matches(|c: char| !c.is_ascii_alphanumeric());
    if trimmed.is_empty() {
        "project".to_owned()
    } else {
        trimmed.to_owned()
    }
}

/// The reference with `:latest` added when it names no tag or digest, as the reference pulls.
pub fn with_default_tag(reference: &str) -> String {
    let last = reference.rsplit('/').next().unwrap_or(reference);
    if last.contains(':') || last.contains('@') {
        reference.to_owned()
    } else {
        format!("{reference}:latest")
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn names_as_the_balena_cli() {
        assert_eq!(image_name("basic", "main", None), "basic_main");
        assert_eq!(
            image_name("spectest", "service1", Some("myTag")),
            "spectest_service1:mytag"
        );
        assert_eq!(image_name("My:Proj", "svc", Some("a:b")), "my_proj_svc:a_b");
    }

    #[test]
    fn targets_get_a_suffix_only_when_there_are_several() {
        let target = |arch: &str, device_type: &str| platform::Target {
            arch: arch.parse().unwrap(),
            device_type: device_type.to_owned(),
        };
        let arm = target("aarch64", "generic-aarch64");
        let pi = target("aarch64", "raspberrypi4-64");
        let x86 = target("amd64", "generic-amd64");
        assert_eq!(target_suffix(&arm, std::slice::from_ref(&arm)), None);
        let two = [arm.clone(), x86.clone()];
        assert_eq!(target_suffix(&arm, &two).as_deref(), Some("aarch64"));
        assert_eq!(target_suffix(&x86, &two).as_deref(), Some("amd64"));
        // Two targets of one architecture: the device types tell them apart.
        let three = [arm.clone(), pi.clone(), x86.clone()];
        assert_eq!(
            target_suffix(&arm, &three).as_deref(),
            Some("generic-aarch64")
        );
        assert_eq!(
            target_suffix(&pi, &three).as_deref(),
            Some("raspberrypi4-64")
        );
        assert_eq!(target_suffix(&x86, &three).as_deref(), Some("amd64"));
        let tag = |tag, suffix| target_tag(tag, suffix);
        assert_eq!(tag(Some("v1"), Some("amd64")).as_deref(), Some("v1-amd64"));
        assert_eq!(tag(None, Some("amd64")).as_deref(), Some("latest-amd64"));
        assert_eq!(tag(Some("v1"), None).as_deref(), Some("v1"));
        assert_eq!(tag(None, None), None);
    }

    #[test]
    fn project_names_are_valid_references() {
        assert_eq!(project_name_from_dir("basic"), "basic");
        assert_eq!(project_name_from_dir("My Project"), "my_project");
        assert_eq!(project_name_from_dir("..."), "project");
    }

    #[test]
    fn default_tag_only_when_missing() {
        assert_eq!(with_default_tag("alpine"), "alpine:latest");
        assert_eq!(
            with_default_tag("localhost:5000/x"),
            "localhost:5000/x:latest"
        );
        assert_eq!(with_default_tag("localhost:5000/x:1"), "localhost:5000/x:1");
        assert_eq!(with_default_tag("a/b@sha256:00"), "a/b@sha256:00");
    }
}
