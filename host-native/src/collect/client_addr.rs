//! The client address of a request behind trusted reverse proxies (issue 13, "Behind a proxy").
//!
//! The per-address rate limit keys on the client address. Without trusted proxies (the
//! default) that is the TCP peer. With `collector.trusted-proxies` (`CIDR,…`), a request whose peer is in
//! that list has its client address taken from `Forwarded` (RFC 7239 `for=`) or else
//! `X-Forwarded-For`; the same headers from any other peer are ignored, so a client cannot pick
//! its own bucket by sending them.
//!
//! # Decisions where the issue and SPEC are silent
//! - **Rightmost untrusted.** Each proxy appends the address it received the request from, so
//!   only the right end of the chain is vouched for. The chain is walked from the right,
//!   skipping addresses that are themselves trusted proxies, and the first untrusted address is
//!   the client. Everything left of it was written by the client and is not believed. If every
//!   address is trusted, the leftmost one is used.
//! - **`Forwarded` wins.** When a trusted peer sends `Forwarded`, `X-Forwarded-For` is not read
//!   at all (RFC 7239 §7.4: the newer header is the one to trust); several header lines of
//!   either kind are one list, in order.
//! - **Malformed means the peer.** A `Forwarded` header that does not parse (no `=`, an
//!   unterminated quote, an element without `for=`), or an `X-Forwarded-For` with an empty
//!   member, is ignored as a whole and the peer is the client. A syntactically valid entry that
//!   is not an address (`for=unknown`, an obfuscated `for=_hidden`, a name) stops the walk: the
//!   client is then the nearest trusted hop to its right (or the peer), so an unknown client
//!   shares its proxy's bucket rather than escaping it.
//! - Ports (`"[2001:db8::1]:4711"`, `192.0.2.1:80`) are dropped; IPv4-mapped IPv6 counts as
//!   IPv4. A bare address in the list means a single host (`/32`, `/128`).

use std::net::IpAddr;
use std::str::FromStr;

use axum::http::HeaderMap;

/// One network, `ADDRESS/PREFIX` or a bare address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    net: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Whether `ip` lies in this network (IPv4-mapped IPv6 is matched as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.net, ip.to_canonical()) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                n.to_bits() & mask == a.to_bits() & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                n.to_bits() & mask == a.to_bits() & mask
            }
            _ => false,
        }
    }
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let net = IpAddr::from_str(addr)
            .map_err(|_| format!("{s:?} is not an IP address or CIDR (e.g. 10.0.0.0/8)"))?
            .to_canonical();
        let max = if net.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{s:?}: the prefix length must be 0 to {max}"))?,
        };
        Ok(Cidr { net, prefix })
    }
}

/// The trusted reverse proxies; empty (the default) trusts no forwarding header.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<Cidr>);

impl TrustedProxies {
    /// Whether `ip` is a trusted proxy.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|c| c.contains(ip))
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl FromStr for TrustedProxies {
    type Err = String;

    /// A comma-separated list of CIDRs; empty members are ignored.
    fn from_str(s: &str) -> Result<Self, String> {
        s.split(',')
            .filter(|m| !m.trim().is_empty())
            .map(Cidr::from_str)
            .collect::<Result<Vec<_>, _>>()
            .map(TrustedProxies)
    }
}

/// The client address of a request from `peer` (see the module docs).
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &TrustedProxies) -> IpAddr {
    let peer = peer.to_canonical();
    if !trusted.contains(peer) {
        return peer;
    }
    let chain = if headers.contains_key("forwarded") {
        forwarded_chain(headers)
    } else if headers.contains_key("x-forwarded-for") {
        xff_chain(headers)
    } else {
        return peer;
    };
    let Some(chain) = chain else {
        return peer;
    };
    let mut client = peer;
    for hop in chain.iter().rev() {
        match hop {
            None => return client,
            Some(ip) => {
                client = ip.to_canonical();
                if !trusted.contains(client) {
                    return client;
                }
            }
        }
    }
    client
}

/// All values of header `name`, joined as one comma-separated list; `None` if one is not text.
fn joined(headers: &HeaderMap, name: &str) -> Option<String> {
    let mut out = Vec::new();
    for v in headers.get_all(name) {
        out.push(v.to_str().ok()?);
    }
    Some(out.join(","))
}

