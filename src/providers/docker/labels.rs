//! Container labels → routes, pure: `kr.ingress.{container-port}=https://{domain}/{path}`.
//!
//! A label value holds one or more comma-separated URLs. The scheme is `https` (TLS, plain
//! HTTP redirected), `http` (plain HTTP only) or `tcp` (`tcp://` alone: a raw TCP port, taken
//! by [`tcp_ports`] and assigned by `tcp_ports/allocator.rs`; [`parse`] skips it). `{domain}` is a DNS
//! name, `*` (the tenant's default domain) or `sub.*` (a subdomain of it). `{path}` is an
//! optional prefix (`/` when absent). Every bad label is reported with its key; the
//! container's other labels still route.

use std::collections::BTreeMap;

/// Labels under this prefix are ours.
pub const PREFIX: &str = "kr.ingress.";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scheme {
    /// TLS; plain HTTP is redirected (308).
    Https,
    /// Plain HTTP only.
    Http,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Https => "https",
            Scheme::Http => "http",
        }
    }
}

/// One route a label asks for.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LabelRoute {
    /// The container port requests go to.
    pub port: u16,
    pub scheme: Scheme,
    /// Lower-case DNS name (`*` and `sub.*` resolved against the default domain).
    pub host: String,
    /// A path prefix starting with `/`.
    pub path: String,
    /// Whether the host is the tenant's default domain or under it (else a custom domain).
    pub under_default_domain: bool,
}

/// A label that could not be used, by its key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct LabelError {
    pub label: String,
    pub message: String,
}

/// The routes of a container's labels, and the labels (or URLs in them) that are invalid.
/// `default_domain`: the tenant's (`*` and `sub.*` need one). Routes are sorted, deduplicated.
pub fn parse(labels: &BTreeMap<String, String>, default_domain: Option<&str>) -> (Vec<LabelRoute>, Vec<LabelError>) {
    let mut routes = Vec::new();
    let mut errors = Vec::new();
    for (key, value) in labels.range(PREFIX.to_string()..) {
        let Some(port) = key.strip_prefix(PREFIX) else { break };
        let mut error = |message: String| {
            errors.push(LabelError {
                label: key.clone(),
                message,
            })
        };
        let port = match parse_port(port) {
            Ok(port) => port,
            Err(message) => {
                error(message);
                continue;
            }
        };
        for (i, url) in value.split(',').enumerate() {
            let url = url.trim();
            if url.is_empty() {
                error(format!("URL {} is empty (a value holds comma-separated URLs)", i + 1));
                continue;
            }
            if is_tcp(url) {
                // `tcp://` is taken by tcp_ports(); anything after it is an error here.
                if let Err(message) = check_tcp(url) {
                    error(format!("{url:?}: {message}"));
                }
                continue;
            }
            match parse_url(url, port, default_domain) {
                Ok(route) => routes.push(route),
                Err(message) => error(format!("{url:?}: {message}")),
            }
        }
    }
    routes.sort();
    routes.dedup();
    (routes, errors)
}

/// The container ports whose labels ask for a raw TCP port (`kr.ingress.{port}=tcp://`),
/// sorted, deduplicated. Invalid labels are reported by [`parse`], not here.
pub fn tcp_ports(labels: &BTreeMap<String, String>) -> Vec<u16> {
    let mut ports: Vec<u16> = labels
        .range(PREFIX.to_string()..)
        .take_while(|(key, _)| key.starts_with(PREFIX))
        .filter_map(|(key, value)| {
            let port = parse_port(key.strip_prefix(PREFIX)?).ok()?;
            value
                .split(',')
                .map(str::trim)
                .any(|url| is_tcp(url) && check_tcp(url).is_ok())
                .then_some(port)
        })
        .collect();
    ports.sort_unstable();
    ports.dedup();
    ports
}

fn is_tcp(url: &str) -> bool {
    url.split_once("://")
        .is_some_and(|(scheme, _)| scheme.eq_ignore_ascii_case("tcp"))
}

/// `tcp://` takes nothing after the scheme: the public port is assigned, the host is any.
fn check_tcp(url: &str) -> Result<(), String> {
    match url.split_once("://") {
        Some((_, "")) => Ok(()),
        _ => Err(
            "tcp:// takes no domain, port or path: the public port is assigned from --tcp-ports \
             (see `vestibule routes`)"
                .to_string(),
        ),
    }
}

