//! Password hashes as they appear in htpasswd files (ingress-nginx's `auth-secret`): bcrypt
//! (`$2y$`, `$2a$`, `$2b$`), Apache MD5 (`$apr1$`) and MD5-crypt (`$1$`), SHA-1 (`{SHA}`),
//! SHA-256/512-crypt (`$5$`, `$6$`). Plain text and DES crypt are refused when the Secret is
//! read. Parsing is pure; verification is CPU work (bcrypt and SHA-crypt are slow by design:
//! [`PasswordHash::is_slow`] tells the proxy to run it off the worker's thread).

use std::fmt;

use base64::Engine;
use md5::{Digest, Md5};
use sha_crypt::PasswordVerifier;

/// One user's password hash, checked for its format when read.
#[derive(Clone, PartialEq, Eq)]
pub enum PasswordHash {
    /// `$2y$…`, `$2a$…` or `$2b$…`: 60 characters.
    Bcrypt(Box<str>),
    /// `$apr1$salt$hash` (Apache) or `$1$salt$hash` (MD5-crypt): the magic, salt and the 22
    /// characters of the hash.
    Md5Crypt {
        magic: &'static str,
        salt: Box<str>,
        hash: Box<str>,
    },
    /// `{SHA}` + base64 of the SHA-1 digest (no salt).
    Sha1([u8; 20]),
    /// `$5$…` or `$6$…`.
    ShaCrypt(Box<str>),
}

/// crypt(3)'s base64 alphabet.
const ITOA64: &[u8; 64] = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

impl PasswordHash {
    /// Reads one hash; the error says what is wrong without repeating the hash.
    pub fn parse(text: &str) -> Result<PasswordHash, &'static str> {
        let crypt64 = |s: &str| s.bytes().all(|b| ITOA64.contains(&b));
        if let Some(rest) = ["$2y$", "$2a$", "$2b$"]
            .iter()
            .find_map(|prefix| text.strip_prefix(prefix))
        {
            let cost = rest.get(..2).and_then(|cost| cost.parse::<u32>().ok());
            let valid = text.len() == 60
                && rest.get(2..3) == Some("$")
                && cost.is_some_and(|cost| (4..=31).contains(&cost))
                && rest.get(3..).is_some_and(crypt64);
            return if valid {
                Ok(PasswordHash::Bcrypt(text.into()))
            } else {
                Err("a bcrypt hash that does not parse (expected $2y$NN$ and 53 characters)")
            };
        }
        for magic in ["$apr1$", "$1$"] {
            if let Some(rest) = text.strip_prefix(magic) {
                return match rest.split_once('$') {
                    Some((salt, hash))
                        if !salt.is_empty()
                            && salt.len() <= 8
                            && crypt64(salt)
                            && hash.len() == 22
                            && crypt64(hash) =>
                    {
                        Ok(PasswordHash::Md5Crypt {
                            magic,
                            salt: salt.into(),
                            hash: hash.into(),
                        })
                    }
                    _ => Err("an MD5 hash that does not parse (expected $apr1$SALT$ and 22 characters)"),
                };
            }
        }
        if let Some(encoded) = text.strip_prefix("{SHA}") {
            let digest = base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .ok()
                .and_then(|bytes| <[u8; 20]>::try_from(bytes).ok());
            return digest
                .map(PasswordHash::Sha1)
                .ok_or("a {SHA} hash that does not parse (expected the base64 of 20 bytes)");
        }
        if let Some((rest, length)) = text
            .strip_prefix("$5$")
            .map(|rest| (rest, 43))
            .or_else(|| text.strip_prefix("$6$").map(|rest| (rest, 86)))
        {
            // [rounds=N$]salt$hash: the hash of its exact length, the salt of at most 16.
            let fields: Vec<&str> = rest.split('$').collect();
            let (salt, hash) = match fields.as_slice() {
                [rounds, salt, hash] if rounds.starts_with("rounds=") => (*salt, *hash),
                [salt, hash] => (*salt, *hash),
                _ => ("", ""),
            };
            let valid = salt.len() <= 16
                && hash.len() == length
                && crypt64(hash)
                && sha_crypt::PasswordHashRef::new(text).is_ok();
            return if valid {
                Ok(PasswordHash::ShaCrypt(text.into()))
            } else {
                Err("a SHA-crypt hash that does not parse (expected $5$ or $6$, salt and hash)")
            };
        }
        if text.len() == 13 && crypt64(text) {
            return Err(
                "DES crypt is not supported (it keeps only 8 characters of a password): hash with bcrypt (htpasswd -B)",
            );
        }
        Err("not a supported hash (plain text is refused): use bcrypt (htpasswd -B), $apr1$, {SHA}, $5$ or $6$")
    }

    /// Whether checking a password costs milliseconds (bcrypt, SHA-crypt): run it off the
    /// worker's thread and remember successes.
    pub fn is_slow(&self) -> bool {
        matches!(self, PasswordHash::Bcrypt(_) | PasswordHash::ShaCrypt(_))
    }

    /// The stored text of a slow hash (what a remembered success is keyed by); `None` for fast ones.
    pub fn stored(&self) -> Option<&str> {
        match self {
            PasswordHash::Bcrypt(text) | PasswordHash::ShaCrypt(text) => Some(text),
            PasswordHash::Md5Crypt { .. } | PasswordHash::Sha1(_) => None,
        }
    }

    /// Whether `password` matches (compared in constant time where we compare).
    pub fn verify(&self, password: &[u8]) -> bool {
        match self {
            PasswordHash::Bcrypt(hash) => bcrypt::verify(password, hash).unwrap_or(false),
            PasswordHash::Md5Crypt { magic, salt, hash } => {
                constant_time_eq(md5_crypt(password, salt.as_bytes(), magic).as_bytes(), hash.as_bytes())
            }
            PasswordHash::Sha1(digest) => {
                let computed = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, password);
                constant_time_eq(computed.as_ref(), digest)
            }
            PasswordHash::ShaCrypt(hash) => sha_crypt::ShaCrypt::default()
                .verify_password(password, hash.as_ref())
                .is_ok(),
        }
    }

    /// The format's name, for descriptions (never the hash).
    pub fn format(&self) -> &'static str {
        match self {
            PasswordHash::Bcrypt(_) => "bcrypt",
            PasswordHash::Md5Crypt { magic: "$1$", .. } => "md5-crypt",
            PasswordHash::Md5Crypt { .. } => "apr1",
            PasswordHash::Sha1(_) => "sha1",
            PasswordHash::ShaCrypt(hash) if hash.starts_with("$5$") => "sha256-crypt",
            PasswordHash::ShaCrypt(_) => "sha512-crypt",
        }
    }
}

