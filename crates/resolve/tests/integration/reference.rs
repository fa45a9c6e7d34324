//! The reference's test/resolve suite (spec toolkit.md §3.4 fixtures, §3.5 tests), ported.
//!
//! The fixtures are rebuilt in memory with the contents the spec gives, in their tar order.
//! Where the reference used made-up architectures (`architecture-test`, `archx`), a real one
//! stands in: `Params::arch` is a balena [`Arch`]. The reference's Bundle hook is not part of
//! this crate (callers post-process [`resolve::Resolved::contents`]); the hook tests are
//! ported as checks of the content the hook would have received.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use common::{Ctx, err, ok, run};
use resolve::{Arch, Error, Params, ResolverKind, resolve};

const STANDARD: &[(&str, &str)] = &[("Dockerfile", "FROM debian:jessie\n\nRUN apt-get update\n")];
const TEMPLATE: &[(&str, &str)] = &[(
    "/Dockerfile.template",
    "FROM resin/%%RESIN_MACHINE_NAME%%-node:slim\nRUN echo %%RESIN_ARCH%%\n",
)];
const BALENA_TEMPLATE: &[(&str, &str)] = &[(
    "Dockerfile.template",
    "FROM resin/%%BALENA_MACHINE_NAME%%-node:slim\nRUN echo %%BALENA_ARCH%%\n",
)];
const ARCH_DOCKERFILE: &[(&str, &str)] = &[
    ("/Dockerfile.i386", "correct\n"),
    ("/Dockerfile.armv7hf", "incorrect\n"),
];
const ARCH_PRIORITY: &[(&str, &str)] = &[
    ("Dockerfile.armv7hf", "armv7hf\n"),
    ("Dockerfile.i386", "i386\n"),
    ("Dockerfile.raspberry-pi2", "raspberry-pi2\n"),
];
const ARCH_TEMPLATE_PRIORITY: &[(&str, &str)] = &[
    ("Dockerfile.template", "not correct\n"),
    ("Dockerfile.i386", "%%RESIN_ARCH%%\n"),
];

/// `DeviceTypePriority/archive.tar`, a macOS tar: each file is preceded by its AppleDouble
/// `._` companion (binary, not UTF-8).
fn device_type_priority() -> Ctx {
    let apple_double: &[u8] = b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        \x00\x02\xff\xfe";
    let mut ctx = Ctx::new(&[("./", "")]);
    ctx.push_bytes("./._Dockerfile.template", apple_double);
    ctx.push_bytes("./Dockerfile.template", b"not correct\n");
    ctx.push_bytes("./._Dockerfile.raspberry-pi2", apple_double);
    ctx.push_bytes("./Dockerfile.raspberry-pi2", b"raspberry-pi2\n");
    ctx
}

const SPECIFIED_MY_DOCKERFILE_TEMPLATE: &[(&str, &str)] = &[
    ("Dockerfile", "not correct\n"),
    ("Dockerfile.armv7hf", "not correct\n"),
    ("Dockerfile.template", "not correct\n"),
    ("MyDockerfile.armv7hf", "not correct\n"),
    ("MyDockerfile.template", "correct\n"),
];
const SPECIFIED_ARCH_MY_DOCKERFILE: &[(&str, &str)] = &[
    ("Dockerfile", "not correct\n"),
    ("Dockerfile.armv7hf", "not correct\n"),
    ("Dockerfile.template", "not correct\n"),
    ("MyDockerfile.template", "not correct\n"),
    ("MyDockerfile.armv7hf", "correct\n"),
];

fn params(arch: Arch, device_type: &str) -> Params {
    Params::new(arch, device_type)
}

