//! One served Ingress → its routes, fallbacks and certificates: walks rules, paths and the
//! default backend, validating each as the API server would, and reports what it skips.
//! Ingresses arrive oldest first, so "first to claim" is "oldest wins".

use crate::config::Ingress;

use crate::routes::HttpsRedirect;

use super::annotations;
use super::backends::{Backends, RefError, ServiceRef, service_ref};
use super::classes::ClassDecision;
use super::hosts::{HostPattern, parse_host};
use super::paths::{PathMatch, parse_path};
use super::table::{Fallback, RewriteTarget, RoutePolicy, TableBuilder, VhostKey};
use super::tenancy::HostGate;
use super::tls::{TlsBuilder, lowered_message};
use super::{Access, Reporter, TranslateOptions};
use std::sync::Arc;

use crate::routes::backend_tls::BackendTls;
use crate::routes::{Canary, CanaryRule, UpstreamProtocol};

/// ingress-nginx's annotation that turns `ImplementationSpecific` paths into regular expressions.
pub(crate) const USE_REGEX_ANNOTATION: &str = "nginx.ingress.kubernetes.io/use-regex";

/// What one translation accumulates.
pub(crate) struct Builders<'s> {
    pub(crate) table: TableBuilder,
    pub(crate) backends: Backends<'s>,
    pub(crate) tls: TlsBuilder<'s>,
    /// `server-alias` and `from-to-www-redirect` names, decided once every rule host is known.
    pub(crate) extra: super::extra_hosts::ExtraHosts,
    /// For `custom-headers`: the ConfigMaps, and the names they may set.
    pub(crate) snapshot: &'s crate::config::Snapshot,
    pub(crate) allowed_response_headers: &'s [String],
}

