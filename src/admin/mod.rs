//! The admin HTTP endpoint. Only this module (and the CLI client beside it) knows HTTP.
//!
//! | method | path | what |
//! | --- | --- | --- |
//! | GET | `/` | a status page (HTML, refreshes itself) |
//! | GET | `/status` | JSON: records, pools, nodes ([`crate::api::status::Status`]) |
//! | GET | `/metrics` | Prometheus text format |
//! | GET | `/events?limit=N` | JSON: recent events, newest first |
//! | POST | `/pools/{pool}/nodes/{node}/drain` | maintenance: the node leaves every answer |
//! | POST | `/pools/{pool}/nodes/{node}/undrain` | and returns |
//! | POST | `/reload` | same as SIGHUP |
//!
//! The POST endpoints need `Authorization: Bearer <token>` with the token from
//! `[admin] token_file`; without a token file they are disabled (403). A wrong or missing
//! token gets 401 and a warning in the log (at most one line per 10 s). Every request is
//! answered by the supervisor through a [`Command`], so what this module shows is what the
//! server decided.
//!
//! Hardening: at most [`MAX_CONNECTIONS`] connections (16 per client address); a request's
//! headers must arrive within 5 s; a request with a body over 4 KiB gets 413 (no endpoint
//! takes one); a `Host` that is not an IP address or `localhost` gets 403, so a web page
//! cannot read the endpoint through DNS rebinding.

pub mod client;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use axum::extract::{ConnectInfo, Path, Query};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::api::command::{Command, CommandError};
use crate::limits::{Connections, Occasional};
use crate::metrics::Metrics;

const PAGE: &str = include_str!("page.html");
/// Open admin connections at most; more are closed at once.
pub const MAX_CONNECTIONS: usize = 64;
const MAX_CONNECTIONS_PER_CLIENT: usize = 16;
/// A request's headers must arrive within this.
const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// The largest request body accepted (no endpoint reads one).
const MAX_BODY: u64 = 4096;
/// How long shutdown waits for requests in progress.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// Refused requests are logged at most this often.
static REFUSED_LOG: Occasional = Occasional::new(Duration::from_secs(10));
/// Events returned when `/events` gets no `limit`.
const DEFAULT_EVENTS: usize = 100;

/// What the handlers share.
#[derive(Clone)]
pub struct State {
    pub commands: mpsc::Sender<Command>,
    /// `None`: no `token_file`, the changing endpoints are disabled.
    pub token: Arc<ArcSwap<Option<String>>>,
    pub metrics: Arc<Metrics>,
    /// `[admin] hosts`: names the endpoint answers for beside addresses and localhost.
    pub hosts: Arc<Vec<String>>,
}

/// The body of every POST answer.
#[derive(Debug, Serialize, Deserialize)]
pub struct Outcome {
    pub ok: bool,
    pub message: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
}

/// Binds the admin listener; the error names the address.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await.map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!("cannot bind the admin endpoint {addr}: {e}"),
        )
    })
}

/// Serves the admin endpoint on `listener` until `shutdown`.
pub async fn serve(
    listener: TcpListener,
    state: State,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/", get(|| async { Html(PAGE) }))
        .route("/status", get(status))
        .route("/metrics", get(metrics))
        .route("/events", get(events))
        .route("/pools/{pool}/nodes/{node}/{action}", post(drain))
        .route("/reload", post(reload))
        .layer(middleware::from_fn_with_state(state.hosts.clone(), screen))
        .with_state(state);
    let open = Connections::new(MAX_CONNECTIONS, MAX_CONNECTIONS_PER_CLIENT);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut connections = tokio::task::JoinSet::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT);
    loop {
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of descriptors, say: wait instead of spinning.
                    if let Some(held_back) = REFUSED_LOG.allow() {
                        warn!(%error, held_back, "admin endpoint cannot accept connections");
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Some(permit) = open.admit(peer.ip()) else {
            if let Some(held_back) = REFUSED_LOG.allow() {
                warn!(%peer, held_back, "admin connection refused: too many open");
            }
            continue;
        };
        let app = app.clone();
        let service = hyper::service::service_fn(move |mut request: hyper::Request<_>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            tower::ServiceExt::oneshot(app.clone(), request.map(axum::body::Body::new))
        });
        let connection =
            graceful.watch(http.serve_connection(hyper_util::rt::TokioIo::new(stream), service));
        connections.spawn(async move {
            let _permit = permit;
            // Errors are the client's (reset, timed out headers): nothing to report.
            let _ = connection.await;
        });
        while connections.try_join_next().is_some() {}
    }
    drop(listener);
    // Requests in progress finish (queued commands get 503 from the stopping supervisor);
    // what is left after the grace period is cut.
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown()).await;
    connections.shutdown().await;
    Ok(())
}

