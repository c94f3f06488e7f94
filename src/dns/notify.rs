//! NOTIFY (RFC 1996) to the secondaries `[transfer] notify` lists (or a zone's own list,
//! `[[transfer.zone]]`), on every serial change.
//!
//! One task per target, with one socket. It reads what to announce from the current
//! snapshot (zones, their SOA, the targets and the key: a reload changes them like any
//! answer); *when* each zone is sent is [`schedule::Schedule`]'s decision, per zone and
//! independent of every other zone: one zone that the target refuses, ignores or answers
//! slowly never holds up another (several zones' NOTIFYs are outstanding at once, told
//! apart by message id). The latest serial is the one sent; retries back off from 1 s to
//! 30 s; after an answer the zone waits [`HOLD`], so a burst of changes costs a few NOTIFYs
//! (and transfers), never a storm. A target that answers NOTAUTH, REFUSED, NOTIMP or NXDOMAIN
//! (Knot, for a zone it does not carry) does not carry the zone: it is said once (log, `hadns_notifies_total{result="not_served"}`,
//! `/status`) and sent one NOTIFY per later serial only. Every zone is announced once the
//! first round of checks has given every failover name an answer (before that, transfers
//! are not served either).

mod schedule;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Record, RecordType};
use prometheus::IntCounterVec;
use tokio::net::UdpSocket;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

pub use schedule::HOLD;
use schedule::{Answer, Report, Schedule};

use super::snapshot::{Snapshot, Transfer};
use super::tsig;
use crate::api::event::{EventKind, EventRecord, EventSink};
use crate::api::status::NotifyStatus;

/// Where every (target, zone) stands, for `/status`; written by the NOTIFY tasks.
#[derive(Default, Clone)]
pub struct Board(Arc<Mutex<BTreeMap<SocketAddr, Vec<NotifyStatus>>>>);

impl Board {
    /// Every (target, zone), by target then zone.
    pub fn statuses(&self) -> Vec<NotifyStatus> {
        let board = self.0.lock().unwrap_or_else(|e| e.into_inner());
        board.values().flatten().cloned().collect()
    }

    fn set(&self, target: SocketAddr, statuses: Option<Vec<NotifyStatus>>) {
        let mut board = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match statuses {
            Some(statuses) => board.insert(target, statuses),
            None => board.remove(&target),
        };
    }
}

