//! Names the commit hadns is built from, for `hadns --version`, `/status` and
//! `hadns_build_info`: `HADNS_COMMIT` is the short hash of the commit checked out (edits
//! not committed are not marked), or `unknown` outside a git checkout (a source tarball).
//! A package build may set `HADNS_COMMIT` itself.

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=HADNS_COMMIT");
    let commit = std::env::var("HADNS_COMMIT").ok().or_else(from_git);
    println!(
        "cargo:rustc-env=HADNS_COMMIT={}",
        commit.as_deref().unwrap_or("unknown")
    );
}

fn from_git() -> Option<String> {
    let git = |args: &[&str]| {
        let out = Command::new("git").args(args).output().ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    };
    let dir = git(&["rev-parse", "--git-dir"])?;
    // A new commit or a checkout moves HEAD or a ref.
    for path in ["HEAD", "packed-refs", "refs/heads"] {
        println!("cargo:rerun-if-changed={dir}/{path}");
    }
    git(&["rev-parse", "--short=12", "HEAD"])
}
