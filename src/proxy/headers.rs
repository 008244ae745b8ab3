//! Header rewriting between client and upstream: hop-by-hop headers removed both ways, and the
//! `X-Forwarded-*` / `X-Real-IP` headers the backend sees. Per-connection values (the peer's
//! address as a header value) are computed once per connection, not per request.

use std::net::IpAddr;

use http::HeaderMap;
use http::header::{
    CONNECTION, CONTENT_LENGTH, EXPECT, HeaderName, HeaderValue, TE, TRAILER, TRANSFER_ENCODING, UPGRADE,
};

use crate::routes::Cidr;

pub(crate) const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub(crate) const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub(crate) const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
/// ingress-nginx's `x-forwarded-prefix` annotation sets it.
pub(crate) const X_FORWARDED_PREFIX: HeaderName = HeaderName::from_static("x-forwarded-prefix");
pub(crate) const X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");
pub(crate) const FORWARDED: HeaderName = HeaderName::from_static("forwarded");
const HTTP2_SETTINGS: HeaderName = HeaderName::from_static("http2-settings");
const KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
const PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

pub(crate) const PROTO_HTTP: HeaderValue = HeaderValue::from_static("http");
pub(crate) const PROTO_HTTPS: HeaderValue = HeaderValue::from_static("https");
const UPGRADE_TOKEN: HeaderValue = HeaderValue::from_static("upgrade");

/// True when the request asks to switch protocols (`Connection: upgrade` plus `Upgrade`).
pub(crate) fn is_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(UPGRADE) && connection_has(headers, "upgrade")
}

/// True when `Upgrade` asks for `h2c` (HTTP/2 over a cleartext upgrade).
pub(crate) fn is_h2c_upgrade(headers: &HeaderMap) -> bool {
    headers.get_all(UPGRADE).iter().any(|value| {
        value
            .as_bytes()
            .split(|b| *b == b',')
            .any(|token| token.trim_ascii().eq_ignore_ascii_case(b"h2c"))
    })
}

/// Removes an h2c upgrade offer: `Upgrade`, `HTTP2-Settings`, and the `Connection` tokens
/// naming them. The request goes on as a plain HTTP/1.1 request.
pub(crate) fn strip_h2c_upgrade(headers: &mut HeaderMap) {
    headers.remove(UPGRADE);
    headers.remove(HTTP2_SETTINGS);
    if connection_has(headers, "upgrade") || connection_has(headers, "http2-settings") {
        let kept: Vec<String> = headers
            .get_all(CONNECTION)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .map(str::trim)
            .filter(|t| {
                !t.is_empty() && !t.eq_ignore_ascii_case("upgrade") && !t.eq_ignore_ascii_case("http2-settings")
            })
            .map(str::to_owned)
            .collect();
        headers.remove(CONNECTION);
        if let Ok(value) = HeaderValue::try_from(kept.join(", "))
            && !kept.is_empty()
        {
            headers.insert(CONNECTION, value);
        }
    }
}

/// Headers a `Connection` token may never remove: the proxy routes, frames and attributes the
/// request by them (`Connection: host` must not strip the Host the backend sees).
fn is_protected(name: &str) -> bool {
    const PROTECTED: [&str; 7] = [
        "host",
        "content-length",
        "x-forwarded-for",
        "x-forwarded-proto",
        "x-forwarded-host",
        "x-real-ip",
        "forwarded",
    ];
    PROTECTED.iter().any(|protected| name.eq_ignore_ascii_case(protected))
}

fn connection_has(headers: &HeaderMap, token: &str) -> bool {
    headers.get_all(CONNECTION).iter().any(|value| {
        value
            .to_str()
            .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    })
}

/// What a request's headers hold that the forwarding must look at, found in one pass of cheap
/// name comparisons (most requests hold none of it).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Present {
    /// Some hop-by-hop header (`Upgrade` included).
    pub hop_by_hop: bool,
    pub upgrade: bool,
    pub expect: bool,
    /// Some header name holds an underscore.
    pub underscore: bool,
    /// Some header name is `ssl-client-…` (or `ssl_client_…`): a client's claim about its
    /// certificate, never passed on.
    pub client_certificate: bool,
}

