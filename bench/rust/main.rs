//! Benchmarks that drive the real binary, outside the test suite. `bench/*.sh` run them:
//! `cargo bench --bench hadns -- NAME...` with NAME among cluster, downtime, promotion, scale,
//! secondaries, soak and vip-switchover. They share the integration tests' harness (hadns
//! as a child process, real PostgreSQL, network namespaces, real secondaries), compiled in
//! from `tests/integration/`.
//!
//! Under `cargo test --all-targets` this target is built (so it keeps compiling) but runs
//! nothing: only `cargo bench` passes `--bench`.

// The shared harness has helpers only the tests use.
#![allow(dead_code, unused_imports)]

#[path = "../../tests/integration/promotion.rs"]
mod promotion;
#[path = "../../tests/integration/soak.rs"]
mod soak;
#[path = "../../tests/integration/support/mod.rs"]
mod support;

mod cluster;
mod downtime;
#[path = "promotion.rs"]
mod promotion_bench;
mod sampler;
mod scale;
mod secondaries;
#[path = "soak.rs"]
mod soak_bench;
mod vip_switchover;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if !args.iter().any(|a| a == "--bench") {
        println!("hadns benchmarks run with cargo bench (see bench/*.sh); nothing to test");
        return;
    }
    let names: Vec<&str> = args
        .iter()
        .map(String::as_str)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    for name in names {
        match name {
            "cluster" => runtime.block_on(cluster::cluster_benchmark()),
            "downtime" => runtime.block_on(downtime::downtime_benchmark()),
            "promotion" => runtime.block_on(promotion_bench::promotion_benchmark()),
            "scale" => runtime.block_on(scale::scale_benchmark()),
            "secondaries" => runtime.block_on(secondaries::secondaries_benchmark()),
            "soak" => runtime.block_on(soak_bench::soak_benchmark()),
            "vip-switchover" => runtime.block_on(vip_switchover::vip_switchover_benchmark()),
            other => {
                eprintln!(
                    "unknown benchmark {other:?} (cluster, downtime, promotion, scale, secondaries, soak, vip-switchover)"
                );
                std::process::exit(2);
            }
        }
    }
}