/// Never prints the hash.
impl fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PasswordHash({})", self.format())
    }
}

/// Equal length and bytes, in time independent of where they differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// MD5-crypt (Poul-Henning Kamp's algorithm; Apache's `$apr1$` differs only by its magic):
/// the 22 characters after the salt.
fn md5_crypt(password: &[u8], salt: &[u8], magic: &str) -> String {
    let alternate = Md5::new()
        .chain_update(password)
        .chain_update(salt)
        .chain_update(password)
        .finalize();
    let mut context = Md5::new();
    context.update(password);
    context.update(magic.as_bytes());
    context.update(salt);
    let mut remaining = password.len();
    while remaining > 0 {
        let take = remaining.min(16);
        context.update(alternate.get(..take).unwrap_or_default());
        remaining -= take;
    }
    let mut bits = password.len();
    while bits > 0 {
        if bits & 1 == 1 {
            context.update([0u8]);
        } else {
            context.update(password.get(..1).unwrap_or_default());
        }
        bits >>= 1;
    }
    let mut last: [u8; 16] = context.finalize().into();
    for round in 0..1000 {
        let mut step = Md5::new();
        if round & 1 == 1 {
            step.update(password);
        } else {
            step.update(last);
        }
        if round % 3 != 0 {
            step.update(salt);
        }
        if round % 7 != 0 {
            step.update(password);
        }
        if round & 1 == 1 {
            step.update(last);
        } else {
            step.update(password);
        }
        last = step.finalize().into();
    }
    let mut out = String::with_capacity(22);
    let mut push = |value: u32, count: usize| {
        let mut value = value;
        for _ in 0..count {
            out.push(char::from(ITOA64[(value & 0x3f) as usize]));
            value >>= 6;
        }
    };
    let b = |i: usize| u32::from(last[i]);
    push((b(0) << 16) | (b(6) << 8) | b(12), 4);
    push((b(1) << 16) | (b(7) << 8) | b(13), 4);
    push((b(2) << 16) | (b(8) << 8) | b(14), 4);
    push((b(3) << 16) | (b(9) << 8) | b(15), 4);
    push((b(4) << 16) | (b(10) << 8) | b(5), 4);
    push(b(11), 2);
    out
}

#[cfg(test)]
mod tests;
