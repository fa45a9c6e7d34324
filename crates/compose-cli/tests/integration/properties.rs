//! The fuzz targets of `fuzz/` as bounded, deterministic property tests on stable: the same
//! invariants (`fuzz/src/checks.rs`, included by path) fed by proptest strategies that build
//! likely-interesting inputs (compose-like YAML, tars with hostile names and links,
//! Dockerfiles, templates, ignore patterns) as well as raw bytes. The long, coverage-guided
//! runs are the libFuzzer targets (see fuzz/README.md).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

#[path = "../../../../fuzz/src/checks.rs"]
mod checks;

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngSeed};

/// Small and fixed: the whole file must stay well under 30 s in a debug build on CI.
fn config(cases: u32, seed: u64) -> Config {
    Config {
        cases,
        rng_seed: RngSeed::Fixed(seed),
        failure_persistence: None,
        max_shrink_iters: 256,
        ..Config::default()
    }
}

/// Pieces of text joined into a document: the grammar the target is most likely to hit.
fn pieces(vocabulary: &'static [&'static str], max: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(vocabulary), 0..max).prop_map(|v| v.concat())
}

const COMPOSE_WORDS: &[&str] = &[
    "services:\n",
    "  s:\n",
    "  t:\n",
    "    image: x\n",
    "    build: .\n",
    "    build:\n",
    "      context: ./a\n",
    "      dockerfile: D\n",
    "      args: {A: 1}\n",
    "    ports: [\"80:80\", 53/udp]\n",
    "    ports:\n      - 8080\n",
    "    volumes: [\"v:/data\"]\n",
    "    volumes: [\"/var/run/balena-engine.sock:/var/run/balena-engine.sock\"]\n",
    "    environment: {A: ${TAG}}\n",
    "    environment: [B=2, C]\n",
    "    labels: [a=b]\n",
    "    labels: {io.balena.features.dbus: '1'}\n",
    "    depends_on: [t]\n",
    "    networks: [n]\n",
    "    network_mode: host\n",
    "    privileged: true\n",
    "    extends: t\n",
    "    command: [\"sh\", \"-c\", \"$$X\"]\n",
    "    <<: *c\n",
    "x-c: &c {image: y}\n",
    "volumes:\n  v: {}\n",
    "networks:\n  n: {}\n",
    "networks:\n  n:\n    ipam: {config: [{subnet: 10.0.0.0/24}]}\n",
    "version: '2.1'\n",
    "${TAG:-d}",
    "${UNSET:?no}",
    "\"",
    "'",
    "[",
    "{",
    "}",
    "]",
    ": ",
    "- ",
    "\n",
    "  ",
    "&a ",
    "*a",
    "~",
    "!!str ",
    "#",
    "\t",
];

const DOCKERFILE_WORDS: &[&str] = &[
    "FROM alpine\n",
    "FROM x AS b\n",
    "FROM --platform=$P x\n",
    "RUN echo hi\n",
    "RUN [\"/bin/sh\", \"-c\", \"x\"]\n",
    "RUN --mount=type=cache,target=/c make\n",
    "RUN <<EOF\necho a\nEOF\n",
    "RUN <<-A <<B\nx\nA\ny\nB\n",
    "SHELL [\"/bin/bash\", \"-c\"]\n",
    "ONBUILD RUN x\n",
    "COPY . /\n",
    "# escape=`\n",
    "# escape=\\\n",
    "# syntax=docker/dockerfile:1\n",
    "run lower\n",
    "RUN a \\\n",
    "  b\n",
    "`\n",
    "\\\n",
    "\r\n",
    "[",
    "\"",
    "<<",
    " ",
    "\n",
    "%%BALENA_ARCH%%",
    "#",
];

const TEMPLATE_WORDS: &[&str] = &[
    "%%",
    "%",
    "BALENA_ARCH",
    "BALENA_MACHINE_NAME",
    "AB",
    "A_",
    "A",
    "UNDEF",
    "lower",
    "1",
    "#",
    " ",
    "\n",
    "\r",
    "x",
    "é",
];

const IGNORE_WORDS: &[&str] = &[
    "*", "**", "?", "[", "]", "[a-c]", "[!a]", "[^a]", "\\", "!", "/", ".", "..", "a", "b", "c",
    "\n", " ", "#",
];

