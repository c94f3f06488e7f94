//! The leader's view of a node from its members' views: a node counts as down only when
//! a majority of the members that observe it say so; a tie keeps its state. Pure.

use crate::api::status::Health;
use crate::engine::{DbStatus, Observation};

use super::wire::NodeView;

/// The observation the leader's engine is fed for one node, from the views of the live
/// members that have one (`(member, view)`); `None` on a tie (or no view at all): the node
/// keeps its state.
pub fn merge<'a>(views: impl IntoIterator<Item = (&'a str, &'a NodeView)>) -> Option<Observation> {
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
    if up.len() > down.len() {
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
            db,
        });
    }
    if down.len() > up.len() {
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
            db: None,
        });
    }
    None
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
            db: timeline.map(|t| DbStatus {
                writable: true,
                timeline: Some(t),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn a_node_is_down_only_when_a_majority_of_its_observers_says_so() {
        let (up, down) = (view(Health::Up, None), view(Health::Down, None));
        let one_cut_off = merge([("dc1", &down), ("dc2", &up), ("dc3", &up)]).unwrap();
        assert!(one_cut_off.ok, "one member of three cannot move it");
        assert_eq!(one_cut_off.detail, "up for dc2, dc3; down for dc1");
        let majority = merge([("dc1", &down), ("dc2", &down), ("dc3", &up)]).unwrap();
        assert!(!majority.ok && majority.conclusive);
        assert_eq!(majority.detail, "down for dc1, dc2: down; up for dc3");
    }

    #[test]
    fn a_tie_or_no_view_keeps_the_state() {
        let (up, down) = (view(Health::Up, None), view(Health::Down, None));
        let unknown = view(Health::Unknown, None);
        assert_eq!(merge([("dc1", &down), ("dc2", &up)]), None);
        assert_eq!(
            merge([("dc1", &unknown), ("dc2", &down), ("dc3", &up)]),
            None
        );
        assert_eq!(merge([]), None);
        assert!(merge([("dc1", &unknown), ("dc2", &up)]).unwrap().ok);
    }

    #[test]
    fn the_newest_database_status_wins() {
        let (old, promoted) = (view(Health::Up, Some(1)), view(Health::Up, Some(2)));
        let merged = merge([("dc1", &old), ("dc2", &promoted), ("dc3", &old)]).unwrap();
        assert_eq!(merged.db.unwrap().timeline, Some(2));
    }
}
