//! `[[site]]`: where clients and nodes are, for records answered `by_site`
//! (docs/failover-semantics.md).

use serde::Deserialize;

use super::Problem;
use super::fields::required;
use super::network::Network;

#[derive(Deserialize, Default)]
pub(super) struct RawSite {
    name: Option<String>,
    networks: Option<Vec<String>>,
    fallback: Option<Vec<String>>,
}

/// One site: the networks its clients query from, and where its clients go when it has
/// no node to answer.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Site {
    pub name: String,
    pub networks: Vec<Network>,
    /// Sites to try in order (indices into `Config::sites`) when this one has none.
    pub fallback: Vec<usize>,
}

pub(super) fn validate_sites(raw: Vec<RawSite>, problems: &mut Vec<Problem>) -> Vec<Site> {
    let names: Vec<String> = raw
        .iter()
        .enumerate()
        .map(|(i, s)| {
            required(s.name.clone(), &format!("site[{i}].name"), problems).unwrap_or_default()
        })
        .collect();
    let mut sites: Vec<Site> = Vec::new();
    for (i, raw) in raw.into_iter().enumerate() {
        let path = format!("site[{i}]");
        let name = names[i].clone();
        if !name.is_empty() && names[..i].contains(&name) {
            problems.push(Problem::new(
                format!("{path}.name"),
                format!("site {name:?} is defined twice"),
            ));
        }
        let mut networks = Vec::new();
        let raw_networks = raw.networks.unwrap_or_default();
        if raw_networks.is_empty() {
            problems.push(Problem::new(
                format!("{path}.networks"),
                "needs at least one network (\"10.1.0.0/16\")",
            ));
        }
        for (j, entry) in raw_networks.iter().enumerate() {
            match entry.parse::<Network>() {
                Ok(network) => networks.push(network),
                Err(message) => {
                    problems.push(Problem::new(format!("{path}.networks[{j}]"), message))
                }
            }
        }
        let fallback = fallback(raw.fallback, i, &names, &path, problems);
        sites.push(Site {
            name,
            networks,
            fallback,
        });
    }
    check_overlaps(&sites, problems);
    sites
}

/// The sites site `i` falls back to, by index: every other site in file order when the
/// list is not given.
fn fallback(
    list: Option<Vec<String>>,
    i: usize,
    names: &[String],
    path: &str,
    problems: &mut Vec<Problem>,
) -> Vec<usize> {
    match list {
        // Every other site, in the order of the file.
        None => (0..names.len()).filter(|&k| k != i).collect(),
        Some(list) => {
            let mut fallback = Vec::new();
            for (j, other) in list.iter().enumerate() {
                match names.iter().position(|n| n == other) {
                    Some(k) if k == i => problems.push(Problem::new(
                        format!("{path}.fallback[{j}]"),
                        format!("{other:?} is this site"),
                    )),
                    Some(k) if fallback.contains(&k) => problems.push(Problem::new(
                        format!("{path}.fallback[{j}]"),
                        format!("{other:?} is listed twice"),
                    )),
                    Some(k) => fallback.push(k),
                    None => problems.push(Problem::new(
                        format!("{path}.fallback[{j}]"),
                        format!("unknown site {other:?} ({})", names.join(", ")),
                    )),
                }
            }
            fallback
        }
    }
}

/// A client address must belong to one site only: no two sites' networks overlap.
fn check_overlaps(sites: &[Site], problems: &mut Vec<Problem>) {
    for (i, a) in sites.iter().enumerate() {
        for b in &sites[i + 1..] {
            for na in &a.networks {
                for nb in &b.networks {
                    if na.overlaps(nb) {
                        problems.push(Problem::new(
                            format!("site[{i}].networks"),
                            format!(
                                "{}/{} of {:?} overlaps {}/{} of {:?}",
                                na.address,
                                na.prefix_len,
                                a.name,
                                nb.address,
                                nb.prefix_len,
                                b.name
                            ),
                        ));
                    }
                }
            }
        }
    }
}

/// The site whose networks hold `address` (the longest matching prefix), and that prefix's
/// length.
pub fn site_of(sites: &[Site], address: std::net::IpAddr) -> Option<(usize, u8)> {
    sites
        .iter()
        .enumerate()
        .flat_map(|(i, s)| s.networks.iter().map(move |n| (i, n)))
        .filter(|(_, n)| n.contains(address))
        .max_by_key(|(_, n)| n.prefix_len)
        .map(|(i, n)| (i, n.prefix_len))
}