pub(crate) fn scan(headers: &HeaderMap) -> Present {
    let mut present = Present::default();
    for name in headers.keys() {
        if is_hop_by_hop(name) {
            present.hop_by_hop = true;
            present.upgrade |= name == UPGRADE;
        } else if name == EXPECT {
            present.expect = true;
        }
        present.underscore |= name.as_str().contains('_');
        present.client_certificate |= is_client_certificate_prefix(name.as_str());
    }
    present
}

/// `ssl-client-` or `ssl_client_` (any mix of `-` and `_`) begins `name`.
fn is_client_certificate_prefix(name: &str) -> bool {
    name.len() > 11
        && name
            .bytes()
            .zip(b"ssl-client-".iter())
            .all(|(byte, &expected)| byte == expected || (expected == b'-' && byte == b'_'))
}

/// Removes the `ssl-client-*` headers the proxy sets for backends of hosts with client
/// certificates, in any spelling of `-` and `_`: clients must not speak for their certificate.
pub(crate) fn strip_client_certificate(headers: &mut HeaderMap) {
    let names: Vec<HeaderName> = headers
        .keys()
        .filter(|name| {
            let folded = name.as_str().replace('_', "-");
            super::client_cert::HEADERS.contains(&folded.as_str())
        })
        .cloned()
        .collect();
    for name in names {
        headers.remove(name);
    }
}

/// Removes every header whose name holds an underscore.
pub(crate) fn strip_underscored(headers: &mut HeaderMap) {
    let names: Vec<HeaderName> = headers
        .keys()
        .filter(|name| name.as_str().contains('_'))
        .cloned()
        .collect();
    for name in names {
        headers.remove(name);
    }
}

/// [`strip_hop_by_hop`] when [`scan`] found some hop-by-hop header or this is an upgrade.
pub(crate) fn strip_hop_by_hop_if(headers: &mut HeaderMap, upgrade: bool, present: Present) {
    if upgrade || present.hop_by_hop {
        strip_hop_by_hop(headers, upgrade);
    }
}

/// Removes hop-by-hop headers: `Connection` and the headers it names, `Keep-Alive`,
/// `Proxy-Connection`, `TE` (unless it is just `trailers`), `Trailer`, `Transfer-Encoding`,
/// `Upgrade`. With `upgrade`, the `Upgrade` header stays and `Connection: upgrade` is set.
pub(crate) fn strip_hop_by_hop(headers: &mut HeaderMap, upgrade: bool) {
    // Most messages carry none: one pass of cheap name comparisons instead of a hash lookup
    // per hop-by-hop name.
    if !upgrade && !headers.keys().any(is_hop_by_hop) {
        return;
    }
    if headers.contains_key(CONNECTION) {
        let named: Vec<HeaderValue> = headers.get_all(CONNECTION).iter().cloned().collect();
        headers.remove(CONNECTION);
        for value in &named {
            let Ok(value) = value.to_str() else { continue };
            for token in value.split(',') {
                let token = token.trim();
                if token.is_empty() || (upgrade && token.eq_ignore_ascii_case("upgrade")) || is_protected(token) {
                    continue;
                }
                headers.remove(token);
            }
        }
    }
    headers.remove(KEEP_ALIVE);
    headers.remove(PROXY_CONNECTION);
    if headers.remove(TRANSFER_ENCODING).is_some() {
        // The body was chunked: its length is not the Content-Length a sender may have added
        // too (request smuggling); hyper frames the body afresh.
        headers.remove(CONTENT_LENGTH);
    }
    headers.remove(TRAILER);
    if let Some(te) = headers.get(TE)
        && !te.as_bytes().eq_ignore_ascii_case(b"trailers")
    {
        headers.remove(TE);
    }
    if upgrade {
        headers.insert(CONNECTION, UPGRADE_TOKEN);
    } else {
        headers.remove(UPGRADE);
    }
}

fn is_hop_by_hop(name: &HeaderName) -> bool {
    name == CONNECTION
        || name == TRANSFER_ENCODING
        || name == TE
        || name == TRAILER
        || name == UPGRADE
        || name == KEEP_ALIVE
        || name == PROXY_CONNECTION
}

