//! Behaviour beyond the reference suite: custom `build.dockerfile` paths, variable
//! precedence, the resolver report, cheap reads, and error texts.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::collections::BTreeMap;

use common::{Ctx, err, ok, run};
use resolve::{Arch, Error, Params, ResolverKind, Selection, resolve, select};

#[test]
fn custom_path_variants_follow_the_same_priorities() {
    let files = &[
        ("docker/Dockerfile.prod", "plain\n"),
        ("docker/Dockerfile.prod.template", "tpl %%BALENA_ARCH%%\n"),
        ("docker/Dockerfile.prod.aarch64", "arch %%BALENA_ARCH%%\n"),
        (
            "docker/Dockerfile.prod.raspberrypi4-64",
            "dt %%BALENA_MACHINE_NAME%%\n",
        ),
        ("Dockerfile.aarch64", "root arch: not for a custom path\n"),
    ];
    let p = |arch, dt: &str| Params::new(arch, dt).with_dockerfile("docker/Dockerfile.prod");

    let r = ok(files, &p(Arch::Aarch64, "raspberrypi4-64"));
    assert_eq!(
        (r.resolver, r.contents.as_str()),
        (ResolverKind::DeviceType, "dt raspberrypi4-64\n")
    );
    let r = ok(files, &p(Arch::Aarch64, "generic-aarch64"));
    assert_eq!(
        (r.resolver, r.contents.as_str()),
        (ResolverKind::Arch, "arch aarch64\n")
    );
    let r = ok(files, &p(Arch::Amd64, "nuc"));
    assert_eq!(
        (r.resolver, r.contents.as_str()),
        (ResolverKind::Template, "tpl amd64\n")
    );
    for r in [
        ok(files, &p(Arch::Aarch64, "raspberrypi4-64")),
        ok(files, &p(Arch::Amd64, "nuc")),
    ] {
        // Reference bug: removeExtension('docker/Dockerfile.prod') is 'docker/Dockerfile',
        // which could overwrite another file. The specified path keeps its name.
        assert_eq!(r.dockerfile_path, "docker/Dockerfile.prod");
        // The specified file itself is dropped; its variants stay.
        assert_eq!(r.remove, ["docker/Dockerfile.prod"]);
    }
    let r = ok(&files[..1], &p(Arch::Amd64, "nuc"));
    assert_eq!(
        (r.resolver, r.contents.as_str()),
        (ResolverKind::Dockerfile, "plain\n")
    );
}

#[test]
fn last_match_wins_within_a_kind() {
    let files = &[
        ("Dockerfile", "first\n"),
        ("./Dockerfile", "second\n"),
        ("Dockerfile.template", "t1\n"),
        ("/Dockerfile.template", "t2\n"),
    ];
    let r = ok(&files[..2], &Params::for_arch(Arch::Amd64));
    assert_eq!(
        (r.source_path.as_str(), r.contents.as_str()),
        ("./Dockerfile", "second\n")
    );
    // Both copies of the replaced file go.
    assert_eq!(r.remove, ["Dockerfile", "./Dockerfile"]);
    let r = ok(files, &Params::for_arch(Arch::Amd64));
    assert_eq!(
        (r.source_path.as_str(), r.contents.as_str()),
        ("/Dockerfile.template", "t2\n")
    );
}

#[test]
fn an_extension_equal_to_arch_and_device_type_counts_as_arch() {
    let r = ok(
        &[("Dockerfile.amd64", "x\n")],
        &Params::new(Arch::Amd64, "amd64"),
    );
    assert_eq!(r.resolver, ResolverKind::Arch);
}

#[test]
fn an_empty_device_type_matches_no_file() {
    // The reference would take `Dockerfile.` as the device-type file when the device type
    // is empty.
    assert_eq!(
        err(&[("Dockerfile.", "x\n")], &Params::new(Arch::Amd64, "")),
        "Could not find a Dockerfile for this service"
    );
}

