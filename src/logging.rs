//! Logging set-up for `hadns serve` and the other commands: the filter, and a writer that
//! never blocks hadns.

/// Starts logging (JSON lines when `json`) at `level` (a level, or a filter in RUST_LOG syntax); RUST_LOG, when set,
/// wins. A value that is neither is an error naming where it came from.
///
/// Lines go through a bounded queue to a thread of their own that writes standard error:
/// a full queue (a reader that stalls) drops lines rather than blocking hadns, and a closed
/// standard error (`hadns serve 2>&1 | head -1`) is ignored rather than fatal. The guard
/// flushes the queue when dropped, at exit.
pub fn init(
    json: bool,
    level: &str,
) -> Result<tracing_appender::non_blocking::WorkerGuard, String> {
    use tracing_subscriber::EnvFilter;
    use tracing_subscriber::filter::LevelFilter;
    let filter = match std::env::var("RUST_LOG") {
        Ok(spec) if !spec.trim().is_empty() => {
            EnvFilter::try_new(&spec).map_err(|e| format!("RUST_LOG={spec:?}: {e}"))?
        }
        _ => {
            // A bare word would otherwise be taken as a module name and silently log nothing.
            if !level.contains(['=', ',']) {
                level.parse::<LevelFilter>().map_err(|_| {
                    format!(
                        "--log-level {level:?}: not a level (trace, debug, info, warn, error, off) \
                         or a filter such as \"info,hadns::checks=debug\""
                    )
                })?;
            }
            // hickory logs every request at info and some malformed packets at warn: one
            // line per packet. hadns counts those (hadns_dns_anomalies_total) instead.
            EnvFilter::try_new(format!(
                "{level},hickory_server=error,hickory_proto=error,hickory_net=error"
            ))
            .map_err(|e| format!("--log-level {level:?}: {e}"))?
        }
    };
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(true)
        .buffered_lines_limit(LOG_QUEUE)
        .thread_name("hadns-log")
        .finish(std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(writer);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
    Ok(guard)
}

/// Log lines waiting for standard error; more are dropped.
const LOG_QUEUE: usize = 16_384;
