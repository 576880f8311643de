//! The client address of a request. It is the socket peer, unless the peer is a proxy listed in
//! `http.trusted_proxies`: then the forwarded chain (`Forwarded`, RFC 7239, else
//! `X-Forwarded-For`) is walked from the right, skipping trusted proxies, and the first address
//! that is not one is the client. Anyone else's forwarded headers are ignored, so an address
//! whitelist cannot be spoofed with a header.

use std::net::{IpAddr, SocketAddr};

use axum::http::HeaderMap;
use ipnet::IpNet;

pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    let peer = peer.to_canonical();
    if !is_trusted(&peer) {
        return peer;
    }
    let chain = forwarded_chain(headers);
    let mut client = peer;
    for hop in chain.iter().rev() {
        if !is_trusted(&client) {
            break;
        }
        match hop {
            Some(ip) => client = ip.to_canonical(),
            // An obfuscated or unparsable hop: the trusted proxy is as far as we can see.
            None => break,
        }
    }
    client
}

/// The forwarded addresses, leftmost (original client) first; `None` for a hop that is not an
/// address.
fn forwarded_chain(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    let forwarded: Vec<&str> = headers.get_all("forwarded").iter().filter_map(|v| v.to_str().ok()).collect();
    if !forwarded.is_empty() {
        return forwarded
            .iter()
            .flat_map(|value| value.split(','))
            .filter_map(|element| {
                element.split(';').find_map(|pair| {
                    let (key, value) = pair.trim().split_once('=')?;
                    key.eq_ignore_ascii_case("for").then(|| parse_node(value.trim().trim_matches('"')))
                })
            })
            .collect();
    }
    headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(|hop| parse_node(hop.trim()))
        .collect()
}

/// `192.0.2.1`, `192.0.2.1:443`, `[2001:db8::1]`, `[2001:db8::1]:443` or a bare IPv6 address.
fn parse_node(node: &str) -> Option<IpAddr> {
    node.parse::<IpAddr>()
        .ok()
        .or_else(|| node.parse::<SocketAddr>().ok().map(|addr| addr.ip()))
        .or_else(|| node.strip_prefix('[')?.split_once(']')?.0.parse().ok())
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn forwarded_headers_count_only_from_trusted_proxies() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let spoof = headers(&[("x-forwarded-for", "127.0.0.1")]);
        assert_eq!(client_ip(ip("203.0.113.5"), &spoof, &trusted), ip("203.0.113.5"));
        assert_eq!(client_ip(ip("203.0.113.5"), &spoof, &[]), ip("203.0.113.5"));
        assert_eq!(client_ip(ip("10.0.0.2"), &spoof, &trusted), ip("127.0.0.1"));
        let chain = headers(&[("x-forwarded-for", "198.51.100.7, 203.0.113.9, 10.0.0.3")]);
        assert_eq!(client_ip(ip("10.0.0.2"), &chain, &trusted), ip("203.0.113.9"));
        let rfc = headers(&[("forwarded", r#"for=198.51.100.7;proto=https, for="[2001:db8::1]:443""#)]);
        assert_eq!(client_ip(ip("10.0.0.2"), &rfc, &trusted), ip("2001:db8::1"));
        let hidden = headers(&[("forwarded", "for=_hidden")]);
        assert_eq!(client_ip(ip("10.0.0.2"), &hidden, &trusted), ip("10.0.0.2"));
        assert_eq!(client_ip(ip("10.0.0.2"), &HeaderMap::new(), &trusted), ip("10.0.0.2"));
    }
}