#[test]
fn only_the_chosen_file_is_read() {
    let mut ctx = Ctx::new(&[
        ("Dockerfile", "no"),
        ("Dockerfile.template", "no"),
        ("Dockerfile.i386", "no"),
        ("Dockerfile.aarch64", "FROM scratch\n"),
    ]);
    ctx.push_bytes("blob.bin", &[0xff; 64]);
    let r = resolve(&ctx, &Params::for_arch(Arch::Aarch64)).unwrap();
    assert_eq!(r.contents, "FROM scratch\n");
    assert_eq!(ctx.reads(), ["Dockerfile.aarch64"]);
}

#[test]
fn selection_needs_names_only_and_renders_later() {
    let p = Params::for_arch(Arch::Armv7hf).with_dockerfile("app/Dockerfile");
    let sel = select(["app/x.sh", "app/Dockerfile.template"], &p).unwrap();
    assert_eq!(
        sel,
        Selection {
            resolver: ResolverKind::Template,
            source_path: "app/Dockerfile.template".into(),
            dockerfile_path: "app/Dockerfile".into(),
            remove: vec![],
        }
    );
    let r = sel.render(b"FROM a-%%BALENA_ARCH%%", &p).unwrap();
    assert_eq!(r.contents, "FROM a-armv7hf");
}

#[test]
fn rendering_an_arch_selection_for_other_params_is_an_error() {
    let p = Params::for_arch(Arch::Armv7hf);
    let sel = select(["Dockerfile.armv7hf"], &p).unwrap();
    let e = sel
        .clone()
        .render(b"x", &Params::for_arch(Arch::Amd64).with_service("web"))
        .unwrap_err();
    assert!(matches!(e, Error::ArchUnsatisfied { .. }));
    assert_eq!(
        e.to_string(),
        "service \"web\": Resolve called without a satisfied architecture specific dockerfile"
    );
    assert_eq!(sel.render(b"x", &p).unwrap().contents, "x");
}

#[test]
fn built_in_variables_and_caller_overrides() {
    let template = "%%BALENA_ARCH%% %%RESIN_ARCH%% %%BALENA_MACHINE_NAME%% %%RESIN_MACHINE_NAME%% %%BALENA_SERVICE_NAME%% %%RESIN_SERVICE_NAME%%";
    let files = &[("Dockerfile.template", template)];
    let base = Params::new(Arch::Aarch64, "raspberrypi4-64").with_service("web");
    assert_eq!(
        ok(files, &base).contents,
        "aarch64 aarch64 raspberrypi4-64 raspberrypi4-64 web web"
    );
    // Caller variables override the built-ins; as in the reference, overriding BALENA_ARCH
    // leaves RESIN_ARCH alone. An overridden service name carries to its RESIN_ twin.
    let p = base
        .clone()
        .with_var("BALENA_ARCH", "custom")
        .with_var("BALENA_SERVICE_NAME", "other");
    assert_eq!(
        ok(files, &p).contents,
        "custom aarch64 raspberrypi4-64 raspberrypi4-64 other other"
    );
    // An explicit twin wins over the derived one.
    let p = base.with_var("RESIN_SERVICE_NAME", "legacy");
    assert!(ok(files, &p).contents.ends_with("web legacy"));
}