const PATH_WORDS: &[&str] = &["a", "b", "c", ".", "..", "/", "x.log", "Dockerfile", "\n"];

proptest! {
    #![proptest_config(config(128, 0xC0_4E05E))]
    #[test]
    fn compose_parse_structured(text in pieces(COMPOSE_WORDS, 40)) {
        checks::compose_parse(text.as_bytes());
    }
}

const SERVICE_FIELDS: &[&str] = &[
    "image: x",
    "build: ./a",
    "build: {context: ., dockerfile: D, args: {A: \"1\"}}",
    "ports: [\"80:80\", \"53/udp\", 8080]",
    "volumes: [\"v:/data\", \"/var/run/balena-engine.sock:/var/run/balena-engine.sock\"]",
    "environment: {A: \"${TAG}\", B: null}",
    "environment: [B=2, C]",
    "labels: [a=b, c]",
    "labels: {io.balena.features.dbus: \"1\"}",
    "networks: [n]",
    "networks: {n: {aliases: [x]}}",
    "network_mode: host",
    "privileged: true",
    "restart: always",
    "command: [sh, -c, \"$$X\"]",
    "command: echo hi",
    "cap_add: [SYS_ADMIN]",
    "devices: [\"/dev/i2c-1:/dev/i2c-1\"]",
    "tmpfs: /tmp",
    "extra_hosts: [\"a:1.2.3.4\"]",
    "expose: [\"80\"]",
    "dns: 8.8.8.8",
    "healthcheck: {test: [CMD, \"true\"], interval: 5s}",
    "security_opt: [\"no-new-privileges\"]",
    "depends_on: [z]",
    "depends_on: {z: {condition: service_started}}",
    "x-note: hi",
    "profiles: [p]",
    "entrypoint: \"/bin/tini -- 'a b'\"",
];

fn composition() -> impl Strategy<Value = String> {
    let service = prop::collection::vec(prop::sample::select(SERVICE_FIELDS), 1..6);
    (prop::collection::vec(service, 1..4), any::<bool>()).prop_map(|(services, version)| {
        let mut doc = String::from(if version { "version: '2.4'\n" } else { "" });
        doc.push_str("services:\n");
        for (i, fields) in services.iter().enumerate() {
            doc.push_str(&format!("  s{i}:\n"));
            if !fields
                .iter()
                .any(|f| f.starts_with("image") || f.starts_with("build"))
            {
                doc.push_str("    image: x\n");
            }
            let mut seen = std::collections::BTreeSet::new();
            for field in fields {
                // One of each key: a duplicate key is an error, not an interesting one.
                if seen.insert(field.split(':').next().unwrap_or_default()) {
                    doc.push_str(&format!("    {field}\n"));
                }
            }
        }
        doc.push_str("  z:\n    image: z\nvolumes:\n  v: {}\nnetworks:\n  n: {}\n");
        doc
    })
}

proptest! {
    #![proptest_config(config(256, 0xC0_4E060))]
    #[test]
    fn compose_parse_compositions(doc in composition()) {
        checks::compose_parse(doc.as_bytes());
    }
}

#[test]
fn most_generated_compositions_are_valid() {
    // The round-trip invariant only bites on valid compositions: keep the generator honest.
    let mut runner = proptest::test_runner::TestRunner::new(config(64, 1));
    let strategy = composition();
    let valid = (0..64)
        .filter(|_| {
            let doc = strategy.new_tree(&mut runner).unwrap().current();
            let options = parse::LoadOptions {
                project_dir: Some("/project".into()),
                environment: Some(Default::default()),
                ..parse::LoadOptions::default()
            };
            parse::parse_str(&doc, &options)
                .map_err(|e| eprintln!("{e}\n{doc}"))
                .is_ok()
        })
        .count();
    assert!(
        valid >= 32,
        "only {valid} of 64 generated compositions parse"
    );
}

proptest! {
    #![proptest_config(config(64, 0xC0_4E05F))]
    #[test]
    fn compose_parse_bytes(data in prop::collection::vec(any::<u8>(), 0..512)) {
        checks::compose_parse(&data);
    }
}

