//! The `hadns` command line: parsing, logging set-up, signals and exit codes. No logic.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use hadns::cli::{AdminArgs, Cli, Command, LogFormat};
use tokio_util::sync::CancellationToken;
use tracing::{error, info};

/// Exit code for an invalid configuration.
const EXIT_INVALID_CONFIG: u8 = 2;
/// Exit code for invalid options (as clap's own).
const EXIT_USAGE: u8 = 2;

/// Lines for standard output and standard error that never panic: a closed pipe
/// (`hadns status | head -1`) loses the line, nothing more.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}
macro_rules! say_part {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stdout(), $($arg)*);
    }};
}
macro_rules! complain {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let _log = match hadns::logging::init(matches!(cli.log_format, LogFormat::Json), &cli.log_level)
    {
        Ok(guard) => guard,
        Err(e) => {
            complain!("hadns: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            complain!("hadns: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match cli.command {
        Command::CheckConfig { config } => check_config(&config),
        Command::Serve { config } => serve_config(&runtime, config),
        Command::Status { admin, json } => admin_command(&runtime, &admin, |e| async move {
            hadns::admin::client::status(&e, json).await
        }),
        Command::Events {
            admin,
            limit,
            json,
            timeline,
        } => admin_command(&runtime, &admin, |e| async move {
            if timeline {
                hadns::admin::client::timeline(&e, limit).await
            } else {
                hadns::admin::client::events(&e, limit, json).await
            }
        }),
        Command::Drain { admin, pool, node } => admin_command(&runtime, &admin, |e| async move {
            hadns::admin::client::drain(&e, &pool, &node, true).await
        }),
        Command::Undrain { admin, pool, node } => admin_command(&runtime, &admin, |e| async move {
            hadns::admin::client::drain(&e, &pool, &node, false).await
        }),
        Command::Reload { admin } => admin_command(&runtime, &admin, |e| async move {
            hadns::admin::client::reload(&e).await
        }),
        Command::Promote {
            admin,
            pool,
            node,
            allow_data_loss,
        } => admin_command(&runtime, &admin, |e| async move {
            hadns::admin::client::promote(&e, &pool, node.as_deref(), allow_data_loss).await
        }),
        Command::Ack { admin, pool } => admin_command(&runtime, &admin, |e| async move {
            hadns::admin::client::ack(&e, &pool).await
        }),
        Command::Completions { shell } => print_bytes(&hadns::cli::completions(shell)),
        Command::Man => match hadns::cli::manual() {
            Ok(page) => print_bytes(&page),
            Err(e) => {
                complain!("hadns: cannot render the manual page: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Demo { cycles, port } => match runtime
            .block_on(async { hadns::demo::run(cycles, port, shutdown_on_signal()).await })
        {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                complain!("hadns demo: {e:#}");
                ExitCode::FAILURE
            }
        },
    }
}

/// `hadns check-config`: every problem, or a one-line summary.
fn check_config(config: &std::path::Path) -> ExitCode {
    match hadns::prepare(config) {
        Ok(p) => {
            say!(
                "{}: ok ({} pools, {} records, {} zones)",
                config.display(),
                p.config.pools.len(),
                p.config.records.len(),
                p.zones.zones.len()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            complain!("{e}");
            ExitCode::from(EXIT_INVALID_CONFIG)
        }
    }
}

/// `hadns serve`: prepares the configuration fully, then serves until a signal.
fn serve_config(runtime: &tokio::runtime::Runtime, config: PathBuf) -> ExitCode {
    let prepared = match hadns::prepare(&config) {
        Ok(p) => p,
        Err(e) => {
            complain!("{e}");
            return ExitCode::from(EXIT_INVALID_CONFIG);
        }
    };
    match runtime.block_on(serve(config, prepared)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs one request against the admin endpoint; prints its answer or the error.
fn admin_command<F, Fut>(
    runtime: &tokio::runtime::Runtime,
    args: &AdminArgs,
    request: F,
) -> ExitCode
where
    F: FnOnce(hadns::admin::client::Endpoint) -> Fut,
    Fut: std::future::Future<Output = Result<String, String>>,
{
    let endpoint = match hadns::admin::client::Endpoint::locate(
        &args.config,
        args.admin.as_deref(),
        args.token_file.as_deref(),
    ) {
        Ok(e) => e,
        Err(e) => {
            complain!("hadns: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(request(endpoint)) {
        Ok(text) => {
            say_part!("{text}");
            if !text.ends_with('\n') {
                say!("");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            complain!("hadns: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(config_file: PathBuf, prepared: hadns::Prepared) -> anyhow::Result<()> {
    let shutdown = shutdown_on_signal();
    hadns::server::descriptor_budget(&prepared.config);
    let vips = hadns::vip::prepare(&prepared.config)
        .await
        .map_err(anyhow::Error::msg)?;
    let sockets =
        hadns::dns::Sockets::bind(&prepared.config.dns.listen, prepared.config.dns.udp_workers)
            .await
            .context("binding the DNS sockets")?;
    let admin = match &prepared.config.admin {
        Some(admin) => Some(hadns::admin::bind(admin.listen).await?),
        None => None,
    };
    // Every socket is open before any is announced: a client that waits for these lines
    // (systemd's journal, a test) finds the admin endpoint too.
    if let Some(listener) = &admin {
        info!(addr = %listener.local_addr()?, "admin endpoint listening");
    }
    for addr in sockets.local_addrs() {
        info!(%addr, "listening on udp and tcp");
    }
    let hosts = (prepared.config.admin.as_ref()).map_or_else(Vec::new, |a| a.hosts.clone());
    let options = hadns::server::Options {
        config_file: Some(config_file),
        sockets,
        vips,
    };
    let server = hadns::server::start(prepared, options, shutdown.clone())?;
    let admin = admin.map(|listener| {
        let state = server.handle().admin_state(hosts);
        tokio::spawn(hadns::admin::serve(listener, state, shutdown))
    });
    let served = server.wait().await;
    hadns::server::stopping::stage("the admin endpoint");
    if let Some(admin) = admin {
        match admin.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => error!(error = %e, "admin endpoint"),
            Err(e) => error!(error = %e, "admin endpoint task"),
        }
    }
    served.context("serving")?;
    info!("stopped");
    hadns::server::stopping::stage("the runtime's blocking tasks");
    Ok(())
}

/// Writes generated text (a manual page, completions) to standard output.
fn print_bytes(bytes: &[u8]) -> ExitCode {
    use std::io::Write as _;
    match std::io::stdout().write_all(bytes) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            complain!("hadns: cannot write to standard output: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A token cancelled by the first SIGINT or SIGTERM. The handlers are in place when this
/// returns (before any socket is bound), so a signal right after start is never the
/// default action's kill.
fn shutdown_on_signal() -> CancellationToken {
    use tokio::signal::unix::{SignalKind, signal};
    let token = CancellationToken::new();
    let cancel = token.clone();
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        error!("cannot install signal handlers; stop hadns with SIGKILL");
        return token;
    };
    tokio::spawn(async move {
        let name = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        };
        info!(signal = name, "shutting down");
        hadns::server::stopping::stage("the supervisor to stop");
        hadns::server::stopping::watch();
        cancel.cancel();
    });
    token
}
