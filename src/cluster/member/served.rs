//! What this member tells the others in its key: its configuration's digest, its version,
//! and the newest decision its supervisor serves, so that a leader can know when no
//! member still names a writer it withdrew (`server/cluster/guard.rs`).

use etcd_client::{Client, PutOptions};

use super::{Error, Member, json};
use crate::cluster::wire::MemberInfo;

impl Member {
    pub(super) fn info(&self) -> MemberInfo {
        MemberInfo {
            digest: self.digest.clone(),
            version: env!("CARGO_PKG_VERSION").into(),
            served: self.served,
        }
    }

    /// Writes this member's key (under its lease).
    pub(super) async fn write_info(&mut self, client: &mut Client) -> Result<(), Error> {
        let Some(lease) = self.lease else {
            return Ok(());
        };
        let info = self.info();
        let options = Some(PutOptions::new().with_lease(lease));
        self.timed(client.put(self.keys.member(&self.settings.name), json(&info), options))
            .await??;
        self.acked = info.served;
        Ok(())
    }

    /// The supervisor has published everything up to `published`: when that includes the
    /// current decision, this member serves it, and says so once per decision.
    pub(super) async fn acknowledge(
        &mut self,
        client: &mut Client,
        published: i64,
    ) -> Result<(), Error> {
        if let Some(decision) = &self.state.decision
            && published >= self.decision_revision
        {
            self.served = self.served.max(decision.seq);
        }
        if self.served > self.acked && self.catching_up.is_none() {
            self.write_info(client).await?;
        }
        Ok(())
    }
}