proptest! {
    #![proptest_config(config(256, 0x7E_4D1A7E))]
    #[test]
    fn template_structured(text in pieces(TEMPLATE_WORDS, 60)) {
        checks::template(text.as_bytes());
    }
}

proptest! {
    #![proptest_config(config(256, 0x7_2A05E))]
    #[test]
    fn transpose_structured(text in pieces(DOCKERFILE_WORDS, 30)) {
        checks::transpose(text.as_bytes());
    }
}

proptest! {
    #![proptest_config(config(64, 0x7_2A05F))]
    #[test]
    fn transpose_bytes(data in prop::collection::vec(any::<u8>(), 0..512)) {
        checks::transpose(&data);
    }
}

proptest! {
    #![proptest_config(config(256, 0xD0_C1C))]
    #[test]
    fn dockerignore_structured(
        patterns in pieces(IGNORE_WORDS, 24),
        paths in pieces(PATH_WORDS, 24),
    ) {
        let mut data = patterns.into_bytes();
        data.push(0);
        data.extend_from_slice(paths.as_bytes());
        checks::dockerignore(&data);
    }
}

/// One entry of a generated tar.
#[derive(Debug, Clone)]
enum Member {
    File(String, Vec<u8>),
    Dir(String),
    Symlink(String, String),
    HardLink(String, String),
}

const NAME_PARTS: &[&str] = &[
    "a",
    "b",
    "app",
    "..",
    ".",
    "",
    "Dockerfile",
    ".dockerignore",
    "/",
];

fn tar_name() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(NAME_PARTS), 1..5).prop_map(|v| v.join("/"))
}

fn member() -> impl Strategy<Value = Member> {
    prop_oneof![
        4 => (tar_name(), prop::collection::vec(any::<u8>(), 0..64)).prop_map(|(n, d)| Member::File(n, d)),
        2 => tar_name().prop_map(Member::Dir),
        2 => (tar_name(), tar_name()).prop_map(|(n, t)| Member::Symlink(n, t)),
        1 => (tar_name(), tar_name()).prop_map(|(n, t)| Member::HardLink(n, t)),
        1 => (tar_name(), prop::collection::vec(prop::sample::select(IGNORE_WORDS), 0..8))
            .prop_map(|(n, p)| Member::File(format!("{n}/.dockerignore"), p.concat().into_bytes())),
    ]
}

/// Writes the header fields by hand, so that names the `tar` crate's builder would refuse
/// (`..`, absolute) still reach the parser.
fn raw_tar(members: &[Member]) -> Vec<u8> {
    let mut out = Vec::new();
    for m in members {
        let (name, kind, link, data): (&str, tar::EntryType, &str, &[u8]) = match m {
            Member::File(n, d) => (n, tar::EntryType::Regular, "", d),
            Member::Dir(n) => (n, tar::EntryType::Directory, "", &[]),
            Member::Symlink(n, t) => (n, tar::EntryType::Symlink, t, &[]),
            Member::HardLink(n, t) => (n, tar::EntryType::Link, t, &[]),
        };
        let mut header = tar::Header::new_gnu();
        let bytes = header.as_old_mut();
        let name = &name.as_bytes()[..name.len().min(99)];
        bytes.name[..name.len()].copy_from_slice(name);
        let link = &link.as_bytes()[..link.len().min(99)];
        bytes.linkname[..link.len()].copy_from_slice(link);
        header.set_mode(0o644);
        header.set_size(data.len() as u64);
        header.set_entry_type(kind);
        header.set_cksum();
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out.resize(out.len() + 1024, 0);
    out
}

/// How a generated tar is damaged before it is read.
#[derive(Debug, Clone)]
enum Damage {
    None,
    Truncate(usize),
    Flip(usize, u8),
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        6 => Just(Damage::None),
        2 => any::<usize>().prop_map(Damage::Truncate),
        2 => (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Damage::Flip(i, b)),
    ]
}

proptest! {
    #![proptest_config(config(256, 0x7A2_5917))]
    #[test]
    fn tar_split_structured(members in prop::collection::vec(member(), 0..12), damage in damage()) {
        let mut data = raw_tar(&members);
        match damage {
            Damage::None => {}
            Damage::Truncate(at) => data.truncate(at % (data.len() + 1)),
            Damage::Flip(at, byte) => {
                let at = at % data.len();
                data[at] ^= byte;
            }
        }
        checks::tar_split(&data);
    }
}

