//! The Debian package (scripts/package.sh, cargo-deb): installed, upgraded over a previous
//! build and removed on this machine with dpkg. Needs root (dpkg); it installs hadns
//! system-wide for the test and purges it at the end, and refuses to touch an hadns the
//! machine already has that this test did not install.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Versions this test builds; an installed hadns of another version is not its own.
const FIRST: &str = "0.1.0~pkgtest1";
const SECOND: &str = "0.1.0~pkgtest2";

fn run(program: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program} runs: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn must(program: &str, args: &[&str]) -> String {
    let (ok, text) = run(program, args);
    assert!(ok, "{program} {args:?} failed:\n{text}");
    text
}

/// Builds the package of the tested binary as `version`; its path in `into`.
fn build(version: &str, into: &Path) -> PathBuf {
    let root = env!("CARGO_MANIFEST_DIR");
    must(
        &format!("{root}/scripts/package.sh"),
        &["--no-build", "--deb-version", version],
    );
    let name = format!("hadns_{version}_amd64.deb");
    let built = Path::new(root).join("target/debian").join(&name);
    let kept = into.join(&name);
    std::fs::copy(&built, &kept).unwrap_or_else(|e| panic!("{}: {e}", built.display()));
    kept
}

fn installed_version() -> Option<String> {
    let (ok, version) = run("dpkg-query", &["-W", "-f", "${Version}", "hadns"]);
    (ok && !version.is_empty()).then_some(version)
}

fn mode_and_owner(path: &str) -> String {
    must("stat", &["-c", "%a %U:%G", path]).trim().to_string()
}

#[test]
fn the_package_installs_upgrades_over_a_previous_build_and_is_removed() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "the package test installs with dpkg: run the tests as root"
    );
    if let Some(version) = installed_version() {
        assert!(
            version.contains("~pkgtest"),
            "hadns {version} is installed on this machine; the package test would replace it"
        );
        must("dpkg", &["--purge", "hadns"]);
    }
    let dir = tempfile::tempdir().unwrap();
    let first = build(FIRST, dir.path());
    let second = build(SECOND, dir.path());

    // Install: the user, the state directory, the configuration readable by the service's
    // group only, and a configuration that passes check-config as the service's user.
    must("dpkg", &["-i", first.to_str().unwrap()]);
    assert_eq!(installed_version().as_deref(), Some(FIRST));
    let user = must("getent", &["passwd", "hadns"]);
    assert!(user.contains(":/var/lib/hadns:"), "{user}");
    assert_eq!(mode_and_owner("/var/lib/hadns"), "750 hadns:hadns");
    assert_eq!(mode_and_owner("/etc/hadns"), "750 root:hadns");
    assert_eq!(mode_and_owner("/etc/hadns/hadns.toml"), "640 root:hadns");
    let checked = must(
        "runuser",
        &[
            "-u",
            "hadns",
            "--",
            "/usr/bin/hadns",
            "check-config",
            "--config",
            "/etc/hadns/hadns.toml",
        ],
    );
    assert!(checked.contains("/etc/hadns/hadns.toml: ok"), "{checked}");
    // Without --config, an installed hadns reads /etc/hadns/hadns.toml.
    let (ok, text) = run(
        "sh",
        &["-c", "cd / && runuser -u hadns -- hadns check-config"],
    );
    assert!(ok && text.contains("/etc/hadns/hadns.toml: ok"), "{text}");

    // The version names the commit, as the tested binary does.
    let version = must("/usr/bin/hadns", &["--version"]);
    let tested = must(env!("CARGO_BIN_EXE_hadns"), &["--version"]);
    assert_eq!(version, tested);
    // The commit is the one the binary was built from (12 hex digits), or "unknown" outside
    // a git checkout; not compared with HEAD, which a commit made since the build moves.
    let commit = version
        .split("(commit ")
        .nth(1)
        .and_then(|rest| rest.strip_suffix(")\n"))
        .unwrap_or_default();
    assert!(
        commit == "unknown"
            || (commit.len() == 12 && commit.chars().all(|c| c.is_ascii_hexdigit())),
        "{version}"
    );

    // The unit passes systemd's own check; the manual page and completions are there.
    let verified = must(
        "systemd-analyze",
        &["verify", "/usr/lib/systemd/system/hadns.service"],
    );
    assert!(
        verified.trim().is_empty(),
        "systemd-analyze verify: {verified}"
    );
    let page = must("sh", &["-c", "zcat /usr/share/man/man1/hadns.1.gz"]);
    assert!(
        page.contains(".TH hadns 1"),
        "{}",
        &page[..page.len().min(400)]
    );
    assert!(
        page.contains("/etc/hadns/hadns.toml"),
        "the page names the installed config"
    );
    must(
        "bash",
        &[
            "-c",
            "source /usr/share/bash-completion/completions/hadns && complete -p hadns",
        ],
    );
    for file in [
        "/usr/share/zsh/vendor-completions/_hadns",
        "/usr/share/fish/vendor_completions.d/hadns.fish",
        "/usr/share/hadns/prometheus/hadns.rules.yml",
        "/usr/share/hadns/grafana/hadns.json",
        "/usr/share/doc/hadns/operations.md",
    ] {
        assert!(Path::new(file).exists(), "{file} is installed");
    }

    // Upgrade over the previous build: the operator's change to the configuration stays,
    // the drain file in the state directory stays, the user is the same.
    let edited = "\n# changed by the operator\n";
    let mut config = std::fs::read_to_string("/etc/hadns/hadns.toml").unwrap();
    config.push_str(edited);
    std::fs::write("/etc/hadns/hadns.toml", &config).unwrap();
    std::fs::write("/var/lib/hadns/drained.toml", "# state\n").unwrap();
    must("dpkg", &["-i", "--force-confold", second.to_str().unwrap()]);
    assert_eq!(installed_version().as_deref(), Some(SECOND));
    assert_eq!(
        std::fs::read_to_string("/etc/hadns/hadns.toml").unwrap(),
        config
    );
    assert!(Path::new("/var/lib/hadns/drained.toml").exists());
    assert_eq!(must("getent", &["passwd", "hadns"]), user);
    assert_eq!(mode_and_owner("/etc/hadns/hadns.toml"), "640 root:hadns");

    // Remove keeps the configuration and the state; purge takes both.
    must("dpkg", &["-r", "hadns"]);
    assert!(!Path::new("/usr/bin/hadns").exists());
    assert!(Path::new("/etc/hadns/hadns.toml").exists());
    assert!(Path::new("/var/lib/hadns/drained.toml").exists());
    must("dpkg", &["--purge", "hadns"]);
    assert!(installed_version().is_none());
    assert!(!Path::new("/etc/hadns").exists());
    assert!(!Path::new("/var/lib/hadns").exists());
}
