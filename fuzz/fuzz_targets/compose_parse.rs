//! `compose_parse`: see `balena_compose_fuzz::checks::compose_parse` for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    balena_compose_fuzz::checks::compose_parse(data);
});
