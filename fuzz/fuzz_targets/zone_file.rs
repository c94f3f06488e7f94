//! Any text as a zone file: parsed, built into a snapshot and its fast-path tables, and
//! queried for every name it holds.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| hadns::dns::fuzz::zone(data));