fn parse_port(text: &str) -> Result<u16, String> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) || text.len() > 5 {
        return Err(format!(
            "{text:?} is not a container port: the key is kr.ingress.<port>, a number from 1 to 65535"
        ));
    }
    match text.parse::<u16>() {
        Ok(port) if port > 0 => Ok(port),
        _ => Err(format!("container port {text} is out of range (1 to 65535)")),
    }
}

fn parse_url(url: &str, port: u16, default_domain: Option<&str>) -> Result<LabelRoute, String> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err("not a URL: expected https://DOMAIN/PATH, http://DOMAIN/PATH or tcp://".to_string());
    };
    let scheme = match scheme.to_ascii_lowercase().as_str() {
        "https" => Scheme::Https,
        "http" => Scheme::Http,
        other => return Err(format!("unknown scheme {other:?} (https, http or tcp)")),
    };
    let (authority, path) = match rest.find('/') {
        Some(at) => (&rest[..at], &rest[at..]),
        None => (rest, "/"),
    };
    if authority.contains('@') {
        return Err("user information in the URL is not supported".to_string());
    }
    if authority.contains(':') {
        return Err("a port in the URL is not supported: the public ports are the --http and --https listeners".into());
    }
    let (host, under_default_domain) = host(authority, default_domain)?;
    check_path(path)?;
    Ok(LabelRoute {
        port,
        scheme,
        host,
        path: path.to_string(),
        under_default_domain,
    })
}

/// The host a label's domain names; true when it is (under) the default domain.
fn host(domain: &str, default_domain: Option<&str>) -> Result<(String, bool), String> {
    let domain = domain.to_ascii_lowercase();
    let domain = domain.strip_suffix('.').unwrap_or(&domain);
    if domain.is_empty() {
        return Err("no domain".to_string());
    }
    let needs_default = |what: &str| match default_domain {
        Some(default) => Ok(default.to_string()),
        None => Err(format!(
            "{what} needs the tenant's default domain: run with --tenant-domain-suffix or --default-domain TENANT=DOMAIN"
        )),
    };
    let (host, under) = if domain == "*" {
        (needs_default("\"*\"")?, true)
    } else if let Some(sub) = domain.strip_suffix(".*") {
        if sub.contains('*') {
            return Err("\"*\" may only be the last label (sub.*) or the whole domain".to_string());
        }
        (format!("{sub}.{}", needs_default("\"sub.*\"")?), true)
    } else if domain.contains('*') {
        return Err(
            "wildcard domains are not supported; \"*\" may only be the last label (sub.*) or the whole domain".into(),
        );
    } else {
        let under = default_domain.is_some_and(|d| domain == d || domain.ends_with(&format!(".{d}")));
        (domain.to_string(), under)
    };
    check_dns_name(&host)?;
    Ok((host, under))
}

/// A DNS name as the Ingress API takes it (RFC 1123 subdomain).
pub fn check_dns_name(name: &str) -> Result<(), String> {
    if name.len() > 253 {
        return Err(format!("domain {name:?} is longer than 253 characters"));
    }
    for label in name.split('.') {
        let ok = !label.is_empty()
            && label.len() <= 63
            && label
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-');
        if !ok {
            return Err(format!(
                "{name:?} is not a valid domain (labels of a-z, 0-9 and '-', 1 to 63 characters, not starting or ending with '-')"
            ));
        }
    }
    if name.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return Err(format!("{name:?} is an IP address, not a domain"));
    }
    Ok(())
}

