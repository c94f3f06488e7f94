//! NOTIFY (RFC 1996) to the secondaries `[transfer] notify` lists, on every serial change.
//!
//! One task per target. It reads what to announce from the current snapshot (zones, their
//! SOA, the targets and the key: a reload changes them like any answer) and, for each zone
//! whose serial differs from the last one the target acknowledged, sends a NOTIFY for the
//! **latest** serial and waits for the answer: 1 s, then twice as long per attempt up to
//! 30 s, until acknowledged (after an error such as port unreachable, a newer serial is
//! sent without waiting the backoff out, at most once per [`HOLD`]). Changes while a NOTIFY is outstanding are not sent on their
//! own: the next NOTIFY carries the latest serial. After an acknowledgement the target gets
//! no other NOTIFY for that zone for [`HOLD`], so a burst of changes costs a few NOTIFYs
//! (and transfers), never a storm. Every zone is announced once the first round of checks has
//! given every failover name an answer (before that, transfers are not served either).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{LowerName, Record, RecordType};
use prometheus::IntCounterVec;
use tokio::net::UdpSocket;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::snapshot::Snapshot;
use super::tsig;

/// The first attempt's wait for an answer; each later one waits twice as long.
const FIRST_WAIT: Duration = Duration::from_secs(1);
const LONGEST_WAIT: Duration = Duration::from_secs(30);
/// After an acknowledged NOTIFY, the next one for the same zone waits at least this long.
pub const HOLD: Duration = Duration::from_millis(250);

/// Runs the NOTIFY tasks until `shutdown`. `published` changes after every snapshot
/// stored; `counters` is `hadns_notifies_total{target, result}`.
pub async fn run(
    store: Arc<ArcSwap<Snapshot>>,
    mut published: watch::Receiver<()>,
    counters: IntCounterVec,
    shutdown: CancellationToken,
) {
    let mut running: HashMap<SocketAddr, CancellationToken> = HashMap::new();
    let mut tasks = JoinSet::new();
    loop {
        let targets = targets(&store.load());
        running.retain(|target, stop| {
            let keep = targets.contains(target);
            if !keep {
                stop.cancel();
            }
            keep
        });
        for target in targets {
            running.entry(target).or_insert_with(|| {
                let stop = shutdown.child_token();
                tasks.spawn(notify_target(
                    target,
                    store.clone(),
                    published.clone(),
                    counters.clone(),
                    stop.clone(),
                ));
                stop
            });
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            changed = published.changed() => if changed.is_err() { break },
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
        }
    }
    tasks.shutdown().await;
}

fn targets(snapshot: &Snapshot) -> Vec<SocketAddr> {
    snapshot
        .transfer
        .as_ref()
        .map(|t| t.policy.notify.clone())
        .unwrap_or_default()
}

