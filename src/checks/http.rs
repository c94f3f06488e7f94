//! `check = "http"`: a GET of `path` answers an accepted status, with `body` in it if set.
//!
//! Every probe opens a new connection (no keep-alive pool), so a closed listener is seen
//! at the next probe rather than hidden behind a pooled connection.

use std::net::{IpAddr, SocketAddr};

use crate::config::{HttpCheck, Node};

pub struct HttpProber {
    client: reqwest::Client,
    url: String,
    check: HttpCheck,
}

impl HttpProber {
    pub fn new(check: &HttpCheck, node: &Node) -> HttpProber {
        // Validation guarantees http nodes have a port.
        let socket = SocketAddr::new(node.address, node.port.unwrap_or(80));
        let authority = match node.address {
            IpAddr::V4(_) => socket.to_string(),
            IpAddr::V6(_) => format!("[{}]:{}", node.address, socket.port()),
        };
        let client = reqwest::Client::builder()
            .no_proxy()
            .pool_max_idle_per_host(0)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            // Only a broken TLS backend or resolver config can fail here; we use neither.
            .unwrap_or_else(|_| reqwest::Client::new());
        HttpProber {
            client,
            url: format!("http://{authority}{}", check.path),
            check: check.clone(),
        }
    }

    pub async fn probe(&self) -> Result<String, String> {
        let mut request = self.client.get(&self.url);
        if let Some(host) = &self.check.host {
            request = request.header(reqwest::header::HOST, host);
        }
        let response = request.send().await.map_err(|e| describe(&e))?;
        let status = response.status().as_u16();
        if !self
            .check
            .status
            .iter()
            .any(|range| range.contains(&status))
        {
            return Err(format!("status {status}"));
        }
        if let Some(wanted) = &self.check.body {
            let body = response.text().await.map_err(|e| describe(&e))?;
            if !body.contains(wanted.as_str()) {
                return Err(format!("status {status}, body does not contain {wanted:?}"));
            }
        }
        Ok(format!("status {status}"))
    }
}

/// The innermost cause of a reqwest error is the useful one (`connection refused`).
fn describe(e: &reqwest::Error) -> String {
    let mut source: &dyn std::error::Error = e;
    while let Some(next) = source.source() {
        source = next;
    }
    match source.downcast_ref::<std::io::Error>() {
        Some(io) => super::failure::describe(io),
        None => source.to_string(),
    }
}
