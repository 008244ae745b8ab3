//! The byte-exact vectors of the smuggling suite, by category. Every request is written in one
//! `write` unless split into parts on purpose; `GET /smuggled` marks a request hidden in another
//! one's body by conflicting framing.
//!
//! `Want` follows RFC 9112: what a conforming front must do, or both acceptable outcomes
//! (`Either(n)`: forwarded as exactly `n` requests, or rejected after fewer).

/// What a vector must lead to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want {
    /// Rejected (4xx, 501 or 505 from the front, connection closed) after this many requests
    /// were forwarded.
    Reject(usize),
    /// Forwarded canonically as exactly this many requests, nothing rejected.
    Forward(usize),
    /// Either of the two: forwarded as exactly this many, or rejected after fewer.
    Either(usize),
}

/// Which side misbehaves in a vector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Side {
    /// The client's bytes are the test; the backend answers [`FIXED_REPLY`].
    Request,
    /// The backend answers every request with these bytes (and then closes the connection, when
    /// `close`: the end of a close-delimited body); the client sends two plain requests one after
    /// the other on one connection.
    Response { reply: Vec<u8>, close: bool },
}

#[derive(Debug, Clone)]
pub struct Vector {
    pub category: &'static str,
    /// `category/name`, unique.
    pub name: String,
    /// Written in order, 100 ms apart (most vectors are one write).
    pub parts: Vec<Vec<u8>>,
    pub want: Want,
    pub side: Side,
    /// The requests are HEAD: responses carry no body.
    pub head: bool,
    /// When forwarded, the first request must reach the backend with this Host value.
    pub backend_host: Option<&'static str>,
    /// When forwarded, the first request must reach the backend with this target.
    pub backend_target: Option<&'static str>,
    /// When relayed, each response body must be exactly this.
    pub relay_body: Option<&'static [u8]>,
}

pub const SMUGGLED: &str = "GET /smuggled HTTP/1.1\r\nHost: a.example\r\n\r\n";
pub const GET: &str = "GET / HTTP/1.1\r\nHost: a.example\r\n\r\n";

pub struct Set {
    category: &'static str,
    pub vectors: Vec<Vector>,
}

impl Set {
    pub fn new(category: &'static str) -> Set {
        Set {
            category,
            vectors: Vec::new(),
        }
    }

    pub fn add(&mut self, name: &str, want: Want, bytes: impl AsRef<[u8]>) -> &mut Vector {
        self.add_parts(name, want, vec![bytes.as_ref().to_vec()])
    }

    pub fn add_parts(&mut self, name: &str, want: Want, parts: Vec<Vec<u8>>) -> &mut Vector {
        self.vectors.push(Vector {
            category: self.category,
            name: format!("{}/{name}", self.category),
            parts,
            want,
            side: Side::Request,
            head: false,
            backend_host: None,
            backend_target: None,
            relay_body: None,
        });
        self.vectors.last_mut().unwrap()
    }

    /// A response-side vector: the backend answers every request with `reply`.
    pub fn reply(&mut self, name: &str, want: Want, reply: impl AsRef<[u8]>) -> &mut Vector {
        let vector = self.add(name, want, GET);
        vector.side = Side::Response {
            reply: reply.as_ref().to_vec(),
            close: false,
        };
        vector
    }
}

/// A POST with the given extra header lines (each ending in CRLF) and body.
pub fn post(headers: &str, body: &str) -> String {
    format!("POST / HTTP/1.1\r\nHost: a.example\r\n{headers}\r\n{body}")
}

/// Every vector, by category.
pub fn all() -> Vec<Vector> {
    let sets = super::vectors_framing::sets()
        .into_iter()
        .chain(super::vectors_messages::sets())
        .chain(super::vectors_responses::sets());
    sets.flat_map(|set| set.vectors).collect()
}