/// A node (`192.0.2.1`, `192.0.2.1:80`, `[2001:db8::1]:4711`, `2001:db8::1`) as an address;
/// `None` for anything else (`unknown`, an obfuscated identifier, a name).
fn node(s: &str) -> Option<IpAddr> {
    let s = s.trim();
    if let Some(rest) = s.strip_prefix('[') {
        let (inside, after) = rest.split_once(']')?;
        if !(after.is_empty() || after.starts_with(':')) {
            return None;
        }
        return inside.parse::<std::net::Ipv6Addr>().ok().map(IpAddr::V6);
    }
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(ip);
    }
    let (host, _port) = s.split_once(':')?;
    host.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)
}

/// `X-Forwarded-For`: each member an address or not; `None` if a member is empty.
fn xff_chain(headers: &HeaderMap) -> Option<Vec<Option<IpAddr>>> {
    joined(headers, "x-forwarded-for")?
        .split(',')
        .map(|m| (!m.trim().is_empty()).then(|| node(m)))
        .collect()
}

/// Splits `s` on `sep` outside double quotes; `None` on an unterminated quote.
fn split_unquoted(s: &str, sep: char) -> Option<Vec<&str>> {
    let mut parts = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
        } else if quoted && c == '\\' {
            escaped = true;
        } else if c == '"' {
            quoted = !quoted;
        } else if c == sep && !quoted {
            parts.push(&s[start..i]);
            start = i + 1;
        }
    }
    if quoted {
        return None;
    }
    parts.push(&s[start..]);
    Some(parts)
}

