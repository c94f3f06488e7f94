//! What a record answers, in every form it takes: [`Answer`] is generic over what names a
//! node, so that one type and one `map` carry an answer from the engine (node positions)
//! to etcd (node names and addresses) to the DNS (addresses). [`Sited`] adds, for a
//! `by_site` record, the answer per site.

use serde::{Deserialize, Serialize};

/// What a record answers. `N` names a node: its position in the record's pool (the
/// engine's), an agreed node's name and address (`cluster::AgreedNode`, in etcd), or an
/// address (what the DNS serves).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    into = "Json<N>",
    from = "Json<N>",
    bound(
        serialize = "N: Clone + Serialize",
        deserialize = "N: Deserialize<'de>"
    )
)]
pub enum Answer<N = usize> {
    /// The pool's first round of checks has not completed.
    Pending,
    Nodes(Vec<N>),
    /// No node qualifies and `on_empty = "nodata"`.
    Nodata,
    /// No node qualifies and `on_empty = "servfail"`.
    Servfail,
}

impl<N> Answer<N> {
    /// The same answer with each node named by `name`.
    pub fn map<M>(&self, mut name: impl FnMut(&N) -> M) -> Answer<M> {
        match self {
            Answer::Pending => Answer::Pending,
            Answer::Nodes(nodes) => Answer::Nodes(nodes.iter().map(&mut name).collect()),
            Answer::Nodata => Answer::Nodata,
            Answer::Servfail => Answer::Servfail,
        }
    }

    /// Like `map`, leaving out the nodes `name` has no name for.
    pub fn filter_map<M>(&self, mut name: impl FnMut(&N) -> Option<M>) -> Answer<M> {
        match self {
            Answer::Nodes(nodes) => Answer::Nodes(nodes.iter().filter_map(&mut name).collect()),
            other => other.map(|_| unreachable!("only Nodes has nodes")),
        }
    }

    /// `pending`, `nodes`, `nodata` or `servfail`: the word `/status` and etcd use.
    pub fn kind(&self) -> &'static str {
        match self {
            Answer::Pending => "pending",
            Answer::Nodes(_) => "nodes",
            Answer::Nodata => "nodata",
            Answer::Servfail => "servfail",
        }
    }

    /// The nodes answered; none for the other answers.
    pub fn nodes(&self) -> &[N] {
        match self {
            Answer::Nodes(nodes) => nodes,
            _ => &[],
        }
    }
}

/// A record's answer for clients of no site, and for a `by_site` record each site's
/// (`sites[i]` for a client of `[[site]]` `i`, its fallback already followed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sited<N = usize> {
    pub all: Answer<N>,
    pub sites: Option<Vec<Answer<N>>>,
}

impl<N> Sited<N> {
    /// The same answers with each node named by `name`.
    pub fn map<M>(&self, mut name: impl FnMut(&N) -> M) -> Sited<M> {
        Sited {
            all: self.all.map(&mut name),
            sites: (self.sites.as_ref()).map(|s| s.iter().map(|a| a.map(&mut name)).collect()),
        }
    }

    /// The answer for a client of `site` (`None`: of no site, or a site not answered).
    pub fn for_site(&self, site: Option<usize>) -> &Answer<N> {
        site.and_then(|s| self.sites.as_ref()?.get(s))
            .unwrap_or(&self.all)
    }

    /// Whether the answer depends on the client's site.
    pub fn by_site(&self) -> bool {
        self.sites.is_some()
    }
}

impl<N> From<Answer<N>> for Sited<N> {
    fn from(all: Answer<N>) -> Sited<N> {
        Sited { all, sites: None }
    }
}

/// An answer's JSON (in etcd): `{"kind": "nodes", "nodes": [...]}`, `{"kind": "nodata"}`.
#[derive(Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
enum Json<N> {
    Pending,
    Nodata,
    Servfail,
    Nodes { nodes: Vec<N> },
}

impl<N> From<Answer<N>> for Json<N> {
    fn from(answer: Answer<N>) -> Json<N> {
        match answer {
            Answer::Pending => Json::Pending,
            Answer::Nodes(nodes) => Json::Nodes { nodes },
            Answer::Nodata => Json::Nodata,
            Answer::Servfail => Json::Servfail,
        }
    }
}

impl<N> From<Json<N>> for Answer<N> {
    fn from(json: Json<N>) -> Answer<N> {
        match json {
            Json::Pending => Answer::Pending,
            Json::Nodes { nodes } => Answer::Nodes(nodes),
            Json::Nodata => Answer::Nodata,
            Json::Servfail => Answer::Servfail,
        }
    }
}
