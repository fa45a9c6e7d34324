//! `tar_pax`: see `balena_compose_fuzz::checks::tar_pax` for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    balena_compose_fuzz::checks::tar_pax(data);
});
