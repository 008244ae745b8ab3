//! A CIDR block (`10.0.0.0/8`, `fd00::/8`, or a bare address meaning one host), used for the
//! trusted-proxy list and per-route source ranges. Parsing only; no I/O.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// An IPv4 or IPv6 network. IPv4-mapped IPv6 peers (`::ffff:10.1.2.3`) match IPv4 blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

/// Why a CIDR string was rejected; carries the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CidrError {
    #[error("{input:?}: not an IP address or CIDR block")]
    Address { input: String },
    #[error("{input:?}: prefix length must be a number from 0 to {max}")]
    Prefix { input: String, max: u8 },
}

impl Cidr {
    /// The block of `address/prefix`; host bits are cleared. `None` if the prefix is too long.
    pub fn new(address: IpAddr, prefix: u8) -> Option<Cidr> {
        let max = max_prefix(&address);
        if prefix > max {
            return None;
        }
        let network = match address {
            IpAddr::V4(v4) => IpAddr::V4((u32::from(v4) & mask32(prefix)).into()),
            IpAddr::V6(v6) => IpAddr::V6((u128::from(v6) & mask128(prefix)).into()),
        };
        Some(Cidr { network, prefix })
    }

    /// True if `ip` is inside the block.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        match (self.network, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => u32::from(ip) & mask32(self.prefix) == u32::from(net),
            (IpAddr::V6(net), IpAddr::V6(ip)) => u128::from(ip) & mask128(self.prefix) == u128::from(net),
            _ => false,
        }
    }
}

fn max_prefix(address: &IpAddr) -> u8 {
    if address.is_ipv4() { 32 } else { 128 }
}

fn mask32(prefix: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0)
}

fn mask128(prefix: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0)
}

impl FromStr for Cidr {
    type Err = CidrError;

    fn from_str(input: &str) -> Result<Cidr, CidrError> {
        let trimmed = input.trim();
        let (address, prefix) = match trimmed.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (trimmed, None),
        };
        let address: IpAddr = address
            .parse()
            .map_err(|_| CidrError::Address { input: input.into() })?;
        let max = max_prefix(&address);
        let prefix = match prefix {
            None => max,
            Some(prefix) => prefix
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| CidrError::Prefix {
                    input: input.into(),
                    max,
                })?,
        };
        Cidr::new(address, prefix).ok_or_else(|| CidrError::Prefix {
            input: input.into(),
            max,
        })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn parses_blocks_and_single_hosts() {
        let block: Cidr = "10.1.2.3/8".parse().unwrap();
        assert_eq!(block.to_string(), "10.0.0.0/8");
        assert!(block.contains(ip("10.255.0.1")));
        assert!(!block.contains(ip("11.0.0.1")));
        let host: Cidr = "192.168.1.7".parse().unwrap();
        assert!(host.contains(ip("192.168.1.7")));
        assert!(!host.contains(ip("192.168.1.8")));
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("1.2.3.4")));
        assert!(!all.contains(ip("::1")));
    }

    #[test]
    fn ipv6_and_mapped_ipv4() {
        let block: Cidr = "fd00::/8".parse().unwrap();
        assert!(block.contains(ip("fd12::1")));
        assert!(!block.contains(ip("fe80::1")));
        let v4: Cidr = "127.0.0.0/8".parse().unwrap();
        assert!(v4.contains(ip("::ffff:127.0.0.1")));
    }

    #[test]
    fn rejects_bad_input_naming_it() {
        assert_eq!(
            "10.0.0.0/33".parse::<Cidr>(),
            Err(CidrError::Prefix {
                input: "10.0.0.0/33".into(),
                max: 32
            })
        );
        assert!("nope/8".parse::<Cidr>().unwrap_err().to_string().contains("nope/8"));
        assert!("10.0.0.0/x".parse::<Cidr>().is_err());
    }
}