/// One target: every zone's latest serial, until acknowledged.
async fn notify_target(
    target: SocketAddr,
    store: Arc<ArcSwap<Snapshot>>,
    mut published: watch::Receiver<()>,
    counters: IntCounterVec,
    stop: CancellationToken,
) {
    let label = target.to_string();
    let count = |result: &str| counters.with_label_values(&[label.as_str(), result]).inc();
    let local: SocketAddr = if target.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = match UdpSocket::bind(local).await {
        Ok(socket) => socket,
        Err(error) => {
            warn!(%target, %error, "cannot open a socket for NOTIFY; none will be sent");
            return;
        }
    };
    if let Err(error) = socket.connect(target).await {
        warn!(%target, %error, "cannot reach the NOTIFY target; none will be sent");
        return;
    }
    let mut acknowledged: HashMap<LowerName, (u32, tokio::time::Instant)> = HashMap::new();
    let mut attempts: HashMap<LowerName, u32> = HashMap::new();
    loop {
        let snapshot = store.load_full();
        let Some(transfer) = snapshot.transfer.as_ref() else {
            return;
        };
        if !transfer.complete {
            tokio::select! {
                _ = stop.cancelled() => return,
                changed = published.changed() => if changed.is_err() { return },
            }
            continue;
        }
        let now = tokio::time::Instant::now();
        // The first zone that needs a NOTIFY now, and when the next one held back may go.
        let mut due = None;
        let mut next_hold: Option<tokio::time::Instant> = None;
        for zone in &transfer.zones {
            let serial = serial_of(&zone.soa);
            match acknowledged.get(&zone.origin) {
                Some((acked, _)) if *acked == serial => {}
                Some((_, at)) if now < *at + HOLD => {
                    let at = *at + HOLD;
                    next_hold = Some(next_hold.map_or(at, |n| n.min(at)));
                }
                _ => {
                    due = Some(zone);
                    break;
                }
            }
        }
        let Some(zone) = due else {
            tokio::select! {
                _ = stop.cancelled() => return,
                changed = published.changed() => if changed.is_err() { return },
                _ = sleep_until(next_hold) => {}
            }
            continue;
        };
        let serial = serial_of(&zone.soa);
        let attempt = attempts.entry(zone.origin.clone()).or_insert(0);
        let wait = FIRST_WAIT
            .saturating_mul(1 << (*attempt).min(5))
            .min(LONGEST_WAIT);
        *attempt += 1;
        let key = transfer.policy.key.clone();
        count("sent");
        let sent = tokio::time::Instant::now();
        let result = tokio::select! {
            _ = stop.cancelled() => return,
            result = exchange(&socket, &zone.soa, key.as_ref(), wait) => result,
        };
        if result.is_err() {
            // The rest of this attempt's wait (a target that refused is not flooded),
            // unless a newer serial comes: that is sent at once, at most once per HOLD (a
            // secondary that was down when the last change was announced learns the next
            // one without waiting out the backoff).
            published.borrow_and_update();
            let until = sent + wait;
            let newer = async {
                tokio::time::sleep_until(sent + HOLD).await;
                let _ = published.changed().await;
            };
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep_until(until) => {}
                _ = newer => {}
            }
        }
        match result {
            Ok(()) => {
                count("acknowledged");
                let attempts = attempts.remove(&zone.origin).unwrap_or(1);
                info!(%target, zone = %zone.origin, serial, attempts, "notify acknowledged");
                acknowledged.insert(zone.origin.clone(), (serial, tokio::time::Instant::now()));
            }
            Err(problem) => {
                count("failed");
                warn!(%target, zone = %zone.origin, serial, attempt = *attempt, %problem, "notify not acknowledged; retrying");
            }
        }
    }
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

fn serial_of(soa: &Record) -> u32 {
    match &soa.data {
        hickory_proto::rr::RData::SOA(soa) => soa.serial,
        _ => 0,
    }
}

/// Sends one NOTIFY for `soa`'s zone and serial and waits up to `wait` for its answer.
async fn exchange(
    socket: &UdpSocket,
    soa: &Record,
    key: Option<&tsig::Key>,
    wait: Duration,
) -> Result<(), String> {
    let id: u16 = rand::random();
    let mut message = Message::new(id, MessageType::Query, OpCode::Notify);
    message.metadata.authoritative = true;
    message.add_query(Query::query(soa.name.clone(), RecordType::SOA));
    message.add_answer(soa.clone());
    let mut bytes = message.to_vec().map_err(|e| e.to_string())?;
    let request_mac = match key {
        Some(key) => Some(key.sign_request(&mut bytes)?),
        None => None,
    };
    let deadline = tokio::time::Instant::now() + wait;
    let outcome = async {
        socket
            .send(&bytes)
            .await
            .map_err(|e| format!("cannot send: {e}"))?;
        let mut buf = vec![0u8; 4096];
        loop {
            let len = socket
                .recv(&mut buf)
                .await
                .map_err(|e| format!("no answer: {e}"))?;
            let answer = &buf[..len];
            let Ok(response) = Message::from_vec(answer) else {
                continue;
            };
            if response.metadata.id != id
                || response.metadata.message_type != MessageType::Response
                || response.metadata.op_code != OpCode::Notify
            {
                continue;
            }
            if response.metadata.response_code != ResponseCode::NoError {
                return Err(format!("answered {}", response.metadata.response_code));
            }
            if let (Some(key), Some(mac)) = (key, &request_mac) {
                key.verify_response(answer, mac)
                    .map_err(|e| format!("the answer's signature: {e}"))?;
            }
            return Ok(());
        }
    };
    match tokio::time::timeout_at(deadline, outcome).await {
        Ok(result) => result,
        Err(_) => Err(format!("no answer in {wait:?}")),
    }
}
