//! The leader's view of a node from its members' views: a node counts as down (or up)
//! only when a majority of the configured members say so; short of one, it keeps its
//! state, so a member alone (its peers cut off) never moves an answer on its own view.
//! Pure.

use crate::api::status::Health;
use crate::engine::{DbStatus, Observation};

use super::state::State;
use super::wire::NodeView;

/// The observation the leader's engine is fed for one node, from the views of the live
/// members that have one (`(member, view)`), out of `members` configured; `None` while
/// neither side has a majority of `members`: the node keeps its state.
pub fn merge<'a>(
    views: impl IntoIterator<Item = (&'a str, &'a NodeView)>,
    members: usize,
) -> Option<Observation> {
    let mut up: Vec<(&str, &NodeView)> = Vec::new();
    let mut down: Vec<(&str, &NodeView)> = Vec::new();
    for (member, view) in views {
        match view.health {
            Health::Up => up.push((member, view)),
            Health::Down => down.push((member, view)),
            Health::Unknown => {}
        }
    }
    let names =
        |side: &[(&str, &NodeView)]| side.iter().map(|(m, _)| *m).collect::<Vec<_>>().join(", ");
    let majority = members / 2 + 1;
    if up.len() >= majority {
        let db = up
            .iter()
            .filter_map(|(_, v)| v.db.as_ref())
            .max_by_key(|db| newest(db))
            .cloned();
        let mut detail = format!("up for {}", names(&up));
        if !down.is_empty() {
            detail.push_str(&format!("; down for {}", names(&down)));
        }
        return Some(Observation {
            ok: true,
            detail,
            latency: Default::default(),
            conclusive: false,
            refused: false,
            db,
        });
    }
    if down.len() >= majority {
        let mut detail = format!("down for {}: {}", names(&down), down[0].1.reason);
        if !up.is_empty() {
            detail.push_str(&format!("; up for {}", names(&up)));
        }
        // Each member applied its own `fall` already: the majority's word is final.
        return Some(Observation {
            ok: false,
            detail,
            latency: Default::default(),
            conclusive: true,
            refused: down.iter().all(|(_, v)| v.refused),
            db: None,
        });
    }
    None
}

/// Whether the views prove that the node accepts no writes from anyone: a majority of
/// the configured `members` say that its host refused the connection (down, `refused`)
/// or that its database is read-only. A timeout or an unreachable host proves nothing:
/// a partition gives the same, while the node may serve the clients on its side.
pub fn unusable<'a>(
    views: impl IntoIterator<Item = (&'a str, &'a NodeView)>,
    members: usize,
) -> bool {
    let proofs = (views.into_iter())
        .filter(|(_, view)| match view.health {
            Health::Down => view.refused,
            Health::Up => view.db.as_ref().is_some_and(|db| !db.writable),
            Health::Unknown => false,
        })
        .count();
    proofs > members / 2
}

/// The views of `key` (`pool/node`) held by the live members (their key is in etcd) that
/// are configured (`members`): the votes `merge` counts.
pub fn live_views<'a>(
    state: &'a State,
    members: &'a [String],
    key: &'a str,
) -> impl Iterator<Item = (&'a str, &'a NodeView)> + Clone + 'a {
    (state.views.iter())
        .filter(|(member, _)| state.members.contains_key(*member) && members.contains(member))
        .filter_map(move |(member, views)| Some((member.as_str(), views.get(key)?)))
}

/// Of the members' database statuses for one node, the newest: the highest timeline (a
/// member that saw the promotion), then writable, then the furthest position.
fn newest(db: &DbStatus) -> (u64, bool, u64) {
    (
        db.timeline.unwrap_or(0),
        db.writable,
        db.position.unwrap_or(0),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(health: Health, timeline: Option<u64>) -> NodeView {
        NodeView {
            pool: "pg".into(),
            node: "node1".into(),
            health,
            reason: format!("{health}"),
            refused: false,
            db: timeline.map(|t| DbStatus {
                writable: true,
                timeline: Some(t),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn a_node_is_down_only_when_a_majority_of_the_configured_members_says_so() {
        let (up, down) = (view(Health::Up, None), view(Health::Down, None));
        let one_cut_off = merge([("dc1", &down), ("dc2", &up), ("dc3", &up)], 3).unwrap();
        assert!(one_cut_off.ok, "one member of three cannot move it");
        assert_eq!(one_cut_off.detail, "up for dc2, dc3; down for dc1");
        let majority = merge([("dc1", &down), ("dc2", &down), ("dc3", &up)], 3).unwrap();
        assert!(!majority.ok && majority.conclusive);
        assert_eq!(majority.detail, "down for dc1, dc2: down; up for dc3");
    }

    #[test]
    fn short_of_a_majority_of_the_configured_members_the_state_stays() {
        let (up, down) = (view(Health::Up, None), view(Health::Down, None));
        let unknown = view(Health::Unknown, None);
        // One member alone (its two peers cut off) moves nothing, whatever it sees.
        assert_eq!(merge([("dc1", &down)], 3), None);
        assert_eq!(merge([("dc1", &up)], 3), None);
        // Two live of three that agree are a majority of the configured members.
        assert!(!merge([("dc1", &down), ("dc2", &down)], 3).unwrap().ok);
        assert_eq!(merge([("dc1", &down), ("dc2", &up)], 3), None);
        assert_eq!(
            merge([("dc1", &unknown), ("dc2", &down), ("dc3", &up)], 3),
            None
        );
        assert_eq!(merge([], 3), None);
        assert_eq!(merge([("dc1", &unknown), ("dc2", &up)], 3), None);
        // Two members configured: both must agree.
        assert_eq!(merge([("dc1", &down), ("dc2", &up)], 2), None);
        assert!(merge([("dc1", &up), ("dc2", &up)], 2).unwrap().ok);
    }

    #[test]
    fn a_node_is_unusable_only_on_a_majority_of_refusals_or_read_only_reports() {
        let timeout = view(Health::Down, None);
        let refused = NodeView {
            refused: true,
            ..timeout.clone()
        };
        let mut read_only = view(Health::Up, Some(1));
        read_only.db.as_mut().unwrap().writable = false;
        let writable = view(Health::Up, Some(1));
        // A partition: the majority's probes time out, which proves nothing.
        assert!(!unusable([("dc1", &timeout), ("dc2", &timeout)], 3));
        assert!(!unusable(
            [("dc1", &refused), ("dc2", &timeout), ("dc3", &writable)],
            3
        ));
        assert!(unusable([("dc1", &refused), ("dc2", &refused)], 3));
        assert!(unusable([("dc1", &refused), ("dc2", &read_only)], 3));
        assert!(!unusable([("dc1", &read_only), ("dc2", &writable)], 3));
        assert!(
            !unusable([("dc1", &refused)], 3),
            "one member alone proves nothing"
        );
        assert!(
            !unusable([("dc1", &view(Health::Up, None))], 1),
            "up, no database: usable"
        );
    }

    #[test]
    fn the_newest_database_status_wins() {
        let (old, promoted) = (view(Health::Up, Some(1)), view(Health::Up, Some(2)));
        let merged = merge([("dc1", &old), ("dc2", &promoted), ("dc3", &old)], 3).unwrap();
        assert_eq!(merged.db.unwrap().timeline, Some(2));
    }
}
