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

/// The tag of one target's images when one run builds several targets on the same daemons
/// (`deploy` to fleets of different architectures): `<tag>-<target>` (`latest-aarch64`
/// without a tag), so that `<project>_<service>:<tag>-<target>` of one target never
/// overwrites another's. `target` is the arch, or `<arch>-<device type>` when two targets
/// share an arch.
pub fn target_tag(tag: Option<&str>, target: &str) -> String {
    format!("{}-{target}", tag.unwrap_or("latest"))
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
    fn target_tags_suffix_the_tag_or_latest() {
        assert_eq!(target_tag(None, "aarch64"), "latest-aarch64");
        assert_eq!(
            image_name("p", "web", Some(&target_tag(Some("v1"), "amd64"))),
            "p_web:v1-amd64"
        );
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
