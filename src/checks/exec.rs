//! `check = "exec"`: a command exits 0 when the node is healthy.
//!
//! The command runs without a shell, in its own process group, with the node in its
//! environment (`HADNS_POOL`, `HADNS_NODE`, `HADNS_ADDRESS`, `HADNS_PORT`). At the timeout
//! the whole group is killed, so a script's children do not outlive the probe.

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

/// Runs `command` (no shell) with `env` added, in its own process group, killed with its
/// children at `timeout`. Exit 0 is `Ok`; otherwise the exit status and the first line of
/// standard error.
pub async fn run_command(
    command: &[String],
    env: &[(&'static str, String)],
    timeout: Duration,
) -> Result<String, String> {
    let program = &command[0];
    let child = Command::new(program)
        .args(&command[1..])
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot run {program}: {}", super::describe(&e)))?;
    let pid = child.id();
    match tokio::time::timeout(timeout, child.wait_with_output()).await {
        Ok(Ok(output)) if output.status.success() => Ok("exit 0".to_string()),
        Ok(Ok(output)) => {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let first_line = stderr.lines().next().unwrap_or("").trim();
            let status = match output.status.code() {
                Some(code) => format!("exit {code}"),
                None => format!("{}", output.status),
            };
            if first_line.is_empty() {
                Err(status)
            } else {
                Err(format!("{status}: {first_line}"))
            }
        }
        Ok(Err(e)) => Err(format!("waiting for {program}: {}", super::describe(&e))),
        Err(_) => {
            if let Some(pid) = pid.and_then(|p| i32::try_from(p).ok()) {
                // The group may be gone already; nothing to do then.
                let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
            }
            Err(format!("timed out after {timeout:?}, killed"))
        }
    }
}
