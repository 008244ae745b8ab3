//! ingress-nginx's `mirror-target`, `mirror-host` and `mirror-request-body` → a typed
//! [`RouteMirror`] (the Gateway API's `RequestMirror` compiles to the same, in
//! `gateway/http_route.rs`).
//!
//! `mirror-target` is a URL, `http(s)://host[:port][/path]`, where `$request_uri` (the only
//! variable) stands for the client's original request target. Its host is either a Service of
//! the Ingress's own namespace (`name.namespace.svc[.cluster.local]`: its endpoints, as a
//! backend's), or an address reached as an ExternalName Service's is — resolved when
//! connecting, never to loopback, link-local or the admin server unless
//! `--allow-local-external-name`; literal such addresses (and `localhost`) are refused here
//! already, naming the Ingress and annotation.

use std::collections::BTreeMap;
use std::sync::Arc;

use http::HeaderValue;
use http::uri::Authority;

use super::Reporter;
use super::annotations::{field, is_path_text, value};
use super::auth::is_local_host;
use super::backends::{Backends, PortRef, ServiceRef};
use crate::routes::{BackendKey, MirrorHost, MirrorPath, MirrorShare, MirrorTarget, RouteMirror, UpstreamProtocol};

/// A parsed `mirror-target`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MirrorUrl {
    pub(crate) https: bool,
    /// Lower-case, without brackets for IPv6.
    pub(crate) host: String,
    pub(crate) port: u16,
    /// The authority as written (`host[:port]`): the copies' default Host.
    pub(crate) authority: String,
    pub(crate) path: MirrorPath,
}

impl MirrorUrl {
    /// `(service, namespace)` when the host names a Service in the cluster
    /// (`name.namespace.svc`, optionally followed by the cluster domain).
    pub(crate) fn service(&self) -> Option<(&str, &str)> {
        let mut labels = self.host.splitn(4, '.');
        let (name, namespace, svc) = (labels.next()?, labels.next()?, labels.next()?);
        (svc == "svc" && !name.is_empty() && !namespace.is_empty()).then_some((name, namespace))
    }
}

const REQUEST_URI: &str = "$request_uri";

/// Parses a `mirror-target` value; the error says what is wrong with it.
pub(crate) fn parse_mirror_target(text: &str) -> Result<MirrorUrl, String> {
    if text.chars().any(|c| c.is_control() || c == ' ') {
        return Err("control characters and spaces are not allowed in mirror-target".to_string());
    }
    let (https, rest) = if let Some(rest) = text.strip_prefix("http://") {
        (false, rest)
    } else if let Some(rest) = text.strip_prefix("https://") {
        (true, rest)
    } else {
        return Err(format!(
            "{:?} is not an http:// or https:// URL",
            text.escape_debug().to_string()
        ));
    };
    let end = rest.find(['/', '?', '$', '#']).unwrap_or(rest.len());
    let (authority_text, target) = rest.split_at(end);
    if authority_text.contains('@') {
        return Err("mirror-target must not carry user information".to_string());
    }
    let authority: Authority = authority_text
        .parse()
        .map_err(|_| format!("mirror-target's host {authority_text:?} is not a host[:port]"))?;
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase();
    if host.is_empty() {
        return Err("mirror-target has no host".to_string());
    }
    // The port as written: after the last `:` outside an IPv6 literal's brackets.
    let after_brackets = authority_text.rsplit(']').next().unwrap_or(authority_text);
    let written_port = after_brackets.rsplit_once(':').map(|(_, port)| port);
    let port = match written_port.map(str::parse::<u16>) {
        Some(Ok(0)) => return Err("mirror-target's port must be 1-65535".to_string()),
        Some(Ok(port)) => port,
        Some(Err(_)) => {
            return Err(format!(
                "mirror-target's host {authority_text:?} is not a host[:port] (port 1-65535)"
            ));
        }
        None if https => 443,
        None => 80,
    };
    if target.contains('#') {
        return Err("mirror-target must not have a fragment".to_string());
    }
    let (before, request_uri, after) = match target.split_once(REQUEST_URI) {
        Some((before, after)) => (before, true, after),
        None => (target, false, ""),
    };
    if before.contains('$') || after.contains('$') {
        return Err(
            "$request_uri is the only nginx variable mirror-target may use, once (write the mirror's URL otherwise)"
                .to_string(),
        );
    }
    // What a copy's target can look like must be a valid request target.
    let sample = MirrorPath::Template {
        before: before.to_string(),
        request_uri,
        after: after.to_string(),
    }
    .target("/x?y", "/x?y");
    let (path, query) = sample.split_once('?').unwrap_or((&sample, ""));
    let query_ok = is_path_text(&query.replace('?', ""));
    if !is_path_text(path) || !query_ok || sample.parse::<http::uri::PathAndQuery>().is_err() {
        return Err(format!("mirror-target's path {target:?} is not a URI path"));
    }
    Ok(MirrorUrl {
        https,
        host,
        port,
        authority: authority.as_str().to_string(),
        path: MirrorPath::Template {
            before: before.to_string(),
            request_uri,
            after: after.to_string(),
        },
    })
}