/// Adds one served Ingress; its routes admit only who `access` lets through; `nginx`: it was
/// written for ingress-nginx ([`written_for_ingress_nginx`]), whose defaults apply; `gate`:
/// the rules (and TLS hosts) tenancy refused, already reported.
pub(crate) fn add_ingress<'s>(
    namespace: &'s str,
    ingress: &'s Ingress,
    access: Access,
    nginx: bool,
    gate: &HostGate,
    builders: &mut Builders<'s>,
    report: &mut Reporter<'_>,
) {
    let spec = &ingress.spec;
    if spec.rules.is_empty() && spec.default_backend.is_none() {
        report.error(
            "spec",
            "the Ingress has no rules and no defaultBackend: nothing to serve",
        );
        return;
    }
    // A redirect or header annotation that does not parse keeps the whole Ingress out: served
    // without it, the Ingress would answer what it was written to redirect or reshape.
    let redirect = super::redirect::ingress_redirect(&ingress.metadata.annotations, report);
    let headers = super::redirect::ingress_headers(&ingress.metadata.annotations, report);
    let custom = super::custom_headers::ingress_custom_headers(
        namespace,
        &ingress.metadata.annotations,
        builders.snapshot,
        builders.allowed_response_headers,
        report,
    );
    let (Ok(redirect), Ok(mut headers), Ok(custom)) = (redirect, headers, custom) else {
        return;
    };
    headers.response = custom;
    let rewrite = annotations::rewrite_target(&ingress.metadata.annotations, report);
    // As in ingress-nginx, a rewrite with captures makes the paths regexes, as use-regex does.
    let use_regex = uses_regex(ingress) || matches!(rewrite, Some(RewriteTarget::Captures(_)));
    let policy = RoutePolicy {
        https_redirect: https_redirect(ingress, nginx, report),
        source_ranges: access.source_ranges.clone(),
        rewrite,
        app_root: annotations::app_root(&ingress.metadata.annotations, report),
        auth: access.auth.clone(),
        protocol: annotations::backend_protocol(&ingress.metadata.annotations, report),
        max_body: annotations::proxy_body_size(&ingress.metadata.annotations, report),
        timeouts: annotations::proxy_timeouts(&ingress.metadata.annotations, report),
        cors: super::cors::route_cors(&ingress.metadata.annotations, report),
        limits: super::limits::route_limits(
            &format!("{namespace}/{}", ingress.metadata.name),
            &ingress.metadata.annotations,
            report,
        ),
        affinity: super::affinity::ingress_affinity(&ingress.metadata.annotations, report),
        mirror: super::mirror::ingress_mirror(namespace, &ingress.metadata.annotations, &mut builders.backends, report),
        retry: super::retry::ingress_retry(&ingress.metadata.annotations, report),
        redirect,
        headers: (!headers.is_empty()).then(|| Arc::new(headers)),
    };
    let route_prefix = format!("ingress/{namespace}/{}", ingress.metadata.name);
    let mut vhosts: Vec<usize> = Vec::new();
    let mut rule_hosts: Vec<HostPattern> = Vec::new();

    for (i, rule) in spec.rules.iter().enumerate() {
        if gate.skipped_rules.contains(&i) {
            continue;
        }
        let key = match rule.host.as_deref().filter(|host| !host.is_empty()) {
            None => VhostKey::CatchAll,
            Some(raw) => match parse_host(raw) {
                Ok(parsed) => {
                    if parsed.lowered {
                        report.warning(format!("spec.rules[{i}].host"), lowered_message(raw, &parsed.pattern));
                    }
                    rule_hosts.push(parsed.pattern.clone());
                    VhostKey::Host(parsed.pattern)
                }
                Err(message) => {
                    report.error(format!("spec.rules[{i}].host"), message);
                    continue;
                }
            },
        };
        let vhost = builders.table.vhost(key);
        if let Some(auth) = &access.client_auth
            && !claim_client_auth(builders, vhost, auth, &format!("spec.rules[{i}].host"), report)
        {
            continue;
        }
        vhosts.push(vhost);
        let paths = rule.http.as_ref().map_or(&[][..], |http| &http.paths[..]);
        for (j, path) in paths.iter().enumerate() {
            // Built only when there is something to report.
            let field = || format!("spec.rules[{i}].http.paths[{j}]");
            let matcher = match parse_path(path.path.as_deref(), path.path_type.as_deref(), use_regex) {
                Ok(matcher) => matcher,
                Err(err) => {
                    report.error(format!("{}.{}", field(), err.field), err.message);
                    continue;
                }
            };
            let regex = match &matcher {
                PathMatch::Regex(pattern) => match builders.table.regex(pattern) {
                    Ok(regex) => Some(regex),
                    Err(message) => {
                        report.error(format!("{}.path", field()), message);
                        continue;
                    }
                },
                _ => None,
            };
            let reference = match service_ref(&path.backend) {
                Ok(reference) => reference,
                Err(err) => {
                    report_backend(err, &format!("{}.backend", field()), report);
                    continue;
                }
            };
            if let Some(winner) = builders.table.owner(vhost, &matcher) {
                report.warning(
                    format!("{}.path", field()),
                    format!(
                        "{} path {:?} on host {:?} is already routed by {} ({}); this path is ignored",
                        matcher.kind(),
                        path.path.as_deref().unwrap_or("/"),
                        builders.table.vhost_name(vhost),
                        builders.table.route_name(winner),
                        winner_reason(builders.table.route_name(winner), &route_prefix),
                    ),
                );
                continue;
            }
            let backend = resolve(
                namespace,
                reference,
                (policy.protocol, tls_of(policy.protocol, &access)),
                || format!("{}.backend", field()),
                builders,
                report,
            );
            if matches!(policy.rewrite, Some(RewriteTarget::Captures(_))) && regex.is_none() {
                report.warning(
                    format!("{}.pathType", field()),
                    "rewrite-target has capture groups, but this path is not a regular expression (pathType \
                     ImplementationSpecific makes it one): its groups are empty",
                );
            }
            if regex.is_some()
                && let Some(affinity) = &policy.affinity
                && !affinity.path_written
            {
                report.warning(
                    format!("{}.path", field()),
                    "a regular expression path needs nginx.ingress.kubernetes.io/session-cookie-path for the \
                     session cookie, as in ingress-nginx: its cookie has Path=/",
                );
            }
            let route = builders.table.add_route(
                format!("{route_prefix}/rules[{i}]/paths[{j}]"),
                backend,
                &policy,
                regex.as_ref(),
                if regex.is_some() { None } else { path.path.as_deref() },
            );
            builders.table.insert(vhost, matcher, regex, route);
        }
    }

    builders.extra.add(
        &ingress.metadata.annotations,
        &rule_hosts,
        gate.extra_hosts.as_ref(),
        &route_prefix,
        report,
    );
    if let Some(default_backend) = spec.default_backend.as_ref().filter(|_| !gate.refuse_default_backend) {
        if let Some(auth) = &access.client_auth {
            // The default backend also answers on the catch-all host: protected there too.
            let catch_all = builders.table.vhost(VhostKey::CatchAll);
            if !claim_client_auth(builders, catch_all, auth, "spec.defaultBackend", report) {
                builders
                    .tls
                    .add_ingress(namespace, ingress, &rule_hosts, gate.tls_hosts.as_ref(), report);
                return;
            }
        }
        add_default_backend(
            namespace,
            default_backend,
            &route_prefix,
            (&policy, tls_of(policy.protocol, &access)),
            vhosts,
            builders,
            report,
        );
    }
    builders
        .tls
        .add_ingress(namespace, ingress, &rule_hosts, gate.tls_hosts.as_ref(), report);
}

