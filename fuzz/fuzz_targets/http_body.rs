//! Requests with arbitrary bodies through the whole API router in-process; no 5xx.
//! See daemon/src/fuzzing.rs.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| wuye::fuzzing::http_body(data));