/// The peer as the backend should learn it.
pub(crate) struct Peer {
    pub ip: IpAddr,
    /// `ip` as a header value, made once per connection.
    pub ip_value: HeaderValue,
    /// The peer is a trusted proxy: its `X-Forwarded-For` is kept and extended.
    pub trusted: bool,
}

impl Peer {
    pub fn new(ip: IpAddr, trusted_proxies: &[Cidr]) -> Peer {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        let trusted = trusted_proxies.iter().any(|cidr| cidr.contains(ip));
        let ip_value = HeaderValue::try_from(ip.to_string()).unwrap_or(HeaderValue::from_static("unknown"));
        Peer { ip, ip_value, trusted }
    }
}

/// The `X-Forwarded-For`, `X-Real-IP`, `X-Forwarded-Proto` and `X-Forwarded-Host` values the
/// upstream should see (`host: None`: no `X-Forwarded-Host`).
#[derive(Clone)]
pub(crate) struct Forwarded {
    pub for_chain: HeaderValue,
    pub real_ip: HeaderValue,
    pub proto: HeaderValue,
    pub host: Option<HeaderValue>,
    /// The client's RFC 7239 `Forwarded`, extended by `for=<peer>`, when the peer is trusted;
    /// from anybody else it is dropped, like their `X-Forwarded-For`.
    pub forwarded: Option<HeaderValue>,
}

impl Forwarded {
    /// Computes the values from the client's headers and the peer: an untrusted peer replaces
    /// the chain, a trusted one extends it.
    pub fn new(
        headers: &HeaderMap,
        peer: &Peer,
        proto: &HeaderValue,
        host: Option<HeaderValue>,
        trusted_proxies: &[Cidr],
    ) -> Forwarded {
        let (for_chain, real_ip) = if peer.trusted && headers.contains_key(X_FORWARDED_FOR) {
            let mut chain = String::new();
            for value in headers.get_all(X_FORWARDED_FOR) {
                if let Ok(value) = value.to_str() {
                    if !chain.is_empty() {
                        chain.push_str(", ");
                    }
                    chain.push_str(value);
                }
            }
            let client = real_client(&chain, trusted_proxies).map(str::to_owned);
            if !chain.is_empty() {
                chain.push_str(", ");
            }
            chain.push_str(&peer.ip.to_string());
            let for_chain = HeaderValue::try_from(chain).unwrap_or_else(|_| peer.ip_value.clone());
            let real_ip = client
                .and_then(|client| HeaderValue::try_from(client).ok())
                .unwrap_or_else(|| peer.ip_value.clone());
            (for_chain, real_ip)
        } else {
            (peer.ip_value.clone(), peer.ip_value.clone())
        };
        let forwarded = if peer.trusted && headers.contains_key(FORWARDED) {
            let mut elements: Vec<&str> = headers
                .get_all(FORWARDED)
                .iter()
                .filter_map(|value| value.to_str().ok())
                .collect();
            let node = match peer.ip {
                IpAddr::V4(v4) => format!("for={v4}"),
                IpAddr::V6(v6) => format!("for=\"[{v6}]\""),
            };
            elements.push(&node);
            HeaderValue::try_from(elements.join(", ")).ok()
        } else {
            None
        };
        Forwarded {
            for_chain,
            real_ip,
            proto: proto.clone(),
            host,
            forwarded,
        }
    }

    /// Whether `name` is one of the headers these values replace.
    pub fn replaces(name: &HeaderName) -> bool {
        name == X_FORWARDED_FOR
            || name == X_REAL_IP
            || name == X_FORWARDED_PROTO
            || name == X_FORWARDED_HOST
            || name == FORWARDED
    }

    /// Sets the values in `headers`, replacing what the client sent.
    pub fn apply(self, headers: &mut HeaderMap) {
        headers.insert(X_FORWARDED_FOR, self.for_chain);
        headers.insert(X_REAL_IP, self.real_ip);
        headers.insert(X_FORWARDED_PROTO, self.proto);
        match self.host {
            Some(host) => {
                headers.insert(X_FORWARDED_HOST, host);
            }
            None => {
                headers.remove(X_FORWARDED_HOST);
            }
        }
        match self.forwarded {
            Some(forwarded) => {
                headers.insert(FORWARDED, forwarded);
            }
            None => {
                headers.remove(FORWARDED);
            }
        }
    }

