//! Who is calling: the peer address, or, behind trusted proxies, the
//! rightmost `X-Forwarded-For` entry that is not itself a trusted proxy
//! (DESIGN §9, §8a). A spoofed header from an untrusted peer is ignored.

use std::net::{IpAddr, SocketAddr};

use crate::configuration::Cidr;

/// The client address as far as it can be known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAddr {
    /// A known address.
    Ip(IpAddr),
    /// A forwarded entry that is not an address: an untrusted client that
    /// no allow-list admits.
    Unknown,
}

/// Resolves the client of a request from `peer` and its
/// `X-Forwarded-For` header lines, in order.
pub fn resolve<'a>(
    peer: Option<IpAddr>,
    forwarded_for: impl Iterator<Item = &'a [u8]>,
    trusted_proxies: &[Cidr],
) -> ClientAddr {
    let Some(peer) = peer.map(|ip| ip.to_canonical()) else {
        return ClientAddr::Unknown;
    };
    if !is_trusted(&peer, trusted_proxies) {
        return ClientAddr::Ip(peer);
    }
    // Several header lines are one list, joined in order.
    let entries: Vec<&[u8]> = forwarded_for
        .flat_map(|line| line.split(|b| *b == b','))
        .map(|e| e.trim_ascii())
        .filter(|e| !e.is_empty())
        .collect();
    let mut client = ClientAddr::Ip(peer);
    for entry in entries.iter().rev() {
        match parse_entry(entry) {
            Some(ip) if is_trusted(&ip, trusted_proxies) => client = ClientAddr::Ip(ip),
            Some(ip) => return ClientAddr::Ip(ip),
            None => return ClientAddr::Unknown,
        }
    }
    // Every entry was a trusted proxy: the leftmost is the client.
    client
}

fn parse_entry(entry: &[u8]) -> Option<IpAddr> {
    let text = std::str::from_utf8(entry).ok()?;
    text.parse::<IpAddr>()
        .or_else(|_| text.parse::<SocketAddr>().map(|s| s.ip()))
        .ok()
        .map(|ip| ip.to_canonical())
}

fn is_trusted(ip: &IpAddr, trusted_proxies: &[Cidr]) -> bool {
    trusted_proxies.iter().any(|net| net.contains(ip))
}

/// A route's `allow_ips`; empty admits everyone.
#[derive(Debug, Clone, Default)]
pub struct AllowList(Vec<Cidr>);

impl AllowList {
    /// An allow-list of `networks`.
    pub fn new(networks: Vec<Cidr>) -> Self {
        Self(networks)
    }

    /// True when `client` may call the route.
    pub fn allows(&self, client: ClientAddr) -> bool {
        if self.0.is_empty() {
            return true;
        }
        match client {
            ClientAddr::Ip(ip) => self.0.iter().any(|net| net.contains(&ip)),
            ClientAddr::Unknown => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(list: &[&str]) -> Vec<Cidr> {
        list.iter().map(|n| n.parse().unwrap()).collect()
    }

    fn client(peer: &str, lines: &[&str], trusted: &[&str]) -> ClientAddr {
        resolve(
            Some(peer.parse().unwrap()),
            lines.iter().map(|l| l.as_bytes()),
            &nets(trusted),
        )
    }

    fn ip(s: &str) -> ClientAddr {
        ClientAddr::Ip(s.parse().unwrap())
    }

    #[test]
    fn the_forwarded_header_counts_only_from_trusted_peers() {
        let cases = [
            (
                "203.0.113.9",
                vec!["10.0.0.1"],
                vec![],
                ip("203.0.113.9"),
                "no proxies trusted",
            ),
            (
                "203.0.113.9",
                vec!["10.0.0.1"],
                vec!["127.0.0.1"],
                ip("203.0.113.9"),
                "spoofed from untrusted peer",
            ),
            (
                "127.0.0.1",
                vec!["198.51.100.7"],
                vec!["127.0.0.1"],
                ip("198.51.100.7"),
                "one trusted hop",
            ),
            (
                "127.0.0.1",
                vec!["1.1.1.1, 198.51.100.7, 10.0.0.2"],
                vec!["127.0.0.1", "10.0.0.0/8"],
                ip("198.51.100.7"),
                "rightmost untrusted entry",
            ),
            (
                "127.0.0.1",
                vec!["1.1.1.1", "198.51.100.7"],
                vec!["127.0.0.1"],
                ip("198.51.100.7"),
                "lines joined in order",
            ),
            (
                "127.0.0.1",
                vec!["10.0.0.3, 10.0.0.2"],
                vec!["127.0.0.1", "10.0.0.0/8"],
                ip("10.0.0.3"),
                "all trusted: leftmost",
            ),
            (
                "127.0.0.1",
                vec!["1.1.1.1, garbage"],
                vec!["127.0.0.1"],
                ClientAddr::Unknown,
                "unparsable entry",
            ),
            (
                "127.0.0.1",
                vec![],
                vec!["127.0.0.1"],
                ip("127.0.0.1"),
                "no header: the peer",
            ),
            (
                "::ffff:127.0.0.1",
                vec!["198.51.100.7:4431"],
                vec!["127.0.0.1"],
                ip("198.51.100.7"),
                "mapped peer, entry with port",
            ),
        ];
        for (peer, lines, trusted, expected, what) in cases {
            assert_eq!(client(peer, &lines, &trusted), expected, "{what}");
        }
    }

    #[test]
    fn an_allow_list_admits_its_networks_only() {
        let list = AllowList::new(nets(&["10.0.0.0/8", "192.0.2.1"]));
        assert!(list.allows(ip("10.9.9.9")));
        assert!(list.allows(ip("192.0.2.1")));
        assert!(!list.allows(ip("192.0.2.2")));
        assert!(!list.allows(ClientAddr::Unknown));
        assert!(AllowList::default().allows(ClientAddr::Unknown));
    }
}