fn check_path(path: &str) -> Result<(), String> {
    if let Some(bad) = path.chars().find(|c| {
        c.is_whitespace()
            || c.is_control()
            || matches!(c, '?' | '#' | '{' | '}' | '|' | '\\' | '^' | '`' | '"' | '<' | '>')
    }) {
        return Err(format!("the path may not contain {bad:?}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn route(port: u16, scheme: Scheme, host: &str, path: &str, under: bool) -> LabelRoute {
        LabelRoute {
            port,
            scheme,
            host: host.into(),
            path: path.into(),
            under_default_domain: under,
        }
    }

    #[test]
    fn https_and_http_with_and_without_path() {
        let (routes, errors) = parse(
            &labels(&[
                ("kr.ingress.80", "https://Shop.Example.com/api"),
                ("kr.ingress.8080", "http://admin.example.com"),
                ("com.docker.compose.service", "web"),
            ]),
            None,
        );
        assert_eq!(errors, vec![]);
        assert_eq!(
            routes,
            vec![
                route(80, Scheme::Https, "shop.example.com", "/api", false),
                route(8080, Scheme::Http, "admin.example.com", "/", false),
            ]
        );
    }

    #[test]
    fn several_urls_in_one_value_and_default_domain_forms() {
        let (routes, errors) = parse(
            &labels(&[("kr.ingress.80", "https://*, https://nginx.*/x ,http://123123.1d.pt/y")]),
            Some("123123.1d.pt"),
        );
        assert_eq!(errors, vec![]);
        assert_eq!(
            routes,
            vec![
                route(80, Scheme::Https, "123123.1d.pt", "/", true),
                route(80, Scheme::Https, "nginx.123123.1d.pt", "/x", true),
                route(80, Scheme::Http, "123123.1d.pt", "/y", true),
            ]
        );
    }

    #[test]
    fn bad_labels_are_reported_by_key_and_good_ones_kept() {
        let (routes, errors) = parse(
            &labels(&[
                ("kr.ingress.0", "https://a.example.com"),
                ("kr.ingress.70000", "https://a.example.com"),
                ("kr.ingress.web", "https://a.example.com"),
                ("kr.ingress.81", "ftp://a.example.com"),
                (
                    "kr.ingress.82",
                    "https://a.example.com/with space, https://good.example.com",
                ),
                ("kr.ingress.83", "https://bad_domain.example.com"),
                ("kr.ingress.84", "tcp://db.example.com:5432"),
                ("kr.ingress.85", "https://*"),
                ("kr.ingress.86", "https://a.example.com:8443/"),
                ("kr.ingress.87", "https://a.*.example.com"),
                ("kr.ingress.88", "a.example.com"),
                ("kr.ingress.89", ""),
            ]),
            None,
        );
        assert_eq!(routes, vec![route(82, Scheme::Https, "good.example.com", "/", false)]);
        let got: Vec<(&str, &str)> = errors.iter().map(|e| (e.label.as_str(), e.message.as_str())).collect();
        let expect_contains = [
            ("kr.ingress.0", "out of range"),
            ("kr.ingress.70000", "out of range"),
            ("kr.ingress.81", "unknown scheme \"ftp\""),
            ("kr.ingress.82", "may not contain ' '"),
            ("kr.ingress.83", "not a valid domain"),
            ("kr.ingress.84", "tcp:// takes no domain"),
            ("kr.ingress.85", "--tenant-domain-suffix"),
            ("kr.ingress.86", "a port in the URL"),
            ("kr.ingress.87", "may only be the last label"),
            ("kr.ingress.88", "not a URL"),
            ("kr.ingress.89", "empty"),
            ("kr.ingress.web", "is not a container port"),
        ];
        assert_eq!(got.len(), expect_contains.len(), "{got:#?}");
        for ((label, message), (want_label, want)) in got.iter().zip(expect_contains) {
            assert_eq!(*label, want_label);
            assert!(message.contains(want), "{label}: {message:?} lacks {want:?}");
        }
    }

    #[test]
    fn tcp_labels_name_container_ports_and_route_no_http() {
        let labels = labels(&[
            ("kr.ingress.5432", "tcp://"),
            ("kr.ingress.6379", "TCP://, http://cache.example.com"),
            ("kr.ingress.7000", "tcp://x.example.com"),
            ("kr.ingress.80", "http://web.example.com"),
            ("kr.ingress.bad", "tcp://"),
        ]);
        assert_eq!(tcp_ports(&labels), vec![5432, 6379]);
        let (routes, errors) = parse(&labels, None);
        let hosts: Vec<(u16, &str)> = routes.iter().map(|r| (r.port, r.host.as_str())).collect();
        assert_eq!(hosts, vec![(80, "web.example.com"), (6379, "cache.example.com")]);
        let bad: Vec<&str> = errors.iter().map(|e| e.label.as_str()).collect();
        assert_eq!(bad, vec!["kr.ingress.7000", "kr.ingress.bad"], "{errors:?}");
    }

    #[test]
    fn custom_and_default_domains_are_told_apart() {
        let (routes, _) = parse(
            &labels(&[("kr.ingress.80", "https://t.1d.pt,https://a.t.1d.pt,https://xt.1d.pt")]),
            Some("t.1d.pt"),
        );
        let under: Vec<(&str, bool)> = routes
            .iter()
            .map(|r| (r.host.as_str(), r.under_default_domain))
            .collect();
        assert_eq!(under, vec![("a.t.1d.pt", true), ("t.1d.pt", true), ("xt.1d.pt", false)]);
    }
}