/// The six "resolvers" cases, run both without a specified path and with the compose-go
/// default `dockerfile: Dockerfile`: the results must be identical.
fn six_default_cases(specified: Option<&str>) {
    let with = |p: Params| match specified {
        Some(s) => p.with_dockerfile(s),
        None => p,
    };

    let r = ok(STANDARD, &with(params(Arch::Amd64, "nuc")));
    assert_eq!(r.resolver, ResolverKind::Dockerfile);
    assert_eq!(r.resolver.to_string(), "Standard Dockerfile");
    assert_eq!(
        r.contents.trim(),
        "FROM debian:jessie\n\nRUN apt-get update"
    );
    assert_eq!(r.dockerfile_path, "Dockerfile");
    assert_eq!(r.remove, ["Dockerfile"]);

    let r = ok(TEMPLATE, &with(params(Arch::Rpi, "device-type-test")));
    assert_eq!(r.resolver.to_string(), "Dockerfile.template");
    assert_eq!(
        r.contents,
        "FROM resin/device-type-test-node:slim\nRUN echo rpi\n"
    );
    assert_eq!(
        (r.dockerfile_path.as_str(), r.source_path.as_str()),
        ("Dockerfile", "/Dockerfile.template")
    );
    assert!(r.remove.is_empty(), "the template stays in the context");

    let r = ok(ARCH_DOCKERFILE, &with(params(Arch::I386, "qemux86")));
    assert_eq!(r.resolver, ResolverKind::Arch);
    assert_eq!(r.resolver.to_string(), "Architecture-specific Dockerfile");
    assert_eq!(
        (r.contents.as_str(), r.source_path.as_str()),
        ("correct\n", "/Dockerfile.i386")
    );
    assert_eq!(r.dockerfile_path, "Dockerfile");
    assert!(r.remove.is_empty());

    // Arch over template.
    let r = ok(ARCH_PRIORITY, &with(params(Arch::I386, "qemux86")));
    assert_eq!(
        (r.resolver, r.contents.as_str()),
        (ResolverKind::Arch, "i386\n")
    );

    // Device type over arch.
    let r = ok(ARCH_PRIORITY, &with(params(Arch::Armv7hf, "raspberry-pi2")));
    assert_eq!(
        (r.resolver, r.contents.as_str()),
        (ResolverKind::DeviceType, "raspberry-pi2\n")
    );
    assert_eq!(r.resolver.to_string(), "Architecture-specific Dockerfile");

    // Device type over template, AppleDouble companions ignored.
    let ctx = device_type_priority();
    let r = resolve(&ctx, &with(params(Arch::Armv7hf, "raspberry-pi2"))).unwrap();
    assert_eq!(
        (r.resolver, r.contents.as_str(), r.source_path.as_str()),
        (
            ResolverKind::DeviceType,
            "raspberry-pi2\n",
            "./Dockerfile.raspberry-pi2"
        )
    );
    assert_eq!(r.dockerfile_path, "Dockerfile");
    assert!(
        r.remove.is_empty(),
        "._ files and the template pass through"
    );
    assert_eq!(ctx.reads(), ["./Dockerfile.raspberry-pi2"]);
}

#[test]
fn resolvers_without_a_specified_path() {
    six_default_cases(None);
}

#[test]
fn default_dockerfile_path_gives_identical_results() {
    six_default_cases(Some("Dockerfile"));
}

#[test]
fn template_with_balena_variable_names() {
    let r = ok(BALENA_TEMPLATE, &params(Arch::Aarch64, "device-type-test"));
    assert_eq!(r.resolver, ResolverKind::Template);
    assert_eq!(
        r.contents,
        "FROM resin/device-type-test-node:slim\nRUN echo aarch64\n"
    );
}

#[test]
fn arch_priority_with_unknown_device_type_uses_arch() {
    let r = ok(ARCH_PRIORITY, &params(Arch::Armv7hf, "none"));
    assert_eq!(
        (r.resolver, r.contents.as_str()),
        (ResolverKind::Arch, "armv7hf\n")
    );
}

#[test]
fn arch_template_priority_fixture() {
    // The arch file wins and is itself templated.
    let r = ok(ARCH_TEMPLATE_PRIORITY, &params(Arch::I386, "qemux86"));
    assert_eq!(
        (r.resolver, r.contents.as_str()),
        (ResolverKind::Arch, "i386\n")
    );
    // A Dockerfile.i386 that does not match the arch is ignored, and the template wins.
    let r = ok(ARCH_TEMPLATE_PRIORITY, &params(Arch::Amd64, "nuc"));
    assert_eq!(
        (r.resolver, r.contents.as_str()),
        (ResolverKind::Template, "not correct\n")
    );
}

