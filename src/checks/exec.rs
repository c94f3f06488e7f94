//! `check = "exec"`: a command exits 0 when the node is healthy.
//!
//! The command runs without a shell, in its own process group, with the node in its
//! environment (`HADNS_POOL`, `HADNS_NODE`, `HADNS_ADDRESS`, `HADNS_PORT`). At the timeout
//! the whole group is killed, so a script's children do not outlive the probe; so it is
//! when the run is abandoned (hadns stopping, a reload replacing the checker) while the
//! command runs. `run_command` serves hooks and fence commands too.

use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::process::Command;

use crate::config::{ExecCheck, Node, Pool};

pub struct ExecProber {
    command: Vec<String>,
    env: Vec<(&'static str, String)>,
}

impl ExecProber {
    pub fn new(check: &ExecCheck, pool: &Pool, node: &Node) -> ExecProber {
        ExecProber {
            command: check.command.clone(),
            env: vec![
                ("HADNS_POOL", pool.name.clone()),
                ("HADNS_NODE", node.name.clone()),
                ("HADNS_ADDRESS", node.address.to_string()),
                (
                    "HADNS_PORT",
                    node.port.map(|p| p.to_string()).unwrap_or_default(),
                ),
            ],
        }
    }

    pub async fn probe(&self, timeout: Duration) -> Result<String, String> {
        run_command(&self.command, &self.env, timeout).await
    }
}

/// Standard error kept for the reason of a failure.
const STDERR_KEPT: usize = 4096;
/// After the command exits, how long its standard error may take to reach its end: a
/// child it left in the background may hold it open for as long as it runs.
const STDERR_GRACE: Duration = Duration::from_millis(20);

/// Runs `command` (no shell) with `env` added, in its own process group, killed with its
/// children at `timeout`. Exit 0 is `Ok`; otherwise the exit status and the first line of
/// standard error. The command's own exit decides: children it leaves running in the
/// background (holding standard error open) neither delay nor fail it.
pub async fn run_command(
    command: &[String],
    env: &[(&'static str, String)],
    timeout: Duration,
) -> Result<String, String> {
    let program = &command[0];
    let mut child = Command::new(program)
        .args(&command[1..])
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot run {program}: {}", super::failure::describe(&e)))?;
    let pid = child.id();
    // Armed while the command runs: a run abandoned meanwhile (hadns stopping, a checker
    // replaced by a reload) kills the whole group, not only the command.
    let mut group = Group(pid.and_then(|p| i32::try_from(p).ok()));
    let mut stderr = child.stderr.take();
    let mut kept = Vec::new();
    let deadline = tokio::time::Instant::now() + timeout;
    // Standard error is read while the command runs, so a chatty one never blocks on a
    // full pipe; beyond STDERR_KEPT it is read and dropped.
    let exited = loop {
        let mut chunk = [0u8; 1024];
        tokio::select! {
            status = child.wait() => break Some(status),
            read = read_some(&mut stderr, &mut chunk) => keep(&mut stderr, &mut kept, read, &chunk),
            _ = tokio::time::sleep_until(deadline) => break None,
        }
    };
    // Exited by itself: children it left in the background are its business.
    group.0 = None;
    let status = match exited {
        Some(Ok(status)) => status,
        Some(Err(e)) => {
            return Err(format!(
                "waiting for {program}: {}",
                super::failure::describe(&e)
            ));
        }
        None => {
            if let Some(pid) = pid.and_then(|p| i32::try_from(p).ok()) {
                // The group may be gone already; nothing to do then.
                let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
            }
            return Err(format!("timed out after {timeout:?}, killed"));
        }
    };
    if status.success() {
        return Ok("exit 0".to_string());
    }
    // What the command wrote before it exited is in the pipe already.
    let _ = tokio::time::timeout(STDERR_GRACE, async {
        while stderr.is_some() {
            let mut chunk = [0u8; 1024];
            let read = read_some(&mut stderr, &mut chunk).await;
            keep(&mut stderr, &mut kept, read, &chunk);
        }
    })
    .await;
    let text = String::from_utf8_lossy(&kept);
    let first_line = text.lines().next().unwrap_or("").trim();
    let status = match status.code() {
        Some(code) => format!("exit {code}"),
        None => format!("{status}"),
    };
    if first_line.is_empty() {
        Err(status)
    } else {
        Err(format!("{status}: {first_line}"))
    }
}

/// A command's process group, killed when dropped while armed.
struct Group(Option<i32>);

impl Drop for Group {
    fn drop(&mut self) {
        if let Some(pid) = self.0 {
            // The group may be gone already; nothing to do then.
            let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }
}

/// Reads from the pipe while it is open; pending forever once it is closed.
async fn read_some(
    pipe: &mut Option<tokio::process::ChildStderr>,
    chunk: &mut [u8],
) -> std::io::Result<usize> {
    use tokio::io::AsyncReadExt;
    match pipe {
        Some(pipe) => pipe.read(chunk).await,
        None => std::future::pending().await,
    }
}

/// Keeps what a read returned (up to STDERR_KEPT); closes the pipe at its end.
fn keep(
    pipe: &mut Option<tokio::process::ChildStderr>,
    kept: &mut Vec<u8>,
    read: std::io::Result<usize>,
    chunk: &[u8],
) {
    match read {
        Ok(0) | Err(_) => *pipe = None,
        Ok(n) => {
            let room = STDERR_KEPT.saturating_sub(kept.len());
            kept.extend_from_slice(&chunk[..n.min(room)]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Vec<String> {
        vec!["sh".into(), "-c".into(), script.into()]
    }

    /// Whether a process is gone (or a zombie waiting to be reaped: it runs no more).
    fn gone(pid: i32) -> bool {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => true,
            Ok(stat) => stat
                .rsplit_once(')')
                .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        }
    }

    #[tokio::test]
    async fn an_abandoned_run_kills_the_commands_whole_group() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pid");
        let script = format!(
            "sleep 30 & echo $! > {}.new; mv {0}.new {0}; wait",
            file.display()
        );
        let command = sh(&script);
        let run = run_command(&command, &[], Duration::from_secs(60));
        let started = tokio::time::Instant::now();
        let appeared = async {
            while !file.exists() {
                assert!(started.elapsed() < Duration::from_secs(10), "no pid file");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        };
        tokio::select! {
            result = run => panic!("the command ended by itself: {result:?}"),
            _ = appeared => {}
        }
        // The run is dropped here, abandoned while its command runs.
        let pid: i32 = std::fs::read_to_string(&file)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        while !gone(pid) {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "the command's background child {pid} outlived the abandoned run"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test]
    async fn a_background_child_holding_stderr_does_not_delay_the_result() {
        let started = std::time::Instant::now();
        let result = run_command(&sh("sleep 3 & exit 0"), &[], Duration::from_secs(2)).await;
        assert_eq!(result, Ok("exit 0".to_string()));
        // Well under the child's 3 s and the 2 s timeout.
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{:?}",
            started.elapsed()
        );
        let result = run_command(
            &sh("echo broken >&2; sleep 3 & exit 4"),
            &[],
            Duration::from_secs(2),
        )
        .await;
        assert_eq!(result, Err("exit 4: broken".to_string()));
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{:?}",
            started.elapsed()
        );
    }

    #[tokio::test]
    async fn a_command_that_outlives_its_timeout_is_killed() {
        let result = run_command(&sh("sleep 5"), &[], Duration::from_millis(200)).await;
        assert_eq!(result, Err("timed out after 200ms, killed".to_string()));
    }

    #[tokio::test]
    async fn a_chatty_command_does_not_block_on_its_pipe() {
        // 1 MB to standard error, far more than a pipe holds.
        let script = "head -c 1000000 /dev/zero | tr '\\0' x >&2; echo; echo last >&2; exit 2";
        let result = run_command(&sh(script), &[], Duration::from_secs(5)).await;
        let reason = result.unwrap_err();
        assert!(
            reason.starts_with("exit 2: xxxx"),
            "{}",
            &reason[..40.min(reason.len())]
        );
    }
}
