//! Replays the fuzz targets' seed corpus (fuzz/corpus) and every input a fuzzer ever
//! failed on (fuzz/regressions) on the stable toolchain, in the test command. The targets
//! themselves run under libFuzzer in bench/fuzz.sh.

use std::path::Path;

use hadns::dns::fuzz;

/// Every file of `fuzz/corpus/<target>` and `fuzz/regressions/<target>`; at least one.
fn inputs(target: &str) -> Vec<(String, Vec<u8>)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut inputs = Vec::new();
    for dir in ["corpus", "regressions"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir).join(target)) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_file() && !path.file_name().unwrap().to_string_lossy().starts_with('.') {
                inputs.push((path.display().to_string(), std::fs::read(&path).unwrap()));
            }
        }
    }
    assert!(!inputs.is_empty(), "no inputs for {target}");
    inputs
}

/// Runs `check` on every input; a panic names the file.
fn replay(target: &str, check: impl Fn(&[u8])) {
    for (name, data) in inputs(target) {
        if let Err(panic) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(&data)))
        {
            eprintln!("{target}: {name} failed");
            std::panic::resume_unwind(panic);
        }
    }
}

#[test]
fn request_path_inputs() {
    let path = fuzz::RequestPath::new();
    replay("request_path", |data| path.run(data));
}

#[test]
fn zone_file_inputs() {
    replay("zone_file", fuzz::zone);
}

#[test]
fn config_file_inputs() {
    replay("config_file", fuzz::config);
}
