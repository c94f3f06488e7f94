//! Shutdown in named stages, watched from a thread of its own: a stage that takes longer
//! than it should is logged by name, and a shutdown stuck outside the `on_change` hooks
//! (which run their queue to the end, each bounded by its timeout) ends the process after
//! [`LIMIT`]. A server on the failover path must not need SIGKILL to stop: systemd waits
//! 90 s before it sends one, and the next hadns cannot bind its port until then.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use tracing::{error, warn};

/// How long shutdown may take outside the hooks before the process exits anyway.
pub const LIMIT: Duration = Duration::from_secs(8);

/// How often the watch looks.
const LOOK: Duration = Duration::from_secs(2);

/// The stage shutdown is in (`None` before it began), and whether hooks are running.
static STAGE: Mutex<Option<Stage>> = Mutex::new(None);

#[derive(Clone)]
struct Stage {
    what: String,
    hooks: bool,
}

/// Shutdown is now waiting for `what`.
pub fn stage(what: impl Into<String>) {
    set(what.into(), false);
}

/// Shutdown is now running the queued `on_change` hooks (not bounded by [`LIMIT`]).
pub fn hooks() {
    set("the queued on_change hooks".into(), true);
}

fn set(what: String, hooks: bool) {
    *STAGE.lock().unwrap_or_else(|e| e.into_inner()) = Some(Stage { what, hooks });
}

fn current() -> Option<Stage> {
    STAGE.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

/// Starts the watch: from now on, a stage still unfinished is logged every [`LOOK`], and
/// past [`LIMIT`] (outside the hooks) the process exits with status 1. The thread is not
/// joined; the process ending ends it.
pub fn watch() {
    let began = Instant::now();
    let spawned = std::thread::Builder::new()
        .name("shutdown-watch".into())
        .spawn(move || {
            let mut hooks_time = Duration::ZERO;
            loop {
                // A deadline on a thread of its own, not a synchronisation: nothing waits
                // for this thread, and it looks again only to report and to end a stuck stop.
                std::thread::sleep(LOOK);
                let Some(stage) = current() else { continue };
                let elapsed = began.elapsed();
                if stage.hooks {
                    hooks_time += LOOK;
                }
                warn!(
                    waiting_for = %stage.what,
                    elapsed_ms = elapsed.as_millis() as u64,
                    "shutdown is still waiting"
                );
                if !stage.hooks && elapsed.saturating_sub(hooks_time) >= LIMIT {
                    error!(
                        waiting_for = %stage.what,
                        limit_s = LIMIT.as_secs(),
                        "shutdown did not finish within its limit; exiting now"
                    );
                    std::process::exit(1);
                }
            }
        });
    if let Err(error) = spawned {
        warn!(%error, "cannot start the shutdown watch");
    }
}