/// Gives the host the Ingress's client-certificate policy (the first Ingress to ask keeps it;
/// the same policy again is fine). `false`, reported at `field`: the host already asks for
/// another, and this Ingress's routes there are not served (they would be protected by
/// settings other than their own).
fn claim_client_auth(
    builders: &mut Builders<'_>,
    vhost: usize,
    auth: &std::sync::Arc<crate::routes::ClientAuth>,
    field: &str,
    report: &mut Reporter<'_>,
) -> bool {
    match builders.table.claim_client_auth(vhost, auth) {
        Ok(()) => true,
        Err(owner) => {
            report.error(
                field,
                format!(
                    "{} already asks for other client certificates (auth-tls-*: Ingress {}, Secret {}, \
                     auth-tls-verify-client {}; the oldest Ingress's settings apply to the whole host); this Ingress \
                     is not served there",
                    host_phrase(builders.table.vhost_name(vhost)),
                    owner.ingress,
                    owner.secret,
                    owner.verify.as_str(),
                ),
            );
            false
        }
    }
}

/// `use-regex: "true"` (ingress-nginx's prefix).
fn uses_regex(ingress: &Ingress) -> bool {
    ingress
        .metadata
        .annotations
        .get(USE_REGEX_ANNOTATION)
        .is_some_and(|value| value == "true")
}

