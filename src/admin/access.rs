//! Who may ask what: the screen in front of every endpoint (no bodies; a `Host` that is an
//! address, localhost or a configured name, against DNS rebinding) and the bearer token of
//! the changing endpoints, compared in constant time.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::Json;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tracing::warn;

use super::shared::{MAX_BODY, Outcome, REFUSED_LOG, State};

/// Refuses what no endpoint should receive: a body (413) and, against DNS rebinding, a
/// `Host` that names neither an IP address nor `localhost` (403).
pub(super) async fn screen(
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

/// A changing request without the right token.
pub(super) struct Refusal {
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
pub(super) fn authorize(
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
/// its length (`subtle`): tokens of the same length are compared byte for byte without an
/// early exit, and a length that differs fails with no comparison of content.
fn constant_time_eq(given: &[u8], expected: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    bool::from(given.ct_eq(expected))
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
