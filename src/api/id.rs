//! Typed indices into the running configuration, so that a pool, a node and a record cannot
//! be passed for one another. They are positions, valid for one configuration: a reload
//! maps them by name (`server::plan`).

use std::fmt;

/// A pool: its position in `Config::pools`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub struct PoolId(pub usize);

/// A node: its pool and its position in the pool's nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub struct NodeId {
    pub pool: PoolId,
    pub index: usize,
}

/// A record: its position in `Config::records`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub struct RecordId(pub usize);

impl NodeId {
    pub fn new(pool: usize, index: usize) -> NodeId {
        NodeId {
            pool: PoolId(pool),
            index,
        }
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "pool {} node {}", self.pool.0, self.index)
    }
}