/// Adds a canary Ingress: for each of its paths, its backend becomes the alternative of the
/// route of a primary Ingress with the same host and path (ingress-nginx matches them so),
/// chosen as `rule` says. The primary's route keeps its policy (redirects, access, rewrite):
/// ingress-nginx applies the primary's annotations to canary traffic too. Returns how many
/// routes it joined; a path without a primary route, or whose route has an older canary, is
/// reported and not served.
pub(crate) fn add_canary<'s>(
    namespace: &'s str,
    ingress: &'s Ingress,
    rule: &CanaryRule,
    builders: &mut Builders<'s>,
    report: &mut Reporter<'_>,
) -> usize {
    let route_prefix = format!("ingress/{namespace}/{}", ingress.metadata.name);
    let use_regex = uses_regex(ingress);
    let mut joined = 0;
    if ingress.spec.default_backend.is_some() {
        report.warning(
            "spec.defaultBackend",
            "a canary's defaultBackend is not used: a canary joins the primary's host and path routes only",
        );
    }
    for (i, rule_spec) in ingress.spec.rules.iter().enumerate() {
        let key = match rule_spec.host.as_deref().filter(|host| !host.is_empty()) {
            None => VhostKey::CatchAll,
            Some(raw) => match parse_host(raw) {
                Ok(parsed) => VhostKey::Host(parsed.pattern),
                Err(message) => {
                    report.error(format!("spec.rules[{i}].host"), message);
                    continue;
                }
            },
        };
        let vhost = builders.table.existing_vhost(&key);
        let paths = rule_spec.http.as_ref().map_or(&[][..], |http| &http.paths[..]);
        for (j, path) in paths.iter().enumerate() {
            let field = || format!("spec.rules[{i}].http.paths[{j}]");
            let matcher = match parse_path(path.path.as_deref(), path.path_type.as_deref(), use_regex) {
                Ok(matcher) => matcher,
                Err(err) => {
                    report.error(format!("{}.{}", field(), err.field), err.message);
                    continue;
                }
            };
            let reference = match service_ref(&path.backend) {
                Ok(reference) => reference,
                Err(err) => {
                    report_backend(err, &format!("{}.backend", field()), report);
                    continue;
                }
            };
            let owner = |matcher: &PathMatch| {
                vhost
                    .and_then(|vhost| builders.table.owner(vhost, matcher))
                    .filter(|route| builders.table.forward_backend(*route).is_some())
            };
            // use-regex applies to the whole host in ingress-nginx: an ImplementationSpecific
            // path of a canary without it joins a primary's regex path of the same text.
            let primary = owner(&matcher).or_else(|| {
                let implementation_specific = path.path_type.as_deref() == Some("ImplementationSpecific");
                (implementation_specific && !use_regex)
                    .then(|| parse_path(path.path.as_deref(), path.path_type.as_deref(), true).ok())
                    .flatten()
                    .and_then(|regex| owner(&regex))
            });
            let Some(primary) = primary else {
                report.warning(
                    format!("{}.path", field()),
                    format!(
                        "no primary Ingress routes {} path {:?} on {}: this canary path is not served",
                        matcher.kind(),
                        path.path.as_deref().unwrap_or("/"),
                        host_phrase(&key_name(&key)),
                    ),
                );
                continue;
            };
            if let Some(older) = builders.table.canary_of(primary) {
                report.warning(
                    format!("{}.path", field()),
                    format!(
                        "{} already has the canary {older} (the older canary wins); this canary path is not served",
                        builders.table.route_name(primary),
                    ),
                );
                continue;
            }
            // The primary's protocol: ingress-nginx speaks to a canary as to its primary.
            let protocol = builders
                .table
                .forward_backend(primary)
                .and_then(|backend| builders.backends.protocol(backend))
                .filter(|protocol| *protocol != UpstreamProtocol::Http1);
            // And its TLS policy (ingress-nginx's proxy-ssl-* are the location's).
            let tls = builders
                .table
                .forward_backend(primary)
                .and_then(|backend| builders.backends.tls(backend));
            let backend = resolve(
                namespace,
                reference,
                (protocol, tls),
                || format!("{}.backend", field()),
                builders,
                report,
            );
            let name = std::sync::Arc::from(format!("{route_prefix}/rules[{i}]/paths[{j}]"));
            builders
                .table
                .set_canary(primary, Canary::new(name, backend, rule.clone()));
            joined += 1;
        }
    }
    joined
}

fn key_name(key: &VhostKey) -> String {
    match key {
        VhostKey::Host(host) => host.display(),
        VhostKey::CatchAll => "*".to_string(),
    }
}

/// The controller name of ingress-nginx: installed with `--controller-name k8s.io/ingress-nginx`,
/// Vestibule takes that project's IngressClasses over in place.
pub(crate) const INGRESS_NGINX_CONTROLLER: &str = "k8s.io/ingress-nginx";

/// Whether an Ingress was written for ingress-nginx, so that project's defaults apply to it (the
/// HTTPS redirect): it carries an annotation under either of its prefixes, or it is served
/// through an IngressClass named `nginx`, or Vestibule runs as `k8s.io/ingress-nginx`. Other
/// Ingresses get what the Ingress API says, which is silent on redirects: plain HTTP is served.
pub(crate) fn written_for_ingress_nginx(
    ingress: &Ingress,
    decision: &ClassDecision,
    options: &TranslateOptions,
) -> bool {
    options.controller_name == INGRESS_NGINX_CONTROLLER
        || matches!(decision, ClassDecision::Ours(Some(class)) if class == "nginx")
        || ingress
            .metadata
            .annotations
            .keys()
            .any(|key| key.starts_with(annotations::NGINX_PREFIX) || key.starts_with(annotations::GENERIC_PREFIX))
}

/// When plain HTTP requests to the Ingress's routes are redirected to HTTPS, as ingress-nginx
/// decides it: `force-ssl-redirect: "true"` always; otherwise when the host has TLS, unless
/// `ssl-redirect: "false"` (either annotation prefix). An Ingress not written for ingress-nginx
/// (`nginx` false) has no annotation to read and is never redirected.
pub(crate) fn https_redirect(ingress: &Ingress, nginx: bool, report: &mut Reporter<'_>) -> HttpsRedirect {
    if !nginx {
        return HttpsRedirect::Never;
    }
    let annotations = &ingress.metadata.annotations;
    let force = annotations::boolean(annotations, "force-ssl-redirect", false, report);
    let with_tls = annotations::boolean(annotations, "ssl-redirect", true, report);
    if force {
        HttpsRedirect::Always
    } else if with_tls {
        HttpsRedirect::WithTls
    } else {
        HttpsRedirect::Never
    }
}