/// `mirror-request-body`: `on` (the default) or `off` (nginx's words; `true`/`false` too).
fn request_body(annotations: &BTreeMap<String, String>, report: &mut Reporter<'_>) -> Option<bool> {
    let Some((key, text)) = value(annotations, "mirror-request-body") else {
        return Some(true);
    };
    match text.trim().to_ascii_lowercase().as_str() {
        "on" | "true" => Some(true),
        "off" | "false" => Some(false),
        _ => {
            report.error(field(key), format!("{text:?} is neither \"on\" nor \"off\": no mirror"));
            None
        }
    }
}

/// The mirror of an Ingress's routes, from its annotations; `None` without `mirror-target`, or
/// when a value is wrong (reported as an error naming the annotation: the Ingress version is
/// defective, and its last good version keeps serving).
pub(crate) fn ingress_mirror<'s>(
    namespace: &'s str,
    annotations: &'s BTreeMap<String, String>,
    backends: &mut Backends<'s>,
    report: &mut Reporter<'_>,
) -> Option<Arc<RouteMirror>> {
    let Some((key, text)) = value(annotations, "mirror-target") else {
        for companion in ["mirror-host", "mirror-request-body"] {
            if let Some((key, _)) = value(annotations, companion) {
                report.warning(field(key), "no mirror-target on this Ingress: ignored");
            }
        }
        return None;
    };
    let body = request_body(annotations, report);
    let url = match parse_mirror_target(text.trim()) {
        Ok(url) => url,
        Err(message) => {
            report.error(field(key), format!("{message}: no mirror"));
            return None;
        }
    };
    let body = body?;
    let host = match value(annotations, "mirror-host") {
        None => HeaderValue::from_str(&url.authority).ok()?,
        Some((host_key, written)) => match written.trim().parse::<Authority>() {
            Ok(authority) if !authority.as_str().contains('@') && !authority.host().is_empty() => {
                HeaderValue::from_str(authority.as_str()).ok()?
            }
            _ => {
                report.error(
                    field(host_key),
                    format!(
                        "{:?} is not a host[:port]: no mirror",
                        written.escape_debug().to_string()
                    ),
                );
                return None;
            }
        },
    };
    let protocol = if url.https {
        UpstreamProtocol::Https
    } else {
        UpstreamProtocol::Http1
    };
    let backend = if let Some((service, service_namespace)) = url.service() {
        if service_namespace != namespace {
            report.error(
                field(key),
                format!(
                    "mirror-target names Service {service_namespace}/{service}: only Services of the Ingress's own \
                     namespace ({namespace}) can be mirrored to: no mirror"
                ),
            );
            return None;
        }
        // Borrowed from the annotation text, which lives as long as the snapshot.
        let Some(name) = service_name(text, service) else {
            report.error(
                field(key),
                format!("{service:?} is not a Service name (lower case letters, digits and '-'): no mirror"),
            );
            return None;
        };
        let reference = ServiceRef {
            name,
            port: PortRef::Number(url.port),
        };
        let (id, problem) = backends.resolve_as(namespace, reference, Some(protocol));
        if let Some(problem) = problem {
            report.warning(
                field(key),
                problem.message.replace("requests answer 503", "no copies are sent"),
            );
        }
        id
    } else {
        if !backends.allows_local_addresses() && is_local_host(&url.host) {
            report.error(
                field(key),
                format!(
                    "mirror-target names a loopback, link-local or unspecified address ({}): refused unless \
                     --allow-local-external-name, as it would reach the proxy's own host: no mirror",
                    url.host
                ),
            );
            return None;
        }
        let key = BackendKey {
            namespace: namespace.to_string(),
            service: format!("mirror:{}", url.host),
            port: url.port.to_string(),
        };
        backends.address(key, &url.host, url.port, protocol)
    };
    Some(Arc::new(RouteMirror {
        targets: vec![MirrorTarget {
            backend,
            share: MirrorShare::all(),
            host: MirrorHost::Fixed(host),
            path: url.path,
            body,
        }],
    }))
}

/// `service` (lower-cased from `text`) as a slice of `text` itself, so it borrows from the
/// snapshot; `None` when the annotation spells it in capitals (not a valid Service name).
fn service_name<'s>(text: &'s str, service: &str) -> Option<&'s str> {
    let start = text.find(service)?;
    text.get(start..start + service.len())
}

#[cfg(test)]
mod tests;
