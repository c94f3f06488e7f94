//! Partitions, loss and congestion on the site, and the data centres they are drawn on.
//! Cuts are silent drops both ways: nftables rules in the bridge's forward hook (between
//! the namespaces and the host) and in the host's input hook (between addresses on the
//! host). Loss is the same rules with a random share; congestion a token bucket on a
//! member's link (the kernel here has no netem).

use std::net::IpAddr;
use std::process::Command;

use super::*;
use crate::support::nft::nft;

#[derive(Default)]
pub(super) struct Filter {
    cuts: Vec<(String, String)>,
    lossy: Vec<(String, u8)>,
}

impl Site {
    /// Takes member `i` off the bridge (cut from etcd, the other members, the nodes and
    /// the test's client), or puts it back.
    pub fn plug(&self, i: usize, plugged: bool) {
        let state = if plugged { "up" } else { "down" };
        ip(&["-n", &self.ns("br"), "link", "set", &format!("p{i}"), state]);
    }

    /// Cuts `member` off from `address`: silent drops both ways.
    pub fn cut(&self, member: usize, address: &str) {
        self.cut_between(&self.member_ip(member), address);
    }

    pub fn heal(&self, member: usize, address: &str) {
        self.heal_between(&self.member_ip(member), address);
    }

    /// Drops every packet between addresses `a` and `b`, both ways, silently.
    pub fn cut_between(&self, a: &str, b: &str) {
        let mut filter = self.filter.lock().unwrap();
        filter.cuts.push((a.to_string(), b.to_string()));
        self.write_filter(&filter);
    }

    /// Undoes one `cut_between(a, b)` (or `(b, a)`).
    pub fn heal_between(&self, a: &str, b: &str) {
        let mut filter = self.filter.lock().unwrap();
        let found = (filter.cuts.iter())
            .position(|(x, y)| (x == a && y == b) || (x == b && y == a))
            .unwrap_or_else(|| panic!("{a} and {b} were not cut"));
        filter.cuts.remove(found);
        self.write_filter(&filter);
    }

    /// Drops `percent` % of the packets to and from `address` (0: none again).
    pub fn lose(&self, address: &str, percent: u8) {
        let mut filter = self.filter.lock().unwrap();
        filter.lossy.retain(|(a, _)| a != address);
        if percent > 0 {
            filter.lossy.push((address.to_string(), percent));
        }
        self.write_filter(&filter);
    }

    /// Makes member `i`'s link slow both ways (a token bucket of `kbit` kbit/s whose queue
    /// holds up to 300 ms: queueing delay, then tail drops), or fast again (`None`). The
    /// kernel here has no netem; this is how a congested link behaves.
    pub fn slow(&self, i: usize, kbit: Option<u32>) {
        let ends = [
            (self.ns("br"), format!("p{i}")),
            (self.ns(MEMBERS[i]), "eth0".into()),
        ];
        for (ns, dev) in ends {
            let mut args: Vec<String> = ["-n", &ns, "qdisc"].map(String::from).to_vec();
            match kbit {
                Some(kbit) => args.extend(
                    [
                        "replace",
                        "dev",
                        &dev,
                        "root",
                        "tbf",
                        "rate",
                        &format!("{kbit}kbit"),
                    ]
                    .into_iter()
                    .chain(["burst", "1600", "latency", "300ms"])
                    .map(String::from),
                ),
                None => args.extend(["del", "dev", &dev, "root"].map(String::from)),
            }
            let out = Command::new("tc")
                .args(&args)
                .output()
                .expect("cannot run tc");
            assert!(
                out.status.success(),
                "tc {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }

    /// The host's table for this site (its name is the site's).
    pub(super) fn host_table(&self) -> String {
        format!("hadns_{}", self.prefix)
    }

    /// Writes the filter whole, in one nftables transaction per namespace: the bridge's
    /// forward hook (packets between namespaces and the host) and the host's input hook
    /// (packets between the host's own addresses).
    pub(super) fn write_filter(&self, filter: &Filter) {
        let mut rules = String::new();
        for (a, b) in &filter.cuts {
            rules += &format!("ip saddr {a} ip daddr {b} drop\nip saddr {b} ip daddr {a} drop\n");
        }
        for (a, percent) in &filter.lossy {
            for dir in ["saddr", "daddr"] {
                rules += &format!("ip {dir} {a} numgen random mod 100 < {percent} drop\n");
            }
        }
        let table = |family: &str, name: &str, hook: &str| {
            format!(
                "table {family} {name} {{}}\ndelete table {family} {name}\n\
                 table {family} {name} {{\nchain filter {{\n\
                 type filter hook {hook} priority 0; policy accept;\n{rules}}}\n}}\n"
            )
        };
        nft(Some(&self.ns("br")), &table("bridge", "hadns", "forward"));
        nft(None, &table("inet", &self.host_table(), "input"));
    }

    /// Client `d`'s address: the client in data centre `d`.
    pub fn dc_client_ip(&self, d: usize) -> IpAddr {
        self.ip(DC_CLIENTS[d]).parse().unwrap()
    }

    /// Etcd member `e`'s address.
    pub fn etcd_ip(&self, e: usize) -> String {
        self.ip(ETCD[e])
    }

    /// Data centre `d`'s addresses: its member, its etcd member, its node (if it has one)
    /// and its client.
    pub fn dc(&self, d: usize) -> Vec<String> {
        let mut hosts = vec![self.member_ip(d), self.etcd_ip(d)];
        if d < 2 {
            hosts.push(self.node_ip(d));
        }
        hosts.push(self.ip(DC_CLIENTS[d]));
        hosts
    }

    /// Cuts data centre `d` off from the others (`heal_dc` undoes it).
    pub fn isolate_dc(&self, d: usize, isolated: bool) {
        for o in (0..MEMBERS.len()).filter(|&o| o != d) {
            for a in self.dc(d) {
                for b in self.dc(o) {
                    match isolated {
                        true => self.cut_between(&a, &b),
                        false => self.heal_between(&a, &b),
                    }
                }
            }
        }
    }

    pub fn cut_from_etcd(&self, member: usize) {
        for e in ETCD {
            self.cut(member, &self.ip(e));
        }
    }

    pub fn heal_etcd(&self, member: usize) {
        for e in ETCD {
            self.heal(member, &self.ip(e));
        }
    }
}
