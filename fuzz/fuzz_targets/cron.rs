//! A zone byte, a start instant and a crontab expression; differential against the `cron` crate.
//! See daemon/src/fuzzing.rs.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| wuye::fuzzing::cron(data));
