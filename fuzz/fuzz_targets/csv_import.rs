//! A kind byte and a CSV file through the importer, twice (the second must change nothing).
//! See daemon/src/fuzzing.rs.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| wuye::fuzzing::csv_import(data));