/// Refuses what no endpoint should receive: a body (413) and, against DNS rebinding, a
/// `Host` that names neither an IP address nor `localhost` (403).
async fn screen(
    axum::extract::State(hosts): axum::extract::State<Arc<Vec<String>>>,
    request: axum::extract::Request,
    next: Next,
) -> Response {
    let headers = request.headers();
    let length = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let chunked = headers.contains_key(header::TRANSFER_ENCODING);
    if chunked || length.is_some_and(|l| l > MAX_BODY) {
        let mut response = (
            StatusCode::PAYLOAD_TOO_LARGE,
            "no admin endpoint takes a request body\n",
        )
            .into_response();
        // The body is not read: the connection cannot be reused.
        response.headers_mut().insert(
            header::CONNECTION,
            header::HeaderValue::from_static("close"),
        );
        return response;
    }
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    if let Some(host) = host
        && !host_is_local_or_literal(host)
        && !hosts.contains(&host_name(host).trim_end_matches('.').to_ascii_lowercase())
    {
        if let Some(held_back) = REFUSED_LOG.allow() {
            warn!(
                host,
                held_back, "admin request refused: Host is not an address"
            );
        }
        let message = format!(
            "the admin endpoint answers requests for an IP address, localhost or a name in \
             [admin] hosts, not {host:?}\n"
        );
        return (StatusCode::FORBIDDEN, message).into_response();
    }
    if request.method() != Method::GET && request.method() != Method::POST {
        return StatusCode::METHOD_NOT_ALLOWED.into_response();
    }
    next.run(request).await
}

/// `127.0.0.1:9153`, `[::1]:9153`, `localhost`: yes; `evil.example:9153`: no.
fn host_is_local_or_literal(host: &str) -> bool {
    let name = host_name(host);
    name.parse::<IpAddr>().is_ok() || name.eq_ignore_ascii_case("localhost")
}

/// A `Host` header without its port (and an IPv6 literal without its brackets).
fn host_name(host: &str) -> &str {
    match host.strip_prefix('[') {
        Some(rest) => rest.split_once(']').map_or("", |(name, _)| name),
        None => host.rsplit_once(':').map_or(host, |(name, port)| {
            if port.chars().all(|c| c.is_ascii_digit()) {
                name
            } else {
                host
            }
        }),
    }
}

/// The supervisor is gone: hadns is shutting down.
struct Unavailable;

impl IntoResponse for Unavailable {
    fn into_response(self) -> Response {
        (StatusCode::SERVICE_UNAVAILABLE, "hadns is shutting down\n").into_response()
    }
}

/// Sends a command and waits for the supervisor's reply.
async fn ask<T>(
    state: &State,
    command: impl FnOnce(oneshot::Sender<T>) -> Command,
) -> Result<T, Unavailable> {
    let (tx, rx) = oneshot::channel();
    state
        .commands
        .send(command(tx))
        .await
        .map_err(|_| Unavailable)?;
    rx.await.map_err(|_| Unavailable)
}

