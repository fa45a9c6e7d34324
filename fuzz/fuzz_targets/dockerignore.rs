//! `dockerignore`: see `balena_compose_fuzz::checks::dockerignore` for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    balena_compose_fuzz::checks::dockerignore(data);
});
