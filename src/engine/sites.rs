//! Answers by site: a `by_site` record's selector on each site's nodes, then its fallbacks.

use super::*;

impl Engine {
    /// What the record's selector chooses among the nodes `in_site` accepts (`by_site`):
    /// `first` the highest-priority eligible one, `healthy` every eligible one, `replicas`
    /// every eligible replica the last selection found fresh. Empty: the site has none
    /// (the caller tries the next). `primary` is never answered by site.
    pub fn site_answer(&self, record: RecordId, in_site: impl Fn(usize) -> bool) -> Vec<usize> {
        let spec = &self.records[record.0];
        let nodes = &self.nodes[spec.pool];
        let eligible = |i: &usize| in_site(*i) && nodes[*i].eligible();
        match spec.select {
            Select::First => self.pools[spec.pool]
                .by_priority
                .iter()
                .copied()
                .find(eligible)
                .into_iter()
                .collect(),
            Select::Healthy => (0..nodes.len()).filter(eligible).collect(),
            Select::Replicas => (0..nodes.len())
                .filter(eligible)
                .filter(|&i| nodes[i].db.as_ref().is_some_and(|d| !d.writable))
                .filter(|&i| self.state[record.0].unfit[i].is_none())
                .collect(),
            Select::Primary => Vec::new(),
        }
    }

    /// A `by_site` record's answer for the clients of each site (in `[[site]]` order): the
    /// selector on the site's own nodes, else on each fallback site's in order; with no site
    /// left, `on_empty` (or the answer kept while no node is reachable). `None` for a record
    /// not answered by site, or while its pool's first round is pending.
    pub fn site_answers(&self, config: &Config, id: RecordId) -> Option<Vec<Answer>> {
        let record = &config.records[id.0];
        let all = self.answer(id);
        if !record.by_site || *all == Answer::Pending {
            return None;
        }
        let pool = &config.pools[record.pool.0];
        let exhausted = if self.stale_since(id).is_some() {
            all.clone()
        } else {
            match record.on_empty {
                OnEmpty::Nodata => Answer::Nodata,
                OnEmpty::Servfail => Answer::Servfail,
                OnEmpty::All => Answer::Nodes((0..pool.nodes.len()).collect()),
            }
        };
        let sites = config
            .sites
            .iter()
            .enumerate()
            .map(|(site, spec)| {
                std::iter::once(site)
                    .chain(spec.fallback.iter().copied())
                    .map(|s| self.site_answer(id, |n| pool.nodes[n].site == Some(s)))
                    .find(|nodes| !nodes.is_empty())
                    .map_or_else(|| exhausted.clone(), Answer::Nodes)
            })
            .collect();
        Some(sites)
    }

    /// The record's answer and, for a `by_site` record, each site's (`site_answers`).
    pub fn sited(&self, config: &Config, id: RecordId) -> Sited {
        Sited {
            all: self.answer(id).clone(),
            sites: self.site_answers(config, id),
        }
    }
}