    /// The values as header lines (lower-case names), in the order [`Forwarded::apply`] sets
    /// them.
    pub fn lines(&self) -> impl Iterator<Item = (&'static str, &HeaderValue)> {
        [
            ("x-forwarded-for", Some(&self.for_chain)),
            ("x-real-ip", Some(&self.real_ip)),
            ("x-forwarded-proto", Some(&self.proto)),
            ("x-forwarded-host", self.host.as_ref()),
            ("forwarded", self.forwarded.as_ref()),
        ]
        .into_iter()
        .filter_map(|(name, value)| value.map(|value| (name, value)))
    }
}

/// Sets `X-Forwarded-For`, `X-Real-IP`, `X-Forwarded-Proto` and `X-Forwarded-Host`.
#[cfg(test)]
pub(crate) fn set_forwarded(
    headers: &mut HeaderMap,
    peer: &Peer,
    proto: &HeaderValue,
    host: Option<HeaderValue>,
    trusted_proxies: &[Cidr],
) {
    Forwarded::new(headers, peer, proto, host, trusted_proxies).apply(headers);
}

/// The client as seen through a chain of trusted proxies: walking `X-Forwarded-For` from the
/// right, the first address that is not a trusted proxy (or the leftmost one).
/// The client's address as a route's source ranges see it: the peer's, or — when the peer is a
/// trusted proxy that sent `X-Forwarded-For` — the client that chain names (the rightmost entry
/// that is not a trusted proxy). `None` when that entry is not an address.
pub(crate) fn client_address(headers: &HeaderMap, peer: &Peer, trusted_proxies: &[Cidr]) -> Option<IpAddr> {
    if !peer.trusted || !headers.contains_key(X_FORWARDED_FOR) {
        return Some(peer.ip);
    }
    let chain: Vec<&str> = headers
        .get_all(X_FORWARDED_FOR)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .collect();
    real_client(&chain.join(", "), trusted_proxies)?.parse().ok()
}