/// `Forwarded` (RFC 7239): each element's `for=` node; `None` if the header is malformed.
fn forwarded_chain(headers: &HeaderMap) -> Option<Vec<Option<IpAddr>>> {
    let all = joined(headers, "forwarded")?;
    let mut chain = Vec::new();
    for element in split_unquoted(&all, ',')? {
        let mut hop = None;
        for pair in split_unquoted(element, ';')? {
            if pair.trim().is_empty() {
                continue;
            }
            let (k, v) = pair.split_once('=')?;
            let v = v.trim();
            if v.is_empty() || k.trim().is_empty() {
                return None;
            }
            if k.trim().eq_ignore_ascii_case("for") {
                let v = match v.strip_prefix('"') {
                    Some(q) => q.strip_suffix('"')?,
                    None => v,
                };
                hop = Some(node(v));
            }
        }
        chain.push(hop?);
    }
    Some(chain)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    fn trusted(s: &str) -> TrustedProxies {
        s.parse().unwrap()
    }

    #[test]
    fn parses_cidrs() {
        let t = trusted("10.0.0.0/8, 192.0.2.7,2001:db8::/32,");
        assert!(t.contains(ip("10.255.0.1")));
        assert!(t.contains(ip("::ffff:10.1.2.3")));
        assert!(t.contains(ip("192.0.2.7")));
        assert!(!t.contains(ip("192.0.2.8")));
        assert!(t.contains(ip("2001:db8:1::5")));
        assert!(!t.contains(ip("2001:db9::1")));
        assert!(trusted("0.0.0.0/0").contains(ip("203.0.113.9")));
        assert!(!trusted("0.0.0.0/0").contains(ip("2001:db8::1")));
        assert!(trusted("").is_empty());
        for bad in ["10.0.0.0/33", "nope", "10.0.0.0/x", "::/129"] {
            let e = bad.parse::<TrustedProxies>().unwrap_err();
            assert!(e.contains(bad), "{e}");
        }
    }

    #[test]
    fn spoofed_header_from_untrusted_peer_is_ignored() {
        let t = trusted("10.0.0.0/8");
        let h = headers(&[
            ("x-forwarded-for", "198.51.100.1"),
            ("forwarded", "for=198.51.100.2"),
        ]);
        assert_eq!(client_ip(ip("203.0.113.5"), &h, &t), ip("203.0.113.5"));
        // With no trusted proxies at all, too.
        let none = TrustedProxies::default();
        assert_eq!(client_ip(ip("10.0.0.1"), &h, &none), ip("10.0.0.1"));
    }

    #[test]
    fn chain_of_proxies_gives_rightmost_untrusted() {
        let t = trusted("10.0.0.0/8,2001:db8:ffff::/48");
        // The client forged the leftmost entry; 198.51.100.7 reached the first proxy, 10.0.0.2.
        let h = headers(&[(
            "x-forwarded-for",
            "1.2.3.4, 198.51.100.7, 10.0.0.2, 10.0.0.3",
        )]);
        assert_eq!(client_ip(ip("10.0.0.1"), &h, &t), ip("198.51.100.7"));
        // Several header lines are one list.
        let h = headers(&[
            ("x-forwarded-for", "1.2.3.4, 198.51.100.7"),
            ("x-forwarded-for", "10.0.0.2"),
        ]);
        assert_eq!(client_ip(ip("10.0.0.1"), &h, &t), ip("198.51.100.7"));
        // Forwarded with quoted IPv6 and ports.
        let h = headers(&[(
            "forwarded",
            r#"for=192.0.2.60;proto=http, For="[2001:db8::1]:4711";by=x, for="[2001:db8:ffff::2]""#,
        )]);
        assert_eq!(client_ip(ip("10.0.0.1"), &h, &t), ip("2001:db8::1"));
        // Every hop trusted: the leftmost.
        let h = headers(&[("x-forwarded-for", "10.1.1.1, 10.2.2.2")]);
        assert_eq!(client_ip(ip("10.0.0.1"), &h, &t), ip("10.1.1.1"));
        // An unknown hop stops the walk at the nearest trusted proxy.
        let h = headers(&[("forwarded", "for=198.51.100.1, for=unknown, for=10.0.0.9")]);
        assert_eq!(client_ip(ip("10.0.0.1"), &h, &t), ip("10.0.0.9"));
        let h = headers(&[("x-forwarded-for", "198.51.100.1, _hidden")]);
        assert_eq!(client_ip(ip("10.0.0.1"), &h, &t), ip("10.0.0.1"));
        // IPv4 with a port, and an IPv4-mapped peer.
        let h = headers(&[("x-forwarded-for", "198.51.100.3:5555")]);
        assert_eq!(client_ip(ip("::ffff:10.0.0.1"), &h, &t), ip("198.51.100.3"));
    }

    #[test]
    fn forwarded_takes_precedence() {
        let t = trusted("10.0.0.0/8");
        let h = headers(&[
            ("x-forwarded-for", "198.51.100.1"),
            ("forwarded", "for=198.51.100.2"),
        ]);
        assert_eq!(client_ip(ip("10.0.0.1"), &h, &t), ip("198.51.100.2"));
        let h = headers(&[("x-forwarded-for", "198.51.100.1")]);
        assert_eq!(client_ip(ip("10.0.0.1"), &h, &t), ip("198.51.100.1"));
        assert_eq!(
            client_ip(ip("10.0.0.1"), &HeaderMap::new(), &t),
            ip("10.0.0.1")
        );
    }

    #[test]
    fn malformed_headers_fall_back_to_the_peer() {
        let t = trusted("10.0.0.0/8");
        let peer = ip("10.0.0.1");
        for bad in [
            "for",
            "for=",
            r#"for="[2001:db8::1]:4711"#,
            "proto=https",
            "for=198.51.100.1;=x",
            "for=198.51.100.1,,",
        ] {
            let mut h = headers(&[("x-forwarded-for", "198.51.100.9")]);
            h.insert("forwarded", HeaderValue::from_static(bad));
            assert_eq!(client_ip(peer, &h, &t), peer, "{bad}");
        }
        for bad in ["198.51.100.1,", ",198.51.100.1", " "] {
            let h = headers(&[("x-forwarded-for", bad)]);
            assert_eq!(client_ip(peer, &h, &t), peer, "{bad:?}");
        }
        let mut h = HeaderMap::new();
        h.insert(
            "x-forwarded-for",
            HeaderValue::from_bytes(b"198.51.100.1\xff").unwrap(),
        );
        assert_eq!(client_ip(peer, &h, &t), peer);
    }
}
