//! Any text as a config file: parsed and validated, every problem collected, no panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| hadns::dns::fuzz::config(data));
