//! Which IP address a request comes from: the socket's peer, unless that peer is one of the
//! configured trusted proxies, in which case the one configured forwarding header
//! (`X-Forwarded-For` by default, or `Forwarded`, RFC 7239) is read from the right, skipping
//! trusted proxies, and the first address that is not one is the client.
//!
//! Everything left of that address was written by the client and proves nothing; headers from
//! a peer that is not a trusted proxy are ignored entirely, so a client cannot pick the address
//! its login attempts are throttled under. Only one header is read: proxies append to the one
//! they maintain and pass the other through untouched, so reading both would let a client
//! write its own address into the one the proxy does not maintain.

use std::fmt;
use std::net::IpAddr;

use http::HeaderMap;

/// An IP network: an address and a prefix length (`10.0.0.0/8`, `2001:db8::/32`, or a single
/// address).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

impl IpNet {
    /// Parses `a.b.c.d`, `a.b.c.d/n`, an IPv6 address, or one with `/n`.
    pub fn parse(text: &str) -> Result<IpNet, String> {
        let text = text.trim();
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text, None),
        };
        let addr: IpAddr =
            addr.parse().map_err(|_| format!("`{text}` is not an IP address or CIDR range"))?;
        let addr = canonical(addr);
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => match p.parse::<u8>() {
                Ok(p) if p <= max => p,
                _ => return Err(format!("`{text}`: the prefix length must be 0 to {max}")),
            },
        };
        Ok(IpNet { addr, prefix })
    }

    /// Whether `ip` lies in this network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let bits = |ip: IpAddr| -> u128 {
            match ip {
                IpAddr::V4(v4) => u128::from(u32::from(v4)) << 96,
                IpAddr::V6(v6) => u128::from(v6),
            }
        };
        let ip = canonical(ip);
        if ip.is_ipv4() != self.addr.is_ipv4() {
            return false;
        }
        if self.prefix == 0 {
            return true;
        }
        // IPv4 addresses sit in the top 32 bits, so one mask works for both families.
        let mask = u128::MAX << (128 - u32::from(self.prefix));
        bits(ip) & mask == bits(self.addr) & mask
    }
}

impl fmt::Display for IpNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// The header trusted proxies name the client in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ForwardingHeader {
    /// `X-Forwarded-For` (what nginx, Caddy, Traefik and most load balancers append to).
    #[default]
    XForwardedFor,
    /// `Forwarded` (RFC 7239), for proxies configured to maintain it.
    Forwarded,
}

impl ForwardingHeader {
    /// Parses `x-forwarded-for` or `forwarded` (any case).
    pub fn parse(text: &str) -> Result<Self, String> {
        match text.trim().to_ascii_lowercase().as_str() {
            "x-forwarded-for" => Ok(ForwardingHeader::XForwardedFor),
            "forwarded" => Ok(ForwardingHeader::Forwarded),
            _ => Err(format!("`{text}` is not one of x-forwarded-for, forwarded")),
        }
    }

    /// The header's name, lower case.
    pub fn as_str(self) -> &'static str {
        match self {
            ForwardingHeader::XForwardedFor => "x-forwarded-for",
            ForwardingHeader::Forwarded => "forwarded",
        }
    }
}

/// The reverse proxies whose forwarding header is believed, and which header that is. No
/// proxies by default: the peer address is the client.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies {
    nets: Vec<IpNet>,
    header: ForwardingHeader,
}

impl TrustedProxies {
    /// Parses a list of addresses and CIDR ranges (the header is `X-Forwarded-For`).
    pub fn parse<'a>(entries: impl IntoIterator<Item = &'a str>) -> Result<Self, String> {
        let nets = entries.into_iter().map(IpNet::parse).collect::<Result<_, _>>()?;
        Ok(TrustedProxies { nets, header: ForwardingHeader::default() })
    }

    /// The same proxies, naming the client in `header`.
    pub fn with_header(mut self, header: ForwardingHeader) -> Self {
        self.header = header;
        self
    }

    /// Whether no proxy is trusted.
    pub fn is_empty(&self) -> bool {
        self.nets.is_empty()
    }

    /// The networks, for display.
    pub fn networks(&self) -> &[IpNet] {
        &self.nets
    }

    /// The header read behind a trusted proxy.
    pub fn header(&self) -> ForwardingHeader {
        self.header
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        self.nets.iter().any(|net| net.contains(ip))
    }

    /// The client's address for a request from `peer` with `headers`.
    pub fn client_ip(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = canonical(peer);
        if !self.trusts(peer) {
            return peer;
        }
        let hops = match self.header {
            ForwardingHeader::XForwardedFor => x_forwarded_for(headers),
            ForwardingHeader::Forwarded => forwarded_for(headers),
        };
        let Some(hops) = hops else { return peer };
        let mut client = peer;
        for hop in hops.iter().rev() {
            match hop {
                // An address a trusted proxy wrote: believe it, and keep walking only if it
                // is itself a trusted proxy.
                Some(ip) => {
                    client = *ip;
                    if !self.trusts(*ip) {
                        break;
                    }
                }
                // An obfuscated or garbled hop: nothing left of it can be believed. The last
                // hop that could be stands in (at worst the proxy itself, so a client cannot
                // escape throttling by sending garbage).
                None => break,
            }
        }
        client
    }
}