/// `spec.defaultBackend` becomes the fallback of every host this Ingress defines and of the
/// catch-all, where no older Ingress set one.
fn add_default_backend<'s>(
    namespace: &'s str,
    backend: &'s crate::config::IngressBackend,
    route_prefix: &str,
    (policy, tls): (&RoutePolicy, Option<Arc<BackendTls>>),
    mut vhosts: Vec<usize>,
    builders: &mut Builders<'s>,
    report: &mut Reporter<'_>,
) {
    let field = "spec.defaultBackend";
    let reference = match service_ref(backend) {
        Ok(reference) => reference,
        Err(err) => {
            report_backend(err, field, report);
            return;
        }
    };
    let key = reference.key(namespace);
    vhosts.push(builders.table.vhost(VhostKey::CatchAll));
    vhosts.sort_unstable();
    vhosts.dedup();
    let mut route = None;
    for vhost in vhosts {
        if let Some(existing) = builders.table.fallback(vhost) {
            if existing.backend != key {
                let winner = builders.table.route_name(existing.route);
                report.warning(
                    field,
                    format!(
                        "{} already falls back to {winner} (backend {}; {}); defaultBackend {key} is not used there",
                        host_phrase(builders.table.vhost_name(vhost)),
                        existing.backend,
                        winner_reason(winner, route_prefix),
                    ),
                );
            }
            continue;
        }
        let id = match route {
            Some(id) => id,
            None => {
                let backend = resolve(
                    namespace,
                    reference,
                    (policy.protocol, tls.clone()),
                    || field.to_string(),
                    builders,
                    report,
                );
                let id =
                    builders
                        .table
                        .add_route(format!("{route_prefix}/defaultBackend"), backend, policy, None, None);
                route = Some(id);
                id
            }
        };
        builders.table.set_fallback(
            vhost,
            Fallback {
                route: id,
                backend: key.clone(),
            },
        );
    }
}

/// Reports an unusable backend reference at `field`.
fn report_backend(err: RefError, field: &str, report: &mut Reporter<'_>) {
    let join = |sub: &str| {
        if sub.is_empty() {
            field.to_string()
        } else {
            format!("{field}.{sub}")
        }
    };
    match err {
        RefError::Unsupported { field: sub, message } => report.warning(join(sub), message),
        RefError::Invalid { field: sub, message } => report.error(join(sub), message),
    }
}

/// The Ingress's backend TLS policy, for backends spoken to over TLS.
fn tls_of(protocol: Option<UpstreamProtocol>, access: &Access) -> Option<Arc<BackendTls>> {
    matches!(protocol, Some(UpstreamProtocol::Https | UpstreamProtocol::H2Tls))
        .then(|| access.backend_tls.clone())
        .flatten()
}

/// Resolves a backend, warning at `field` when its Service or port is missing.
fn resolve<'s>(
    namespace: &'s str,
    reference: ServiceRef<'s>,
    (protocol, tls): (Option<UpstreamProtocol>, Option<Arc<BackendTls>>),
    field: impl FnOnce() -> String,
    builders: &mut Builders<'s>,
    report: &mut Reporter<'_>,
) -> usize {
    let (backend, unresolved) = builders.backends.resolve_with(namespace, reference, protocol, tls);
    if let Some(problem) = unresolved {
        report.warning(format!("{}.{}", field(), problem.field), problem.message);
    }
    backend
}

/// Why `winner` (a route name) won over the Ingress whose routes start with `route_prefix`.
fn winner_reason(winner: &str, route_prefix: &str) -> &'static str {
    if winner.starts_with(&format!("{route_prefix}/")) {
        "an earlier entry of this Ingress"
    } else {
        "the older Ingress wins: creationTimestamp, then namespace/name"
    }
}

fn host_phrase(vhost: &str) -> String {
    if vhost == "*" {
        "the catch-all host (requests matching no rule host)".to_string()
    } else {
        format!("host {vhost:?}")
    }
}
