//! `wuyed.toml`, a NUL byte, one community file, through `wuyed check`'s own function.
//! See daemon/src/fuzzing.rs.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| wuye::fuzzing::config(data));
