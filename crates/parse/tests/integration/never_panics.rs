//! Whatever the bytes, the parser returns `Ok` or an error: never a panic.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use parse::LoadOptions;
use proptest::prelude::*;

fn opts() -> LoadOptions {
    LoadOptions {
        project_dir: Some(PathBuf::from("/nonexistent-project")),
        files: vec![PathBuf::from("/nonexistent-project/compose.yml")],
        environment: Some(Default::default()),
        ..LoadOptions::default()
    }
}

/// Fragments that steer random input towards the interesting paths.
fn compose_like() -> impl Strategy<Value = String> {
    let atoms = prop::sample::select(vec![
        "services:\n",
        "  s:\n",
        "    image: x\n",
        "    build: .\n",
        "    ports: [",
        "'80:80/tc'",
        "    volumes: [",
        "/sys:/sys",
        "v:/v:ro",
        "]\n",
        "    depends_on: {a: {condition: x}}\n",
        "${A:?e}",
        "$$",
        "&a ",
        "*a",
        "<<: *a\n",
        "networks:\n",
        "  n: {driver: x}\n",
        "x-e: 1\n",
        "    labels: [a=b]\n",
        "    env_file: [x]\n",
        "{",
        "}",
        "- ",
        ": ",
        "\n",
        "\t",
        "'",
        "\"",
        "#",
        "!!str ",
        "---\n",
    ]);
    prop::collection::vec(atoms, 0..40).prop_map(|parts| parts.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let text = String::from_utf8_lossy(&bytes);
        let _ = parse::parse_str(&text, &opts());
    }

    #[test]
    fn arbitrary_strings(text in ".{0,300}") {
        let _ = parse::parse_str(&text, &opts());
    }

    #[test]
    fn compose_shaped_input(text in compose_like()) {
        if let Ok(c) = parse::parse_str(&text, &opts()) {
            // Whatever is accepted can be described and printed.
            let _ = c.image_descriptors();
            prop_assert!(c.to_json().is_object());
            let _ = c.to_yaml();
        }
    }
}