proptest! {
    #![proptest_config(config(128, 0x7A2_5918))]
    #[test]
    fn tar_split_bytes(data in prop::collection::vec(any::<u8>(), 0..2048)) {
        checks::tar_split(&data);
    }
}

const PAX_KEYS: &[&str] = &[
    "path",
    "linkpath",
    "size",
    "uid",
    "mtime",
    "comment",
    "GNU.sparse.major",
    "GNU.sparse.minor",
    "GNU.sparse.name",
    "GNU.sparse.size",
    "GNU.sparse.realsize",
    "GNU.sparse.map",
    "GNU.sparse.offset",
    "GNU.sparse.numbytes",
];

const PAX_VALUES: &[&str] = &[
    "0",
    "1",
    "512",
    "1024",
    "4096",
    "99999999999999999999",
    "-1",
    "1700000000.5",
    "app/x",
    "../x",
    "/abs",
    "0,512",
    "0,512,4096,512",
    "0,1024,",
    "x",
    "",
];

/// A record's key, names more often (the ones with the tighter limit).
fn pax_key() -> impl Strategy<Value = &'static str> {
    prop_oneof![
        2 => prop::sample::select(&["path", "linkpath"][..]),
        3 => prop::sample::select(PAX_KEYS),
    ]
}

/// One record's value: from the vocabulary, or a name around the 4096-byte limit.
fn pax_value() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => prop::sample::select(PAX_VALUES).prop_map(str::to_owned),
        3 => (4094usize..4100).prop_map(|n| "n".repeat(n)),
    ]
}

/// `<length> <key>=<value>\n`, the length right or off by `skew`.
fn pax_record(key: &str, value: &str, skew: i8) -> Vec<u8> {
    let rest = key.len() + value.len() + 3;
    let mut len = rest + 1;
    while len.to_string().len() + rest != len {
        len += 1;
    }
    let len = len.saturating_add_signed(isize::from(skew));
    format!("{len} {key}={value}\n").into_bytes()
}

proptest! {
    #![proptest_config(config(256, 0x7A2_5919))]
    #[test]
    fn tar_pax_structured(
        records in prop::collection::vec(
            (pax_key(), pax_value(), prop_oneof![8 => Just(0i8), 1 => -3i8..3]),
            0..6,
        )
    ) {
        let body: Vec<u8> = records
            .iter()
            .flat_map(|(key, value, skew)| pax_record(key, value, *skew))
            .collect();
        checks::tar_pax(&body);
    }
}

proptest! {
    #![proptest_config(config(128, 0x7A2_591A))]
    #[test]
    fn tar_pax_bytes(data in prop::collection::vec(any::<u8>(), 0..1024)) {
        checks::tar_pax(&data);
    }
}

#[test]
fn the_checks_can_fail() {
    // The invariants must be able to fire, or the properties above would be vacuous.
    for bad in ["../x", "a/../b", "/abs", "a//b", "./a", ""] {
        let caught = std::panic::catch_unwind(|| checks::assert_clean_relative(bad, "test"));
        assert!(caught.is_err(), "{bad:?} passed as clean");
    }
    checks::assert_clean_relative("a/b.c/..d", "test");
    // And the hand-written tars reach the parser as written.
    let project =
        context::Project::from_reader(&raw_tar(&[Member::File("a/b".into(), vec![1])])[..])
            .unwrap();
    let paths: Vec<&str> = project.entries().iter().map(context::Entry::path).collect();
    assert_eq!(paths, ["a/b"]);
    assert!(
        context::Project::from_reader(&raw_tar(&[Member::File("../x".into(), vec![])])[..])
            .is_err()
    );
    // The pax tars name their entry by the records.
    let project =
        context::Project::from_reader(&checks::pax_tar(&pax_record("path", "app/x", 0))[..])
            .unwrap();
    let paths: Vec<&str> = project.entries().iter().map(context::Entry::path).collect();
    assert_eq!(paths, ["after", "app/x"]);
    // A name just over the limit is refused (were it kept, `tar_pax` would fire).
    checks::tar_pax(&pax_record("path", &"n".repeat(4097), 0));
}