#[test]
fn cli_variables_and_their_twins() {
    let p = Params::new(Arch::Amd64, "nuc")
        .with_service("main")
        .with_var("BALENA_APP_NAME", "myapp")
        .with_var("BALENA_RELEASE_HASH", "unavailable");
    let vars = p.template_vars();
    let expected: BTreeMap<String, String> = [
        ("BALENA_APP_NAME", "myapp"),
        ("BALENA_ARCH", "amd64"),
        ("BALENA_MACHINE_NAME", "nuc"),
        ("BALENA_RELEASE_HASH", "unavailable"),
        ("BALENA_SERVICE_NAME", "main"),
        ("RESIN_APP_NAME", "myapp"),
        ("RESIN_ARCH", "amd64"),
        ("RESIN_MACHINE_NAME", "nuc"),
        ("RESIN_RELEASE_HASH", "unavailable"),
        ("RESIN_SERVICE_NAME", "main"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    assert_eq!(vars, expected);
    // Without a service or extras, only the four built-ins exist.
    assert_eq!(Params::for_arch(Arch::Rpi).template_vars().len(), 4);
    assert_eq!(
        Params::for_arch(Arch::Rpi).template_vars()["BALENA_MACHINE_NAME"],
        "raspberry-pi"
    );
}

#[test]
fn comment_lines_are_not_templated() {
    let r = ok(
        &[(
            "Dockerfile.template",
            "# %%UNDEFINED%%\nFROM %%BALENA_ARCH%%\n",
        )],
        &Params::for_arch(Arch::I386),
    );
    assert_eq!(r.contents, "# %%UNDEFINED%%\nFROM i386\n");
}

#[test]
fn resolver_report_names() {
    let names: Vec<String> = [
        ResolverKind::DeviceType,
        ResolverKind::Arch,
        ResolverKind::Template,
        ResolverKind::Dockerfile,
    ]
    .iter()
    .map(|k| serde_json::to_string(k).unwrap())
    .collect();
    assert_eq!(
        names,
        [
            "\"Architecture-specific Dockerfile\"",
            "\"Architecture-specific Dockerfile\"",
            "\"Dockerfile.template\"",
            "\"Standard Dockerfile\"",
        ]
    );
    assert!(ResolverKind::Arch.is_templated());
    assert!(!ResolverKind::Dockerfile.is_templated());
}

#[test]
fn errors_name_the_service_and_file() {
    let p = Params::for_arch(Arch::Amd64).with_service("api");
    assert_eq!(
        err(&[("x", "")], &p),
        "service \"api\": Could not find a Dockerfile for this service"
    );
    assert_eq!(
        err(
            &[("x", "")],
            &p.clone().with_dockerfile("./nope/Dockerfile")
        ),
        "service \"api\": Specified file not found or is invalid: ./nope/Dockerfile"
    );
    let msg = err(&[("Dockerfile.template", "FROM x\nRUN %%MISSING%%\n")], &p);
    assert!(
        msg.starts_with("service \"api\": Dockerfile.template: MISSING is not defined"),
        "{msg}"
    );
    assert!(msg.contains("line 2"), "{msg}");

    let mut ctx = Ctx::new(&[]);
    ctx.push_bytes("Dockerfile", b"FROM x\n# caf\xe9\n");
    let e = resolve(&ctx, &p).unwrap_err();
    assert!(matches!(e, Error::NotUtf8 { offset: 12, .. }), "{e:?}");
    assert!(
        e.to_string()
            .contains("Dockerfile: the Dockerfile is not UTF-8")
    );
}

#[test]
fn a_failed_read_names_the_file() {
    struct Broken;
    impl resolve::ContextFiles for Broken {
        fn paths(&self) -> Box<dyn Iterator<Item = &str> + '_> {
            Box::new(["Dockerfile"].into_iter())
        }
        fn read(&self, _: &str) -> std::io::Result<Vec<u8>> {
            Err(std::io::Error::other("disk on fire"))
        }
    }
    let e = resolve(&Broken, &Params::for_arch(Arch::Amd64)).unwrap_err();
    assert!(matches!(e, Error::Read { .. }));
    assert_eq!(
        e.to_string(),
        "Dockerfile: cannot read the Dockerfile: disk on fire"
    );
}

#[test]
fn escaping_specified_paths_match_nothing() {
    let files = &[("Dockerfile", "x")];
    assert_eq!(
        err(
            files,
            &Params::for_arch(Arch::Amd64).with_dockerfile("../Dockerfile")
        ),
        "Specified file not found or is invalid: ../Dockerfile"
    );
    assert!(
        run(
            files,
            &Params::for_arch(Arch::Amd64).with_dockerfile("a/../Dockerfile")
        )
        .is_ok()
    );
}

#[test]
fn maps_work_as_contexts() {
    let ctx: BTreeMap<&str, &str> = [
        ("Dockerfile", "FROM a\n"),
        ("Dockerfile.rpi", "FROM %%BALENA_ARCH%%\n"),
    ]
    .into();
    let r = resolve(&ctx, &Params::for_arch(Arch::Rpi)).unwrap();
    assert_eq!(
        (r.resolver, r.contents.as_str()),
        (ResolverKind::Arch, "FROM rpi\n")
    );
}