/// `for=` values of every `Forwarded` header, in order; `None` entries could not be read as an
/// address (`unknown`, obfuscated identifiers, junk). `None` overall when no such header.
fn forwarded_for(headers: &HeaderMap) -> Option<Vec<Option<IpAddr>>> {
    let mut hops = Vec::new();
    let mut any = false;
    for value in headers.get_all(http::header::FORWARDED) {
        any = true;
        let Ok(value) = value.to_str() else {
            hops.push(None);
            continue;
        };
        for element in value.split(',') {
            let node = element.split(';').find_map(|pair| {
                let (key, value) = pair.split_once('=')?;
                key.trim().eq_ignore_ascii_case("for").then(|| value.trim())
            });
            // An element without `for=` still is a hop, of unknown origin.
            hops.push(node.and_then(parse_node));
        }
    }
    any.then_some(hops)
}

/// Entries of every `X-Forwarded-For` header line, in order.
fn x_forwarded_for(headers: &HeaderMap) -> Option<Vec<Option<IpAddr>>> {
    let mut hops = Vec::new();
    let mut any = false;
    for value in headers.get_all("x-forwarded-for") {
        any = true;
        match value.to_str() {
            Ok(value) => hops.extend(value.split(',').map(|e| parse_node(e.trim()))),
            Err(_) => hops.push(None),
        }
    }
    any.then_some(hops)
}

/// An address as proxies write it: `192.0.2.1`, `192.0.2.1:4711`, `2001:db8::1`,
/// `[2001:db8::1]:4711`, optionally in double quotes (RFC 7239).
fn parse_node(node: &str) -> Option<IpAddr> {
    let node = node.strip_prefix('"').and_then(|n| n.strip_suffix('"')).unwrap_or(node);
    if let Some(rest) = node.strip_prefix('[') {
        let (addr, after) = rest.split_once(']')?;
        if !(after.is_empty() || after.starts_with(':')) {
            return None;
        }
        return addr.parse::<std::net::Ipv6Addr>().ok().map(|ip| canonical(IpAddr::V6(ip)));
    }
    if let Ok(ip) = node.parse::<IpAddr>() {
        return Some(canonical(ip));
    }
    // `a.b.c.d:port` (an IPv6 address with a port must be bracketed).
    let (addr, port) = node.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    addr.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)
}

