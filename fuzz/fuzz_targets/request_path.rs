//! Any bytes as a DNS query: the fast path, hadns's own checks and hickory behind them,
//! over UDP and TCP. No panic; every response parses, echoes the ID and fits.
#![no_main]

use std::sync::LazyLock;

use hadns::dns::fuzz::RequestPath;
use libfuzzer_sys::fuzz_target;

static PATH: LazyLock<RequestPath> = LazyLock::new(RequestPath::new);

fuzz_target!(|data: &[u8]| PATH.run(data));