fn real_client<'a>(chain: &'a str, trusted_proxies: &[Cidr]) -> Option<&'a str> {
    let mut leftmost = None;
    for entry in chain.rsplit(',').map(str::trim).filter(|e| !e.is_empty()) {
        leftmost = Some(entry);
        match entry.parse::<IpAddr>() {
            Ok(ip) if trusted_proxies.iter().any(|cidr| cidr.contains(ip)) => continue,
            _ => return Some(entry),
        }
    }
    leftmost
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(HeaderName::from_bytes(name.as_bytes()).unwrap(), value.parse().unwrap());
        }
        map
    }

    #[test]
    fn client_address_is_the_peer_unless_a_trusted_proxy_names_the_client() {
        let trusted: Vec<Cidr> = vec!["127.0.0.0/8".parse().unwrap()];
        let peer = Peer::new("127.0.0.1".parse().unwrap(), &trusted);
        let stranger = Peer::new("192.0.2.9".parse().unwrap(), &trusted);
        let chain = headers(&[("x-forwarded-for", "203.0.113.5, 127.0.0.2")]);
        assert_eq!(
            client_address(&chain, &peer, &trusted),
            Some("203.0.113.5".parse().unwrap())
        );
        assert_eq!(
            client_address(&chain, &stranger, &trusted),
            Some("192.0.2.9".parse().unwrap()),
            "an untrusted peer's claim is ignored"
        );
        assert_eq!(client_address(&HeaderMap::new(), &peer, &trusted), Some(peer.ip));
        let garbage = headers(&[("x-forwarded-for", "not-an-ip")]);
        assert_eq!(client_address(&garbage, &peer, &trusted), None);
    }

    #[test]
    fn strips_connection_named_and_fixed_hop_headers() {
        let mut map = headers(&[
            ("connection", "close, X-Secret"),
            ("x-secret", "1"),
            ("keep-alive", "timeout=5"),
            ("transfer-encoding", "chunked"),
            ("te", "gzip"),
            ("trailer", "x"),
            ("upgrade", "websocket"),
            ("proxy-connection", "keep-alive"),
            ("x-kept", "yes"),
        ]);
        strip_hop_by_hop(&mut map, false);
        assert_eq!(map.len(), 1, "{map:?}");
        assert_eq!(map["x-kept"], "yes");
    }

    #[test]
    fn chunked_framing_drops_a_conflicting_content_length() {
        let mut map = headers(&[
            ("transfer-encoding", "chunked"),
            ("content-length", "5"),
            ("x-kept", "yes"),
        ]);
        strip_hop_by_hop(&mut map, false);
        assert_eq!(map.len(), 1, "{map:?}");
        let mut plain = headers(&[("content-length", "5")]);
        strip_hop_by_hop(&mut plain, false);
        assert_eq!(plain["content-length"], "5");
    }

    #[test]
    fn keeps_te_trailers_and_upgrade_when_upgrading() {
        let mut map = headers(&[("connection", "Upgrade"), ("upgrade", "websocket"), ("te", "trailers")]);
        strip_hop_by_hop(&mut map, true);
        assert_eq!(map["connection"], "upgrade");
        assert_eq!(map["upgrade"], "websocket");
        assert_eq!(map["te"], "trailers");
    }

    #[test]
    fn scan_finds_hop_by_hop_upgrade_and_expect() {
        let plain = scan(&headers(&[("host", "a"), ("x-forwarded-for", "1.2.3.4")]));
        assert!(!plain.hop_by_hop && !plain.upgrade && !plain.expect);
        let upgrade = scan(&headers(&[("connection", "Upgrade"), ("upgrade", "websocket")]));
        assert!(upgrade.hop_by_hop && upgrade.upgrade && !upgrade.expect);
        let expect = scan(&headers(&[("expect", "100-continue"), ("keep-alive", "5")]));
        assert!(expect.hop_by_hop && !expect.upgrade && expect.expect);
    }

    #[test]
    fn untrusted_peer_replaces_the_chain() {
        let peer = Peer::new("192.0.2.9".parse().unwrap(), &[]);
        let mut map = headers(&[("x-forwarded-for", "6.6.6.6"), ("x-real-ip", "6.6.6.6")]);
        set_forwarded(&mut map, &peer, &PROTO_HTTP, Some("a.example".parse().unwrap()), &[]);
        assert_eq!(map["x-forwarded-for"], "192.0.2.9");
        assert_eq!(map["x-real-ip"], "192.0.2.9");
        assert_eq!(map["x-forwarded-proto"], "http");
        assert_eq!(map["x-forwarded-host"], "a.example");
    }

    #[test]
    fn trusted_peer_extends_the_chain_and_finds_the_client() {
        let trusted: Vec<Cidr> = vec!["10.0.0.0/8".parse().unwrap()];
        let peer = Peer::new("10.0.0.2".parse().unwrap(), &trusted);
        let mut map = headers(&[("x-forwarded-for", "198.51.100.7, 10.0.0.1")]);
        set_forwarded(&mut map, &peer, &PROTO_HTTPS, None, &trusted);
        assert_eq!(map["x-forwarded-for"], "198.51.100.7, 10.0.0.1, 10.0.0.2");
        assert_eq!(map["x-real-ip"], "198.51.100.7");
        assert_eq!(map["x-forwarded-proto"], "https");
        assert!(!map.contains_key("x-forwarded-host"));
    }

    #[test]
    fn client_certificate_headers_are_found_and_stripped_in_any_spelling() {
        let mut headers = HeaderMap::new();
        for name in [
            "ssl-client-verify",
            "ssl_client_subject_dn",
            "ssl-client_cert",
            "SSL-Client-Issuer-DN",
        ] {
            headers.insert(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_static("x"),
            );
        }
        headers.insert("ssl-client-other", HeaderValue::from_static("kept"));
        headers.insert("x-ssl-client-verify", HeaderValue::from_static("kept"));
        assert!(scan(&headers).client_certificate);
        strip_client_certificate(&mut headers);
        let mut left: Vec<&str> = headers.keys().map(HeaderName::as_str).collect();
        left.sort_unstable();
        assert_eq!(left, ["ssl-client-other", "x-ssl-client-verify"]);

        let mut plain = HeaderMap::new();
        plain.insert("x-ssl-client-verify", HeaderValue::from_static("x"));
        plain.insert("ssl-client", HeaderValue::from_static("x"));
        assert!(!scan(&plain).client_certificate);
    }
}
