//! The admin HTTP endpoint. Only this module (and the CLI client beside it) knows HTTP.
//!
//! | method | path | what |
//! | --- | --- | --- |
//! | GET | `/` | a status page (HTML, refreshes itself) |
//! | GET | `/status` | JSON: records, pools, nodes ([`crate::server::status::Status`]) |
//! | GET | `/metrics` | Prometheus text format |
//! | GET | `/events?limit=N` | JSON: recent events, newest first |
//! | POST | `/pools/{pool}/nodes/{node}/drain` | maintenance: the node leaves every answer |
//! | POST | `/pools/{pool}/nodes/{node}/undrain` | and returns |
//! | POST | `/reload` | same as SIGHUP |
//!
//! The POST endpoints need `Authorization: Bearer <token>` with the token from
//! `[admin] token_file`; without a token file they are disabled (403). A wrong or missing
//! token gets 401 and a warning in the log. Every request is answered by the supervisor
//! through a [`Command`], so what this module shows is what the server decided.

pub mod client;

use std::net::SocketAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use axum::extract::{ConnectInfo, Path, Query};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::metrics::Metrics;
use crate::server::{Command, CommandError};

const PAGE: &str = include_str!("page.html");
/// Events returned when `/events` gets no `limit`.
const DEFAULT_EVENTS: usize = 100;

/// What the handlers share.
#[derive(Clone)]
pub struct State {
    pub commands: mpsc::Sender<Command>,
    /// `None`: no `token_file`, the changing endpoints are disabled.
    pub token: Arc<ArcSwap<Option<String>>>,
    pub metrics: Arc<Metrics>,
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
        .with_state(state);
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown.cancelled_owned())
    .await
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
            warn!(peer = %peer, path, why, "admin request refused");
            Err(refuse(
                StatusCode::UNAUTHORIZED,
                &format!("{why}: send Authorization: Bearer <the token in [admin] token_file>"),
            ))
        }
    }
}

/// Compares without stopping at the first difference, so timing does not leak the token.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
