//! Session affinity in the data plane: a route's [`RouteAffinity`] says where the session
//! travels (cookie or header); here its value is mapped to one of the route's own endpoints,
//! and a new value is made for the endpoint an exchange went to.
//!
//! The value is an opaque token: the first 16 bytes of HMAC-SHA256 of the endpoint's address
//! (`ip:port`) under a key made at random when the process starts, in hex. It reveals nothing
//! of the address, and a value is only ever compared with the tokens of the route's current
//! endpoints, so a forged one can name nothing else: it is just not found, and the request is
//! balanced as usual. Tokens are the same across reloads (same key, same address); a restart or
//! another replica has another key, so its clients' sessions pick an endpoint again.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use http::{HeaderMap, HeaderName, HeaderValue};
use ring::hmac;

use super::state::Installed;
use super::upstream::Upstream;
use crate::routes::{BackendId, CanaryAffinity, Route, RouteAction, RouteAffinity};

/// A session token: which endpoint, keyed.
pub(crate) type Token = [u8; 16];

/// The process's key.
fn key() -> &'static hmac::Key {
    static KEY: OnceLock<hmac::Key> = OnceLock::new();
    KEY.get_or_init(|| {
        let random = ring::rand::SystemRandom::new();
        match hmac::Key::generate(hmac::HMAC_SHA256, &random) {
            Ok(key) => key,
            Err(_) => {
                // No system randomness (it is there on every supported system): std's
                // randomly keyed hasher gives 256 unpredictable bits instead.
                use std::hash::{BuildHasher, RandomState};
                let mut bytes = Vec::with_capacity(32);
                for i in 0u8..4 {
                    bytes.extend_from_slice(&RandomState::new().hash_one(i).to_le_bytes());
                }
                hmac::Key::new(hmac::HMAC_SHA256, &bytes)
            }
        }
    })
}

/// The token of the endpoint at `addr`.
pub(crate) fn token(addr: SocketAddr) -> Token {
    let tag = hmac::sign(key(), addr.to_string().as_bytes());
    let mut token = [0u8; 16];
    for (out, byte) in token.iter_mut().zip(tag.as_ref()) {
        *out = *byte;
    }
    token
}

/// `token` as the session's value: 32 lower-case hex digits.
pub(crate) fn encode(token: &Token) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(32);
    for byte in token {
        text.push(char::from(HEX.get(usize::from(byte >> 4)).copied().unwrap_or(b'0')));
        text.push(char::from(HEX.get(usize::from(byte & 15)).copied().unwrap_or(b'0')));
    }
    text
}

/// A session value back to its token; `None` for anything but 32 hex digits.
pub(crate) fn decode(value: &[u8]) -> Option<Token> {
    if value.len() != 32 {
        return None;
    }
    let digit = |b: u8| match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    };
    let mut token = [0u8; 16];
    for (out, pair) in token.iter_mut().zip(value.chunks_exact(2)) {
        let [high, low] = pair else {
            return None;
        };
        *out = (digit(*high)? << 4) | digit(*low)?;
    }
    Some(token)
}

/// One request's session: what it named, and where it went.
pub(crate) struct Sticky {
    pub affinity: Arc<RouteAffinity>,
    /// The backend and endpoint (index in its upstream) the request's session names, when it
    /// is one of the route's.
    pub found: Option<(BackendId, usize)>,
    /// The endpoint to use in the chosen backend's upstream (set by [`Sticky::choose`]).
    pub pinned: Option<usize>,
    pinned_addr: Option<SocketAddr>,
    /// The endpoint the exchange went to (set by the upstream).
    pub used: Option<SocketAddr>,
}

impl Sticky {
    /// The session of a request on `route`: its value looked up among the endpoints of every
    /// backend the route can send to (its backend and canary, or its weighted backends).
    pub fn find(affinity: &Arc<RouteAffinity>, route: &Route, installed: &Installed, headers: &HeaderMap) -> Sticky {
        let found = affinity.session(headers).and_then(decode).and_then(|token| {
            let lookup = |backend: BackendId| {
                let upstream: &Upstream = installed.upstreams.get(backend)?;
                upstream.endpoint_of(&token).map(|index| (backend, index))
            };
            match &route.action {
                RouteAction::Forward(backend) => lookup(*backend).or_else(|| {
                    let canary = route.canary.as_ref()?;
                    lookup(canary.backend)
                }),
                RouteAction::Gateway(action) => action.backends.backends().find_map(lookup),
                RouteAction::Respond(_) => None,
            }
        });
        Sticky {
            affinity: affinity.clone(),
            found,
            pinned: None,
            pinned_addr: None,
            used: None,
        }
    }

    /// The backend of a request whose canary rule (or weighted split) would choose `chosen`:
    /// the session's, unless the canary rule comes first (`legacy`) and chose another one.
    pub fn backend(&self, chosen: impl FnOnce() -> Option<BackendId>, canary_first: bool) -> Option<BackendId> {
        match self.found {
            Some((backend, _)) if !(canary_first && self.affinity.canary == CanaryAffinity::Legacy) => Some(backend),
            _ => chosen(),
        }
    }

    /// Pins the session's endpoint when it belongs to `backend`, the one chosen (`upstream`).
    pub fn choose(&mut self, backend: BackendId, upstream: &Upstream) {
        self.pinned = self
            .found
            .filter(|(found, _)| *found == backend)
            .map(|(_, index)| index);
        self.pinned_addr = self.pinned.and_then(|index| upstream.endpoint(index));
    }

    /// The header giving the client its session, when it needs a new one: it had none (or
    /// one naming no endpoint of the backend), or the exchange moved to another endpoint after
    /// a connect failure and the route moves sessions then.
    pub fn answer(&self, tls: bool) -> Option<(HeaderName, HeaderValue)> {
        let used = self.used?;
        match self.pinned_addr {
            Some(pinned) if pinned == used => None,
            Some(_) if !self.affinity.change_on_failure => None,
            _ => self.affinity.set(&encode(&token(used)), tls),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_keyed_opaque_and_round_trip() {
        let a: SocketAddr = "10.0.0.1:8080".parse().unwrap();
        let b: SocketAddr = "10.0.0.2:8080".parse().unwrap();
        assert_eq!(token(a), token(a), "stable within the process");
        assert_ne!(token(a), token(b));
        let text = encode(&token(a));
        assert_eq!(text.len(), 32);
        assert!(!text.contains("10.0.0.1") && !text.contains("0a000001"), "{text}");
        assert_eq!(decode(text.as_bytes()), Some(token(a)));
        assert_eq!(decode(text.to_ascii_uppercase().as_bytes()), Some(token(a)));
        assert_eq!(decode(b"10.0.0.1:8080"), None);
        assert_eq!(decode(&[b'g'; 32]), None);
        assert_eq!(decode(text.as_bytes().get(..31).unwrap()), None);
    }
}
