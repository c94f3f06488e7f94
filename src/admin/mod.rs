//! The admin HTTP endpoint. Only this module (and the CLI client beside it) knows HTTP.
//!
//! | method | path | what |
//! | --- | --- | --- |
//! | GET | `/` | a status page (HTML, refreshes itself) |
//! | GET | `/status` | JSON: records, pools, nodes ([`crate::api::status::Status`]) |
//! | GET | `/metrics` | Prometheus text format |
//! | GET | `/events?limit=N` | JSON: recent events, newest first |
//! | GET | `/timeline?limit=N` | JSON: the last N answer changes, each with its chain of events ([`crate::api::timeline`]) |
//! | POST | `/pools/{pool}/nodes/{node}/drain` | maintenance: the node leaves every answer |
//! | POST | `/pools/{pool}/nodes/{node}/undrain` | and returns |
//! | POST | `/reload` | same as SIGHUP |
//! | POST | `/pools/{pool}/promote?node=N&allow_data_loss=true` | promote a replica (switchover when the primary is up); answered when it ended |
//! | POST | `/pools/{pool}/ack` | lift the pool's promotion `block` |
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
//! cannot read the endpoint through DNS rebinding (`access.rs`: the screen and the token).

mod access;
mod shared;
use access::{authorize, screen};
use shared::REFUSED_LOG;
pub use shared::{Outcome, State};
pub mod client;
mod text;
mod timeline;

use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::{ConnectInfo, Path, Query};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::middleware::{self};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::api::command::{Command, CommandError};
use crate::limits::Connections;

const PAGE: &str = include_str!("page.html");
/// Open admin connections at most; more are closed at once.
pub const MAX_CONNECTIONS: usize = 64;
const MAX_CONNECTIONS_PER_CLIENT: usize = 16;
/// A request's headers must arrive within this.
const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// How long shutdown waits for requests in progress.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// Events returned when `/events` gets no `limit`.
const DEFAULT_EVENTS: usize = 100;

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
        .route("/timeline", get(timeline))
        .route("/pools/{pool}/nodes/{node}/{action}", post(drain))
        .route("/reload", post(reload))
        .route("/pools/{pool}/promote", post(promote))
        .route("/pools/{pool}/ack", post(ack))
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

/// Answer changes `/timeline` shows when it gets no `limit`.
const DEFAULT_TIMELINES: usize = 10;

/// `GET /timeline`: built from the whole event log, so the chains are complete.
async fn timeline(
    axum::extract::State(state): axum::extract::State<State>,
    Query(query): Query<EventsQuery>,
) -> Response {
    let limit = query.limit.unwrap_or(DEFAULT_TIMELINES);
    let all = usize::MAX;
    match ask(&state, |reply| Command::Events { limit: all, reply }).await {
        Ok(events) => Json(serde_json::json!({
            "timelines": crate::api::timeline::build(&events, limit)
        }))
        .into_response(),
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

#[derive(Deserialize)]
struct PromoteQuery {
    node: Option<String>,
    #[serde(default)]
    allow_data_loss: bool,
}

/// `POST /pools/{pool}/promote`: answered when the promotion ended (or was refused).
async fn promote(
    axum::extract::State(state): axum::extract::State<State>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    uri: Uri,
    headers: HeaderMap,
    Path(pool): Path<String>,
    Query(query): Query<PromoteQuery>,
) -> Response {
    if let Err(refusal) = authorize(&state, &headers, peer, uri.path()) {
        return refusal.into_response();
    }
    outcome(
        ask(&state, |reply| Command::Promote {
            pool,
            node: query.node,
            allow_data_loss: query.allow_data_loss,
            reply,
        })
        .await,
    )
}

/// `POST /pools/{pool}/ack`.
async fn ack(
    axum::extract::State(state): axum::extract::State<State>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    uri: Uri,
    headers: HeaderMap,
    Path(pool): Path<String>,
) -> Response {
    if let Err(refusal) = authorize(&state, &headers, peer, uri.path()) {
        return refusal.into_response();
    }
    outcome(ask(&state, |reply| Command::Ack { pool, reply }).await)
}

fn outcome(result: Result<Result<String, CommandError>, Unavailable>) -> Response {
    let error = match result {
        Err(e) => return e.into_response(),
        Ok(Ok(message)) => {
            let body = Outcome {
                ok: true,
                message,
                problems: Vec::new(),
            };
            return (StatusCode::OK, Json(body)).into_response();
        }
        Ok(Err(error)) => error,
    };
    let status = match &error {
        CommandError::Refused(_) => StatusCode::CONFLICT,
        CommandError::NotFound(_) => StatusCode::NOT_FOUND,
        CommandError::Unsaved(_) => StatusCode::INTERNAL_SERVER_ERROR,
        CommandError::Rejected(_) => StatusCode::BAD_REQUEST,
    };
    // The error's own words (`Display`), and a rejected reload's problems one by one.
    let (message, problems) = match error {
        CommandError::Rejected(problems) => (
            "configuration rejected; the running one stays".to_string(),
            problems,
        ),
        other => (other.to_string(), Vec::new()),
    };
    let body = Outcome {
        ok: false,
        message,
        problems,
    };
    (status, Json(body)).into_response()
}