/// Runs the NOTIFY tasks until `shutdown`. `published` changes after every snapshot
/// stored; `counters` is `hadns_notifies_total{target, result}`.
pub async fn run(
    store: Arc<ArcSwap<Snapshot>>,
    mut published: watch::Receiver<()>,
    counters: IntCounterVec,
    board: Board,
    events: EventSink,
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
                board.set(*target, None);
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
                    board.clone(),
                    events.clone(),
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

/// Every target some zone is announced to.
fn targets(snapshot: &Snapshot) -> Vec<SocketAddr> {
    let Some(transfer) = &snapshot.transfer else {
        return Vec::new();
    };
    let mut targets: Vec<SocketAddr> = transfer
        .zones
        .iter()
        .flat_map(|z| transfer.policy.notify_of(&z.origin).iter().copied())
        .collect();
    targets.sort();
    targets.dedup();
    targets
}

/// One target: each of its zones' latest serial, until acknowledged, each zone on its own
/// schedule.
async fn notify_target(
    target: SocketAddr,
    store: Arc<ArcSwap<Snapshot>>,
    mut published: watch::Receiver<()>,
    counters: IntCounterVec,
    board: Board,
    events: EventSink,
    stop: CancellationToken,
) {
    let label = target.to_string();
    let count = |result: &str| counters.with_label_values(&[label.as_str(), result]).inc();
    let Some(socket) = connect(target).await else {
        return;
    };
    let mut schedule = Schedule::default();
    // The request MAC (and key) of each signed NOTIFY outstanding, to check its answer.
    let mut signed: HashMap<u16, (tsig::Key, Vec<u8>)> = HashMap::new();
    let mut buf = vec![0u8; 4096];
    loop {
        let snapshot = store.load_full();
        let Some(transfer) = snapshot.transfer.as_ref() else {
            return;
        };
        let mut reports = if transfer.complete {
            let to = (target, &socket);
            send_due(to, transfer, &mut schedule, &mut signed, &count).await
        } else {
            Vec::new()
        };
        reports.extend(tokio::select! {
            _ = stop.cancelled() => return,
            changed = published.changed() => {
                if changed.is_err() {
                    return;
                }
                Vec::new()
            }
            received = socket.recv(&mut buf) => {
                let now = tokio::time::Instant::now();
                match received {
                    Ok(len) => read_answer(&buf[..len], &signed)
                        .and_then(|(id, answer)| schedule.answered(id, answer, now))
                        .into_iter()
                        .collect(),
                    // An ICMP error: the target is unreachable, for every zone.
                    Err(e) => schedule.unreachable(&format!("no answer: {e}"), now),
                }
            }
            _ = sleep_until(schedule.next_wake(tokio::time::Instant::now())) => {
                schedule.expire(tokio::time::Instant::now())
            }
        });
        signed.retain(|id, _| schedule.is_outstanding(*id));
        for report in reports {
            events.send(log(target, &report, &count));
        }
        board.set(target, Some(statuses(&schedule, &label)));
    }
}

/// Opens a UDP socket connected to `target`; `None` (logged) when it cannot.
async fn connect(target: SocketAddr) -> Option<UdpSocket> {
    let local: SocketAddr = if target.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = match UdpSocket::bind(local).await {
        Ok(socket) => socket,
        Err(error) => {
            warn!(%target, %error, "cannot open a socket for NOTIFY; none will be sent");
            return None;
        }
    };
    if let Err(error) = socket.connect(target).await {
        warn!(%target, %error, "cannot reach the NOTIFY target; none will be sent");
        return None;
    }
    Some(socket)
}

/// Sends `target` a NOTIFY for each zone of `transfer` the schedule says is due (each
/// signed one's MAC kept in `signed`); the zones whose NOTIFY could not be sent.
async fn send_due(
    (target, socket): (SocketAddr, &UdpSocket),
    transfer: &Transfer,
    schedule: &mut Schedule,
    signed: &mut HashMap<u16, (tsig::Key, Vec<u8>)>,
    count: &impl Fn(&str),
) -> Vec<Report> {
    let mut reports = Vec::new();
    let now = tokio::time::Instant::now();
    schedule.set_serials(
        transfer
            .zones
            .iter()
            .filter(|z| transfer.policy.notify_of(&z.origin).contains(&target))
            .map(|z| (z.origin.clone(), serial_of(&z.soa))),
    );
    for send in schedule.due(now, rand::random) {
        // `due` only names zones of this snapshot.
        let Some(zone) = transfer.zone(&send.zone) else {
            continue;
        };
        let key = transfer.policy.key.as_ref();
        count("sent");
        let failed = match message(&zone.soa, send.id, key) {
            Ok((bytes, mac)) => match socket.send(&bytes).await {
                Ok(_) => {
                    if let (Some(key), Some(mac)) = (key, mac) {
                        signed.insert(send.id, (key.clone(), mac));
                    }
                    None
                }
                Err(e) => Some(format!("cannot send: {e}")),
            },
            Err(problem) => Some(problem),
        };
        if let Some(problem) = failed {
            reports.extend(schedule.answered(send.id, Answer::Failed(problem), now));
        }
    }
    reports
}

/// The target's state per zone, for `/status`.
fn statuses(schedule: &Schedule, label: &str) -> Vec<NotifyStatus> {
    schedule
        .states()
        .map(
            |(zone, serial, acknowledged, state, problem)| NotifyStatus {
                target: label.to_string(),
                zone: zone.to_string(),
                state,
                serial,
                acknowledged,
                problem: problem.map(str::to_string),
            },
        )
        .collect()
}

/// One zone's outcome in the log and the counters.
/// Logs and counts a report; the event for the event log.
fn log(target: SocketAddr, report: &Report, count: &impl Fn(&str)) -> EventRecord {
    let (zone, serial, message) = match report {
        Report::Acknowledged {
            zone,
            serial,
            attempts,
        } => {
            count("acknowledged");
            info!(%target, %zone, serial, attempts, "notify acknowledged");
            (
                zone,
                serial,
                format!("{target} acknowledged {zone} serial {serial}"),
            )
        }
        Report::NotServed {
            zone,
            serial,
            answer,
        } => {
            count("not_served");
            warn!(%target, %zone, serial, %answer, "the NOTIFY target does not serve this zone; it gets one NOTIFY per later serial only");
            (
                zone,
                serial,
                format!("{target} does not serve {zone} ({answer})"),
            )
        }
        Report::Failed {
            zone,
            serial,
            attempt,
            problem,
        } => {
            count("failed");
            warn!(%target, %zone, serial, attempt, %problem, "notify not acknowledged; retrying");
            let text = format!(
                "{target} did not acknowledge {zone} serial {serial} (attempt {attempt}): {problem}"
            );
            (zone, serial, text)
        }
    };
    let mut event = EventRecord::new(EventKind::Notify, message);
    // The zone where a record's name goes, the secondary where a node's.
    event.record = Some(zone.to_string());
    event.node = Some(target.to_string());
    event.serial = Some(*serial);
    event
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

/// A NOTIFY for `soa`'s zone and serial with message id `id`, signed with `key` when
/// given (then with its request MAC).
fn message(
    soa: &Record,
    id: u16,
    key: Option<&tsig::Key>,
) -> Result<(Vec<u8>, Option<Vec<u8>>), String> {
    let mut message = Message::new(id, MessageType::Query, OpCode::Notify);
    message.metadata.authoritative = true;
    message.add_query(Query::query(soa.name.clone(), RecordType::SOA));
    message.add_answer(soa.clone());
    let mut bytes = message.to_vec().map_err(|e| e.to_string())?;
    let mac = match key {
        Some(key) => Some(key.sign_request(&mut bytes)?),
        None => None,
    };
    Ok((bytes, mac))
}

/// The answer a datagram from the target carries, and to which NOTIFY (by id); `None` for
/// anything that is not a NOTIFY response. The answer to a signed NOTIFY must be signed in
/// turn (RFC 8945), except a refusal of the signature itself, which cannot be.
fn read_answer(bytes: &[u8], signed: &HashMap<u16, (tsig::Key, Vec<u8>)>) -> Option<(u16, Answer)> {
    let response = Message::from_vec(bytes).ok()?;
    let metadata = &response.metadata;
    if metadata.message_type != MessageType::Response || metadata.op_code != OpCode::Notify {
        return None;
    }
    let answer = match metadata.response_code {
        ResponseCode::NoError => match signed.get(&metadata.id) {
            Some((key, mac)) => match key.verify_response(bytes, mac) {
                Ok(_) => Answer::Acknowledged,
                Err(e) => Answer::Failed(format!("the answer's signature: {e}")),
            },
            None => Answer::Acknowledged,
        },
        code @ (ResponseCode::NotAuth
        | ResponseCode::Refused
        | ResponseCode::NotImp
        | ResponseCode::NXDomain) => Answer::NotServed(code.to_string()),
        code => Answer::Failed(format!("answered {code}")),
    };
    Some((metadata.id, answer))
}

#[cfg(test)]
#[path = "notify_tests.rs"]
mod tests;