#[test]
fn incorrect_template_variables() {
    let files = &[(
        "/Dockerfile.template",
        "FROM resin/%%RESIN_DEVICE_TYPE%%-node:slim",
    )];
    let e = run(files, &params(Arch::Amd64, "nuc")).unwrap_err();
    assert!(matches!(e, Error::Template { ref path, .. } if path == "/Dockerfile.template"));
    let msg = e.to_string();
    assert!(msg.contains("RESIN_DEVICE_TYPE is not defined"), "{msg}");
    assert!(msg.contains("/Dockerfile.template"), "{msg}");
}

#[test]
fn node_projects_are_not_resolved() {
    // The reference's NodeJS resolver needs Docker Hub's deprecated resin/*-node images and
    // can never run under v8 multibuild (compose-go always specifies `Dockerfile`, §3.3).
    // It is not ported: a Node project without a Dockerfile has no Dockerfile.
    let files = &[
        ("./", ""),
        (
            "./package.json",
            r#"{"name":"x","scripts":{"test":"true"}}"#,
        ),
        ("./index.js", ""),
    ];
    assert_eq!(
        err(files, &params(Arch::Armv7hf, "raspberrypi3")),
        "Could not find a Dockerfile for this service"
    );
    // With the compose-go default the reference says exactly this too.
    assert_eq!(
        err(
            files,
            &params(Arch::Armv7hf, "raspberrypi3").with_dockerfile("Dockerfile")
        ),
        "Specified file not found or is invalid: Dockerfile"
    );
}

#[test]
fn hook_inputs_are_the_rendered_contents() {
    let r = ok(
        &[(
            "Dockerfile.template",
            "%%RESIN_MACHINE_NAME%%:%%RESIN_ARCH%%\n",
        )],
        &params(Arch::Armv7hf, "raspberrypi3"),
    );
    assert_eq!(r.contents, "raspberrypi3:armv7hf\n");
    let r = ok(
        &[("Dockerfile", "This is the dockerfile contents")],
        &params(Arch::Amd64, "nuc"),
    );
    assert_eq!(r.contents, "This is the dockerfile contents");
}

#[test]
fn specified_dockerfile_in_a_subdirectory() {
    let files = &[
        ("./", ""),
        ("./test/", ""),
        ("./Dockerfile", "not correct\n"),
        ("./test/Dockerfile", "correct\n"),
    ];
    for s in ["test/Dockerfile", "./test/Dockerfile"] {
        let r = ok(files, &params(Arch::Amd64, "nuc").with_dockerfile(s));
        assert_eq!(r.resolver, ResolverKind::Dockerfile);
        assert_eq!(r.contents, "correct\n");
        assert_eq!(r.dockerfile_path, "test/Dockerfile");
        assert_eq!(r.source_path, "./test/Dockerfile");
        // The root Dockerfile is kept; only the specified file is replaced.
        assert_eq!(r.remove, ["./test/Dockerfile"]);
    }
}

#[test]
fn specified_template_in_a_subdirectory() {
    let files = &[
        ("./Dockerfile.template", "not correct\n"),
        ("./test/Dockerfile.template", "correct\n"),
    ];
    let r = ok(
        files,
        &params(Arch::Amd64, "nuc").with_dockerfile("test/Dockerfile.template"),
    );
    assert_eq!(r.resolver, ResolverKind::Template);
    assert_eq!(r.contents, "correct\n");
    assert_eq!(r.dockerfile_path, "test/Dockerfile");
    assert_eq!(r.remove, ["./test/Dockerfile.template"]);
}

