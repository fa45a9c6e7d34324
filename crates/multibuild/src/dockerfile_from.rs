//! The base images a Dockerfile builds `FROM`, for the platform decision.

/// The `FROM` images of a (rendered) Dockerfile, in order and without repeats: stage names,
/// `scratch` and `--flags` left out. Unexpanded `${VAR}` references are kept; looking them up
/// fails and is ignored, as the reference does.
pub fn base_images(dockerfile: &str) -> Vec<String> {
    let mut stages: Vec<String> = Vec::new();
    let mut images: Vec<String> = Vec::new();
    let mut logical = String::new();
    for line in dockerfile.lines() {
        let trimmed = line.trim();
        if logical.is_empty() && (trimmed.is_empty() || trimmed.starts_with('#')) {
            continue;
        }
        if let Some(head) = trimmed.strip_suffix('\\') {
            logical.push_str(head);
            logical.push(' ');
            continue;
        }
        logical.push_str(trimmed);
        let instruction = std::mem::take(&mut logical);
        let mut words = instruction.split_whitespace();
        if !words.next().is_some_and(|w| w.eq_ignore_ascii_case("FROM")) {
            continue;
        }
        let mut args = words.filter(|w| !w.starts_with("--"));
        let Some(image) = args.next() else { continue };
        if let (Some(as_kw), Some(name)) = (args.next(), args.next())
            && as_kw.eq_ignore_ascii_case("AS")
        {
            stages.push(name.to_lowercase());
        }
        let known_stage = stages.iter().any(|s| s.eq_ignore_ascii_case(image));
        if image.eq_ignore_ascii_case("scratch") || known_stage || images.iter().any(|i| i == image)
        {
            continue;
        }
        images.push(image.to_owned());
    }
    images
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_scratch_flags_and_repeats_are_left_out() {
        let dockerfile = "# syntax=docker/dockerfile:1\nFROM alpine AS base\nFROM base\nFROM --platform=linux/arm64 \\\n  debian:11 as x\nFROM x\nFROM scratch\nFROM alpine\n";
        assert_eq!(base_images(dockerfile), ["alpine", "debian:11"]);
    }

    #[test]
    fn a_stage_named_like_a_later_image_is_only_a_stage_after_it_is_defined() {
        assert_eq!(
            base_images("FROM busybox AS build\nFROM build\n"),
            ["busybox"]
        );
        assert_eq!(
            base_images("from build\nfrom busybox as build\n"),
            ["build", "busybox"]
        );
    }
}