/// IPv4-mapped IPv6 addresses (`::ffff:192.0.2.1`, as a dual-stack socket reports IPv4 peers)
/// as plain IPv4, so one client has one address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap_or_else(|_| unreachable!("test address {text}"))
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    fn proxies(list: &[&str]) -> TrustedProxies {
        TrustedProxies::parse(list.iter().copied()).unwrap_or_else(|e| unreachable!("{e}"))
    }

    #[test]
    fn networks_parse_and_match() {
        let net = IpNet::parse("10.0.0.0/8").unwrap_or_else(|e| unreachable!("{e}"));
        assert!(net.contains(ip("10.200.1.2")));
        assert!(net.contains(ip("::ffff:10.0.0.1")));
        assert!(!net.contains(ip("11.0.0.1")));
        assert!(!net.contains(ip("::1")));
        let v6 = IpNet::parse("2001:db8::/32").unwrap_or_else(|e| unreachable!("{e}"));
        assert!(v6.contains(ip("2001:db8:ffff::1")));
        assert!(!v6.contains(ip("2001:db9::1")));
        let one = IpNet::parse("192.0.2.7").unwrap_or_else(|e| unreachable!("{e}"));
        assert!(one.contains(ip("192.0.2.7")) && !one.contains(ip("192.0.2.8")));
        assert!(IpNet::parse("0.0.0.0/0").is_ok_and(|n| n.contains(ip("8.8.8.8"))));
        for bad in ["10.0.0.0/33", "::/129", "10.0.0.0/", "example.com", "10.0.0.0/8/8", ""] {
            assert!(IpNet::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_claims() {
        let trusted = proxies(&["10.0.0.1"]);
        let forged = headers(&[("x-forwarded-for", "203.0.113.5"), ("forwarded", "for=1.2.3.4")]);
        assert_eq!(trusted.client_ip(ip("198.51.100.9"), &forged), ip("198.51.100.9"));
        assert_eq!(TrustedProxies::default().client_ip(ip("10.0.0.1"), &forged), ip("10.0.0.1"));
    }

    #[test]
    fn behind_a_trusted_proxy_the_rightmost_untrusted_hop_is_the_client() {
        let trusted = proxies(&["10.0.0.0/8"]);
        let peer = ip("10.0.0.1");
        // The client forged the first entry; the proxy appended what it saw.
        let xff = headers(&[("x-forwarded-for", "6.6.6.6, 203.0.113.5")]);
        assert_eq!(trusted.client_ip(peer, &xff), ip("203.0.113.5"));
        // Two proxy tiers: the inner proxy is trusted and skipped.
        let chain = headers(&[
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-for", "203.0.113.5, 10.1.1.1"),
        ]);
        assert_eq!(trusted.client_ip(peer, &chain), ip("203.0.113.5"));
        // No header: the proxy itself.
        assert_eq!(trusted.client_ip(peer, &HeaderMap::new()), peer);
        // Only proxies in the chain: the leftmost.
        let all = headers(&[("x-forwarded-for", "10.9.9.9, 10.1.1.1")]);
        assert_eq!(trusted.client_ip(peer, &all), ip("10.9.9.9"));
    }

    #[test]
    fn only_the_configured_header_is_read() {
        let both = headers(&[
            ("x-forwarded-for", "198.51.100.1"),
            ("forwarded", "for=6.6.6.6, for=\"[2001:db8:cafe::17]:4711\";proto=https"),
        ]);
        let xff = proxies(&["10.0.0.1"]);
        assert_eq!(xff.client_ip(ip("10.0.0.1"), &both), ip("198.51.100.1"));
        // A client's own `Forwarded` header, passed through by an XFF proxy, changes nothing.
        let only_forwarded = headers(&[("forwarded", "for=6.6.6.6")]);
        assert_eq!(xff.client_ip(ip("10.0.0.1"), &only_forwarded), ip("10.0.0.1"));
        let rfc = proxies(&["10.0.0.1"]).with_header(ForwardingHeader::Forwarded);
        assert_eq!(rfc.client_ip(ip("10.0.0.1"), &both), ip("2001:db8:cafe::17"));
        assert_eq!(ForwardingHeader::parse("X-Forwarded-For"), Ok(ForwardingHeader::XForwardedFor));
        assert!(ForwardingHeader::parse("x-real-ip").is_err());
    }

    #[test]
    fn forwarded_is_read_per_rfc_7239() {
        let trusted =
            proxies(&["10.0.0.1", "2001:db8::1"]).with_header(ForwardingHeader::Forwarded);
        let port = headers(&[("forwarded", "For=\"192.0.2.60:8080\";by=10.0.0.1")]);
        assert_eq!(trusted.client_ip(ip("::ffff:10.0.0.1"), &port), ip("192.0.2.60"));
    }

    #[test]
    fn garbage_in_the_chain_stops_the_walk_at_the_last_believable_hop() {
        let trusted = proxies(&["10.0.0.0/8"]);
        let peer = ip("10.0.0.1");
        for garbage in ["unknown", "_hidden", "not-an-ip", "1.2.3.4:99999", "[::1]x", ""] {
            let mut map = HeaderMap::new();
            let value = HeaderValue::from_str(&format!("6.6.6.6, {garbage}"))
                .unwrap_or_else(|_| unreachable!("a valid header value"));
            map.append("x-forwarded-for", value);
            assert_eq!(trusted.client_ip(peer, &map), peer, "{garbage:?}");
        }
        let hidden = headers(&[("forwarded", "for=6.6.6.6, for=unknown")]);
        let rfc = trusted.clone().with_header(ForwardingHeader::Forwarded);
        assert_eq!(rfc.client_ip(peer, &hidden), peer);
        let inner = headers(&[("x-forwarded-for", "6.6.6.6, junk, 10.2.2.2")]);
        assert_eq!(trusted.client_ip(peer, &inner), ip("10.2.2.2"));
    }
}