#[test]
fn specified_my_dockerfile_template() {
    for arch in [Arch::Amd64, Arch::Armv7hf] {
        let r = ok(
            SPECIFIED_MY_DOCKERFILE_TEMPLATE,
            &params(arch, "nuc").with_dockerfile("MyDockerfile.template"),
        );
        assert_eq!(r.resolver, ResolverKind::Template);
        assert_eq!(r.contents, "correct\n");
        assert_eq!(r.dockerfile_path, "MyDockerfile");
        assert_eq!(r.remove, ["MyDockerfile.template"]);
    }
    // S itself is not a file: every original stays.
    let r = ok(
        SPECIFIED_MY_DOCKERFILE_TEMPLATE,
        &params(Arch::Amd64, "nuc").with_dockerfile("MyDockerfile"),
    );
    assert_eq!(r.resolver, ResolverKind::Template);
    assert_eq!(
        (r.contents.as_str(), r.dockerfile_path.as_str()),
        ("correct\n", "MyDockerfile")
    );
    assert!(r.remove.is_empty());
}

#[test]
fn specified_arch_my_dockerfile() {
    let r = ok(
        SPECIFIED_ARCH_MY_DOCKERFILE,
        &params(Arch::Armv7hf, "raspberrypi3").with_dockerfile("MyDockerfile.armv7hf"),
    );
    assert_eq!(r.resolver, ResolverKind::Arch);
    assert_eq!(
        (r.contents.as_str(), r.dockerfile_path.as_str()),
        ("correct\n", "MyDockerfile")
    );
    assert_eq!(r.remove, ["MyDockerfile.armv7hf"]);

    let r = ok(
        SPECIFIED_ARCH_MY_DOCKERFILE,
        &params(Arch::Armv7hf, "raspberrypi3").with_dockerfile("MyDockerfile"),
    );
    assert_eq!(r.resolver, ResolverKind::Arch);
    assert_eq!(
        (r.contents.as_str(), r.dockerfile_path.as_str()),
        ("correct\n", "MyDockerfile")
    );
    assert!(r.remove.is_empty());

    // For another arch the specified file is a plain Dockerfile, used raw under its own name.
    let r = ok(
        SPECIFIED_ARCH_MY_DOCKERFILE,
        &params(Arch::Amd64, "nuc").with_dockerfile("MyDockerfile.armv7hf"),
    );
    assert_eq!(r.resolver, ResolverKind::Dockerfile);
    assert_eq!(
        (r.contents.as_str(), r.dockerfile_path.as_str()),
        ("correct\n", "MyDockerfile.armv7hf")
    );

    let e = run(
        SPECIFIED_ARCH_MY_DOCKERFILE,
        &params(Arch::Amd64, "nuc").with_dockerfile("InexistentDockerfile"),
    )
    .unwrap_err();
    assert!(matches!(e, Error::SpecifiedNotFound { .. }));
    assert_eq!(
        e.to_string(),
        "Specified file not found or is invalid: InexistentDockerfile"
    );
}

#[test]
fn specified_arch_dockerfile_in_a_subdirectory() {
    let files = &[
        ("./Dockerfile.armv7hf", "not correct\n"),
        ("./test/Dockerfile.armv7hf", "correct\n"),
    ];
    let r = ok(
        files,
        &params(Arch::Armv7hf, "raspberrypi3").with_dockerfile("test/Dockerfile.armv7hf"),
    );
    assert_eq!(r.resolver, ResolverKind::Arch);
    assert_eq!(
        (r.contents.as_str(), r.dockerfile_path.as_str()),
        ("correct\n", "test/Dockerfile")
    );
}

#[test]
fn specified_random_file() {
    let r = ok(
        &[("./random", "correct\n")],
        &params(Arch::Amd64, "nuc").with_dockerfile("random"),
    );
    assert_eq!(r.resolver, ResolverKind::Dockerfile);
    assert_eq!(
        (r.contents.as_str(), r.dockerfile_path.as_str()),
        ("correct\n", "random")
    );
}

