//! Cluster mode (docs/cluster.md): three hadns members, each in a namespace of its own,
//! agreeing through a real three-member etcd (support/cluster/). Members are cut off from a
//! node or from etcd by silent drops (nftables, both ways); etcd members and hadns members are killed.

mod agreement;
mod members;
mod moves;
mod nemesis;
mod promotion;
mod serials;
mod vips;
mod writers;

use std::net::IpAddr;
use std::time::{Duration, Instant};

use hickory_proto::op::ResponseCode;

use crate::support::cluster::{MEMBERS, Site};
use crate::support::*;

pub const WWW: &str = "www.example.internal.";
pub const DB: &str = "db.example.internal.";
/// Generous: etcd elections, leases of 2 s, and a loaded machine.
pub const LIMIT: Duration = Duration::from_secs(30);
pub const ALL: [usize; 3] = [0, 1, 2];
/// How long "nothing moved" is watched: a lease (2 s) and a TTL (1 s), the longest any rule
/// makes the leader wait before it names another writer, so a move a broken rule allowed
/// would have happened within it.
pub const STILL: Duration = Duration::from_secs(3);

/// Asserts that every member in `members` answers `expected` on every query for `period`
/// (what must not happen is a move: this watches for one).
pub async fn holds_for(
    site: &Site,
    members: &[usize],
    expected: &Result<Vec<IpAddr>, ResponseCode>,
    period: Duration,
) {
    let end = Instant::now() + period;
    while Instant::now() < end {
        for &i in members {
            let answer = site.answer(i, WWW).await;
            assert_eq!(&answer, expected, "{} moved", MEMBERS[i]);
        }
    }
}

/// Waits until member `i`'s status says it is (or is not) connected to etcd.
pub async fn wait_connected(site: &Site, i: usize, connected: bool) {
    wait_for(
        LIMIT,
        &format!("{} connected={connected}", MEMBERS[i]),
        || async { site.status(i).await["cluster"]["connected"] == connected },
    )
    .await;
}

/// The member index of the leader, as member `i` sees it.
pub async fn leader_index(site: &Site, i: usize) -> Option<usize> {
    let name = site.leader(i).await?;
    MEMBERS.iter().position(|m| *m == name)
}

/// The postgres pool of the cluster tests: checked every 200 ms, `db` the primary.
pub fn pg_pool(pg1: &str, pg2: &str) -> String {
    format!(
        "\n[[pool]]\nname = \"pg\"\ncheck = \"postgres\"\ninterval = \"200ms\"\ntimeout = \"1s\"\n\
         rise = 1\nfall = 1\n[pool.postgres]\nuser = \"postgres\"\nsslmode = \"disable\"\n\
         {pg1}{pg2}\n[[record]]\nname = \"{DB}\"\npool = \"pg\"\nselect = \"primary\"\n"
    )
}
