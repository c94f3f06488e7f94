//! What a session connects with (to one endpoint at a time, chosen by `run`): the
//! member's budget as the connect and request timeout, its etcd user, its TLS files.

use etcd_client::{Certificate, ConnectOptions, Identity, TlsOptions};

use super::{Error, Member};

impl Member {
    pub(super) fn options(&self) -> Result<ConnectOptions, Error> {
        let mut options = ConnectOptions::new()
            .with_connect_timeout(self.budget)
            .with_timeout(self.budget)
            // No HTTP/2 pings: etcd answers pings more often than every 5 s
            // (--grpc-keepalive-min-time) by closing the connection. A dead connection is
            // noticed by the lease keepalive going unanswered instead.
            .with_require_leader(true);
        if let Some((user, password)) = &self.settings.auth {
            options = options.with_user(user.clone(), password.clone());
        }
        if let Some(tls) = &self.settings.tls {
            let read = |path: &std::path::Path| {
                std::fs::read(path).map_err(|e| Error::Lost(format!("{}: {e}", path.display())))
            };
            let mut options_tls = TlsOptions::new();
            if let Some(ca) = &tls.ca_file {
                options_tls = options_tls.ca_certificate(Certificate::from_pem(read(ca)?));
            }
            if let Some((cert, key)) = &tls.identity {
                options_tls = options_tls.identity(Identity::from_pem(read(cert)?, read(key)?));
            }
            options = options.with_tls(options_tls);
        }
        Ok(options)
    }
}
