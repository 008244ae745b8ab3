//! Host names in Ingress rules and TLS entries: validation (as the API server validates them)
//! and the normalised form the route table is keyed by. Owns no routing decisions.

use std::net::IpAddr;

/// A validated, lower-case host pattern.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum HostPattern {
    /// `a.example`
    Exact(String),
    /// `*.example` (matches exactly one label); holds the suffix, `example`.
    Wildcard(String),
}

impl HostPattern {
    /// The host as a user writes it: `a.example` or `*.example`.
    pub(crate) fn display(&self) -> String {
        match self {
            HostPattern::Exact(host) => host.clone(),
            HostPattern::Wildcard(suffix) => format!("*.{suffix}"),
        }
    }
}

/// A parsed host and whether it had to be lower-cased (the API server would reject it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ParsedHost {
    pub(crate) pattern: HostPattern,
    pub(crate) lowered: bool,
}

/// Validates `raw` as a DNS-1123 subdomain, or a wildcard `*.` + subdomain; the message of the
/// error quotes the bad value and says what is expected.
pub(crate) fn parse_host(raw: &str) -> Result<ParsedHost, String> {
    let lower = raw.to_ascii_lowercase();
    let lowered = lower != raw;
    if lower.parse::<IpAddr>().is_ok() {
        return Err(format!(
            "host {raw:?} is an IP address; Ingress hosts must be DNS names"
        ));
    }
    let (wildcard, name) = match lower.strip_prefix("*.") {
        Some(suffix) => (true, suffix),
        None => (false, lower.as_str()),
    };
    if name.contains('*') {
        return Err(format!(
            "host {raw:?}: a wildcard '*' is only allowed as the whole first label, as in \"*.example.com\""
        ));
    }
    if let Err(reason) = check_subdomain(name) {
        return Err(format!("host {raw:?} is not a valid DNS name: {reason}"));
    }
    let pattern = if wildcard {
        HostPattern::Wildcard(name.to_string())
    } else {
        HostPattern::Exact(name.to_string())
    };
    Ok(ParsedHost { pattern, lowered })
}

/// DNS-1123 subdomain: at most 253 characters; labels of 1 to 63 of `a-z`, `0-9` and `-`,
/// starting and ending with a letter or digit.
fn check_subdomain(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("it is empty".to_string());
    }
    if name.len() > 253 {
        return Err(format!("it is {} characters long (at most 253)", name.len()));
    }
    for label in name.split('.') {
        if label.is_empty() {
            return Err("it has an empty label".to_string());
        }
        if label.len() > 63 {
            return Err(format!("label {label:?} is longer than 63 characters"));
        }
        if let Some(bad) = label
            .chars()
            .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
        {
            return Err(format!("label {label:?} contains {bad:?} (allowed: a-z, 0-9, '-')"));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(format!("label {label:?} must start and end with a letter or digit"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exact(host: &str) -> Result<ParsedHost, String> {
        parse_host(host)
    }

    #[test]
    fn accepts_exact_and_wildcard_hosts() {
        assert_eq!(
            exact("a.example").map(|h| h.pattern),
            Ok(HostPattern::Exact("a.example".into()))
        );
        assert_eq!(
            exact("*.foo.com").map(|h| h.pattern),
            Ok(HostPattern::Wildcard("foo.com".into()))
        );
    }

    #[test]
    fn lower_cases_and_says_so() {
        let parsed = exact("Shop.Example").unwrap();
        assert_eq!(parsed.pattern, HostPattern::Exact("shop.example".into()));
        assert!(parsed.lowered);
    }

    #[test]
    fn rejects_bad_hosts_quoting_them() {
        for bad in [
            "a_b.example",
            "*.",
            "*",
            "a.*.example",
            "foo.*",
            "-a.example",
            "a..b",
            "1.2.3.4",
            "a:80",
        ] {
            let err = exact(bad).unwrap_err();
            assert!(err.contains(&format!("{bad:?}")), "{bad}: {err}");
        }
        assert!(exact(&"a".repeat(64)).is_err());
    }
}
