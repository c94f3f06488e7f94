//! A client that writes continuously through a failover name: it resolves the name
//! through hadns, connects to the address it gets, inserts increasing numbers and
//! remembers each one the server acknowledged; on any error it resolves and reconnects at
//! once.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use hickory_proto::rr::RecordType;
use mysql_async::prelude::Queryable;
use tokio::time::Instant;

use crate::support::client::{addresses, udp_query};

/// One acknowledged write: its number, the server that took it, when.
#[derive(Debug, Clone, Copy)]
pub struct Ack {
    pub n: u64,
    pub server: IpAddr,
    pub at: Instant,
}

pub struct Writer {
    stop: Arc<AtomicBool>,
    acks: Arc<std::sync::Mutex<Vec<Ack>>>,
    task: tokio::task::JoinHandle<u64>,
}

impl Writer {
    /// Writes into `app.t (n)` on whatever `name` answers, as the user `app` (password
    /// `app`: an application's account, which `read_only` stops); `ports` maps each
    /// server's address to its port.
    pub fn start(dns: SocketAddr, name: &str, ports: HashMap<IpAddr, u16>) -> Writer {
        let stop = Arc::new(AtomicBool::new(false));
        let acks = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (stop2, acks2, name) = (stop.clone(), acks.clone(), name.to_string());
        let task = tokio::spawn(async move {
            let mut n = 0u64;
            let mut session: Option<(IpAddr, mysql_async::Conn)> = None;
            while !stop2.load(Ordering::Relaxed) {
                let (server, conn) = match session.as_mut() {
                    Some((server, conn)) => (*server, conn),
                    None => {
                        let answer = udp_query(dns, &name, RecordType::A, None).await;
                        let Some(&ip) = addresses(&answer).first() else {
                            tokio::time::sleep(Duration::from_millis(5)).await;
                            continue;
                        };
                        let opts: mysql_async::Opts = mysql_async::OptsBuilder::default()
                            .ip_or_hostname(ip.to_string())
                            .tcp_port(ports[&ip])
                            .user(Some("app"))
                            .pass(Some("app"))
                            .prefer_socket(false)
                            .into();
                        match tokio::time::timeout(
                            Duration::from_secs(1),
                            mysql_async::Conn::new(opts),
                        )
                        .await
                        {
                            Ok(Ok(conn)) => session.insert((ip, conn)),
                            _ => {
                                tokio::time::sleep(Duration::from_millis(5)).await;
                                continue;
                            }
                        };
                        let (server, conn) = session.as_mut().unwrap();
                        (*server, conn)
                    }
                };
                let next = n + 1;
                let write = conn.query_drop(format!("INSERT INTO app.t (n) VALUES ({next})"));
                match tokio::time::timeout(Duration::from_secs(2), write).await {
                    Ok(Ok(())) => {
                        n = next;
                        acks2.lock().unwrap().push(Ack {
                            n,
                            server,
                            at: Instant::now(),
                        });
                    }
                    // Refused (read-only), lost or hung: ask the name again. A number
                    // that may or may not have been written is skipped, never reused.
                    _ => {
                        n = next;
                        session = None;
                    }
                }
            }
            n
        });
        Writer { stop, acks, task }
    }

    /// The writes acknowledged so far.
    pub fn acks(&self) -> Vec<Ack> {
        self.acks.lock().unwrap().clone()
    }

    /// Waits until a write was acknowledged by `server` after `after`; returns when.
    pub async fn wait_for_write(&self, server: IpAddr, after: Instant, limit: Duration) -> Instant {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(ack) = self
                .acks()
                .iter()
                .find(|a| a.server == server && a.at > after)
            {
                return ack.at;
            }
            assert!(
                Instant::now() < deadline,
                "no write through the name reached {server} within {limit:?}"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    pub async fn stop(self) -> Vec<Ack> {
        self.stop.store(true, Ordering::Relaxed);
        let acks = self.acks;
        let _ = self.task.await;
        acks.lock().unwrap().clone()
    }
}