#[test]
fn many_dockerfiles_pick_the_root_one() {
    let files = &[
        ("./", ""),
        ("./Dockerfile", "correct"),
        ("./src/one/Dockerfile", "not-correct"),
    ];
    let r = ok(files, &params(Arch::Amd64, "nuc"));
    assert_eq!(r.resolver, ResolverKind::Dockerfile);
    assert_eq!(
        (r.contents.as_str(), r.source_path.as_str()),
        ("correct", "./Dockerfile")
    );
    assert_eq!(r.remove, ["./Dockerfile"]);

    // subdir-dockerfile.tar (unused by the reference tests).
    let files = &[
        ("Dockerfile", "not-correct"),
        ("service1/Dockerfile", "correct"),
    ];
    let r = ok(
        files,
        &params(Arch::Amd64, "nuc").with_dockerfile("service1/Dockerfile"),
    );
    assert_eq!(
        (r.contents.as_str(), r.dockerfile_path.as_str()),
        ("correct", "service1/Dockerfile")
    );
}

#[test]
fn unspecified_and_missing_dockerfile() {
    let ctx = Ctx::new(&[("./MissingDockerfile", "")]);
    let e = resolve(&ctx, &params(Arch::Amd64, "nuc")).unwrap_err();
    assert!(matches!(e, Error::NotFound { .. }));
    assert_eq!(
        e.to_string(),
        "Could not find a Dockerfile for this service (looked for Dockerfile.nuc, \
         Dockerfile.amd64, Dockerfile.template, Dockerfile)"
    );
    assert!(
        ctx.reads().is_empty(),
        "nothing is read when nothing matches"
    );
}

#[test]
fn additional_template_variables() {
    let text = "%%TEST_VAR%%\n%%SECOND_TEST_VAR%%\n";
    let p = params(Arch::Armv7hf, "")
        .with_var("TEST_VAR", "test1")
        .with_var("SECOND_TEST_VAR", "test2");
    let r = ok(&[("Dockerfile.template", text)], &p);
    assert_eq!(
        (r.resolver, r.contents.as_str()),
        (ResolverKind::Template, "test1\ntest2\n")
    );
    let r = ok(&[("Dockerfile.armv7hf", text)], &p);
    assert_eq!(
        (r.resolver, r.contents.as_str()),
        (ResolverKind::Arch, "test1\ntest2\n")
    );
}

#[test]
fn standard_dockerfile_is_never_templated() {
    let r = ok(
        &[("Dockerfile", "plain %%NOT%%\n")],
        &params(Arch::Amd64, "nuc"),
    );
    assert_eq!(r.contents, "plain %%NOT%%\n");
}

#[test]
fn observed_edge_cases() {
    // A backup of an arch file is not an arch file: its minusExt is `Dockerfile.amd64`.
    assert_eq!(
        err(
            &[("Dockerfile.amd64.bak", "x")],
            &params(Arch::Amd64, "nuc")
        ),
        "Could not find a Dockerfile for this service"
    );
    assert_eq!(
        err(&[("Dockerfile.", "x")], &params(Arch::Amd64, "nuc")),
        "Could not find a Dockerfile for this service"
    );
    // Unspecified matches are root-only.
    assert_eq!(
        err(
            &[
                ("sub/Dockerfile", "x"),
                ("sub/Dockerfile.template", "x"),
                ("sub/Dockerfile.amd64", "x")
            ],
            &params(Arch::Amd64, "nuc")
        ),
        "Could not find a Dockerfile for this service"
    );
}

#[test]
fn dotted_directory_keeps_its_name() {
    // Reference bug (spec §3.1, §9.4): removeExtension cuts at the last dot anywhere, so the
    // reference writes this service's Dockerfile to `sub`. The right name is the directory's
    // `Dockerfile`.
    let r = ok(
        &[("sub.dir/Dockerfile.armv7hf", "correct\n")],
        &params(Arch::Armv7hf, "raspberrypi3").with_dockerfile("sub.dir/Dockerfile"),
    );
    assert_eq!(r.resolver, ResolverKind::Arch);
    assert_eq!(r.dockerfile_path, "sub.dir/Dockerfile");
    assert_ne!(r.dockerfile_path, "sub");
}
