//! The `hadns` command line as clap reads it; `main.rs` carries the commands out. Here in
//! the library so that the manual page and the shell completions (`hadns man`, `hadns
//! completions`) are generated from the one definition.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// The files hadns reads and writes, for `--help` and the manual page.
const FILES: &str = "\
Files:
  /etc/hadns/hadns.toml   the configuration every command reads when --config is not
                          given (config/hadns.toml instead, when the current directory
                          has one: a source checkout); docs: /usr/share/doc/hadns/
  /var/lib/hadns/         the service's state directory (the packaged configuration keeps
                          its drain file there)
  /usr/share/hadns/       Prometheus alert rules and a Grafana dashboard

Each subcommand has its own help: hadns help SUBCOMMAND.";

#[derive(Parser)]
#[command(
    name = "hadns",
    version = crate::api::VERSION,
    about = "Authoritative DNS whose answers follow the healthy primary",
    after_long_help = FILES
)]
pub struct Cli {
    /// Log format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Log level or filter (RUST_LOG syntax); RUST_LOG wins when set.
    #[arg(long, global = true, default_value = "info")]
    pub log_level: String,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
pub enum Command {
    /// Serve DNS and run the health checks.
    Serve {
        #[arg(long, default_value_os_t = default_config())]
        config: PathBuf,
    },
    /// Validate a configuration and its zone files, report every problem, bind nothing.
    CheckConfig {
        #[arg(long, default_value_os_t = default_config())]
        config: PathBuf,
    },
    /// Show what the running hadns believes: records, nodes, health (from its [admin] endpoint).
    Status {
        #[command(flatten)]
        admin: AdminArgs,
        /// Print the JSON document as served.
        #[arg(long)]
        json: bool,
    },
    /// Show the running hadns's recent events, newest first.
    Events {
        #[command(flatten)]
        admin: AdminArgs,
        /// How many events.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        #[arg(long)]
        json: bool,
        /// Draw each answer change with the events that led to it and followed it (probes,
        /// state changes, fence, promotion steps, publication, NOTIFY, transfers) on a time
        /// axis in milliseconds.
        #[arg(long, conflicts_with = "json")]
        timeline: bool,
    },
    /// Maintenance: take a node out of every answer (it is still checked).
    Drain {
        #[command(flatten)]
        admin: AdminArgs,
        pool: String,
        node: String,
    },
    /// Put a drained node back: it is answered again as its health allows.
    Undrain {
        #[command(flatten)]
        admin: AdminArgs,
        pool: String,
        node: String,
    },
    /// Ask the running hadns to re-read its config and zone files (like SIGHUP).
    Reload {
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Promote a replica of a database pool now: a switchover when the primary is up
    /// (demoted first, nothing lost), a failover when it is down. Waits for the end.
    Promote {
        #[command(flatten)]
        admin: AdminArgs,
        pool: String,
        /// The replica to promote (default: the one the rules choose).
        node: Option<String>,
        /// Promote past max_lag, or while a replica still receives from the old primary.
        #[arg(long)]
        allow_data_loss: bool,
    },
    /// Lift a pool's promotion block (automatic promotion allowed again at once).
    Ack {
        #[command(flatten)]
        admin: AdminArgs,
        pool: String,
    },
    /// A self-contained demonstration: two local backends, one name, failover on a timer.
    Demo {
        /// Stop and restart the primary backend this many times (0 = until Ctrl-C).
        #[arg(long, default_value_t = 3)]
        cycles: u32,
        /// DNS port for the demo server (0 = any free port).
        #[arg(long, default_value_t = 5353)]
        port: u16,
    },
    /// Print the shell completion script for SHELL to standard output.
    Completions { shell: clap_complete::Shell },
    /// Print the manual page (roff) to standard output.
    Man,
}

/// The configuration file when `--config` is not given: `config/hadns.toml` in a source
/// checkout (the file exists in the current directory), else the installed
/// `/etc/hadns/hadns.toml` (the Debian package's).
pub fn default_config() -> PathBuf {
    let local = PathBuf::from("config/hadns.toml");
    if local.exists() {
        local
    } else {
        PathBuf::from("/etc/hadns/hadns.toml")
    }
}

/// The manual page, roff, generated from the command line's definition.
pub fn manual() -> std::io::Result<Vec<u8>> {
    use clap::CommandFactory;
    let mut out = Vec::new();
    clap_mangen::Man::new(Cli::command()).render(&mut out)?;
    Ok(out)
}

/// The completion script for `shell`.
pub fn completions(shell: clap_complete::Shell) -> Vec<u8> {
    use clap::CommandFactory;
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "hadns", &mut out);
    out
}

/// How the admin commands find the running hadns.
#[derive(clap::Args)]
pub struct AdminArgs {
    /// The config whose [admin] section names the endpoint and the token file.
    #[arg(long, default_value_os_t = default_config())]
    pub config: PathBuf,
    /// The endpoint's URL (http://127.0.0.1:9153), instead of the config's.
    #[arg(long)]
    pub admin: Option<String>,
    /// The bearer token's file, instead of the config's [admin] token_file.
    #[arg(long)]
    pub token_file: Option<PathBuf>,
}