async fn status(axum::extract::State(state): axum::extract::State<State>) -> Response {
    match ask(&state, Command::Status).await {
        Ok(status) => Json(status).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn metrics(axum::extract::State(state): axum::extract::State<State>) -> Response {
    match ask(&state, Command::Status).await {
        Ok(status) => (
            [(header::CONTENT_TYPE, prometheus::TEXT_FORMAT)],
            state.metrics.render(&status),
        )
            .into_response(),
        Err(e) => e.into_response(),
    }
}

#[derive(Deserialize)]
struct EventsQuery {
    limit: Option<usize>,
}

async fn events(
    axum::extract::State(state): axum::extract::State<State>,
    Query(query): Query<EventsQuery>,
) -> Response {
    let limit = query.limit.unwrap_or(DEFAULT_EVENTS);
    match ask(&state, |reply| Command::Events { limit, reply }).await {
        Ok(events) => Json(events).into_response(),
        Err(e) => e.into_response(),
    }
}

/// `POST /pools/{pool}/nodes/{node}/drain` and `.../undrain`.
async fn drain(
    axum::extract::State(state): axum::extract::State<State>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    uri: Uri,
    headers: HeaderMap,
    Path((pool, node, action)): Path<(String, String, String)>,
) -> Response {
    let drained = match action.as_str() {
        "drain" => true,
        "undrain" => false,
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    if let Err(refusal) = authorize(&state, &headers, peer, uri.path()) {
        return refusal.into_response();
    }
    let result = ask(&state, |reply| Command::Drain {
        pool,
        node,
        drained,
        reply,
    })
    .await;
    outcome(result)
}

async fn reload(
    axum::extract::State(state): axum::extract::State<State>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    if let Err(refusal) = authorize(&state, &headers, peer, uri.path()) {
        return refusal.into_response();
    }
    outcome(ask(&state, Command::Reload).await)
}

fn outcome(result: Result<Result<String, CommandError>, Unavailable>) -> Response {
    let (status, body) = match result {
        Err(e) => return e.into_response(),
        Ok(Ok(message)) => (
            StatusCode::OK,
            Outcome {
                ok: true,
                message,
                problems: Vec::new(),
            },
        ),
        Ok(Err(CommandError::NotFound(message))) => (
            StatusCode::NOT_FOUND,
            Outcome {
                ok: false,
                message,
                problems: Vec::new(),
            },
        ),
        Ok(Err(CommandError::Unsaved(message))) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            Outcome {
                ok: false,
                message: format!("{message}; nothing changed"),
                problems: Vec::new(),
            },
        ),
        Ok(Err(CommandError::Rejected(problems))) => (
            StatusCode::BAD_REQUEST,
            Outcome {
                ok: false,
                message: "configuration rejected; the running one stays".into(),
                problems,
            },
        ),
    };
    (status, Json(body)).into_response()
}

/// A changing request without the right token.
struct Refusal {
    status: StatusCode,
    message: String,
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let body = Outcome {
            ok: false,
            message: self.message,
            problems: Vec::new(),
        };
        let mut response = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}

/// Checks the bearer token of a changing request.
fn authorize(
    state: &State,
    headers: &HeaderMap,
    peer: SocketAddr,
    path: &str,
) -> Result<(), Refusal> {
    let refuse = |status: StatusCode, message: &str| Refusal {
        status,
        message: message.into(),
    };
    let token = state.token.load();
    let Some(expected) = token.as_ref() else {
        return Err(refuse(
            StatusCode::FORBIDDEN,
            "changing endpoints are disabled: set [admin] token_file in the config",
        ));
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match given {
        Some(given) if constant_time_eq(given.trim().as_bytes(), expected.as_bytes()) => Ok(()),
        _ => {
            let why = if given.is_some() {
                "wrong token"
            } else {
                "no bearer token"
            };
            if let Some(held_back) = REFUSED_LOG.allow() {
                warn!(peer = %peer, path, why, held_back, "admin request refused");
            }
            Err(refuse(
                StatusCode::UNAUTHORIZED,
                &format!("{why}: send Authorization: Bearer <the token in [admin] token_file>"),
            ))
        }
    }
}

/// Compares `given` with `expected` in a time that depends on neither `given`'s content nor
/// its length: every byte of `expected` is compared, whatever was sent.
fn constant_time_eq(given: &[u8], expected: &[u8]) -> bool {
    let mut difference = u8::from(given.len() != expected.len());
    for (i, e) in expected.iter().enumerate() {
        difference |= given.get(i).copied().unwrap_or(!e) ^ e;
    }
    std::hint::black_box(difference) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_whole() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secreT", b"secret"));
        assert!(!constant_time_eq(b"secret-and-more", b"secret"));
        assert!(!constant_time_eq(b"sec", b"secret"));
        assert!(!constant_time_eq(b"", b"secret"));
    }

    #[test]
    fn only_addresses_and_localhost_are_hosts() {
        for ok in [
            "127.0.0.1:9153",
            "127.0.0.1",
            "[::1]:9153",
            "[::1]",
            "localhost:9153",
            "LOCALHOST",
        ] {
            assert!(host_is_local_or_literal(ok), "{ok}");
        }
        for bad in [
            "evil.example:9153",
            "evil.example",
            "127.0.0.1.evil.example",
            "[::1",
            "localhost.evil:80",
        ] {
            assert!(!host_is_local_or_literal(bad), "{bad}");
        }
    }
}
