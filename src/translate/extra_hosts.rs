//! Hosts an Ingress serves beyond its rules' hosts: ingress-nginx's `server-alias` (more names
//! of the same virtual host: every route of that host, whichever Ingress gave it) and
//! `from-to-www-redirect` (the other of `www.host` / `host` is redirected to the rule's host).
//!
//! They are collected while Ingresses are added (oldest first) and decided once every rule
//! host is known, as ingress-nginx checks them against every server: a name that some rule
//! has is never taken over by an alias or a redirect; between extras, the first (oldest
//! Ingress) wins. The certificate of the rule's host is served for the extra name when it is
//! valid for it; otherwise a warning says HTTPS there gets the default certificate. Under
//! tenancy each extra name is a claim like a rule's host (`tenancy.rs`).

use std::collections::BTreeMap;
use std::sync::Arc;

use http::StatusCode;

use crate::config::{Issue, ObjectKey, Origin};
use crate::routes::RouteRedirect;

use super::annotations::{field, value};
use super::hosts::{HostPattern, parse_host};
use super::table::{TableBuilder, VhostKey};
use super::tls::{Extension, TlsBuilder};
use super::{Reporter, redirect};

/// ingress-nginx's `http-redirect-code` default, which its www redirects answer with.
const WWW_STATUS: StatusCode = StatusCode::PERMANENT_REDIRECT;

/// An extra host waiting for every rule host to be known.
#[derive(Debug)]
struct Pending {
    /// The alias, or the name redirected from.
    name: HostPattern,
    /// The rule's host it serves or redirects to.
    host: HostPattern,
    www: bool,
    /// The annotation, as an issue's field.
    field: String,
    route_prefix: String,
    key: ObjectKey,
    origin: Origin,
}

/// The extra hosts of one translation.
#[derive(Debug, Default)]
pub(crate) struct ExtraHosts {
    pending: Vec<Pending>,
}

/// `server-alias` (either prefix): comma-separated host names, blanks and repeats dropped. A
/// name that is not a host is an error (when `report` is given) and left out.
pub(crate) fn aliases(
    annotations: &BTreeMap<String, String>,
    mut report: Option<&mut Reporter<'_>>,
) -> Vec<HostPattern> {
    let Some((key, text)) = value(annotations, "server-alias") else {
        return Vec::new();
    };
    let mut out: Vec<HostPattern> = Vec::new();
    for raw in text.split(',').map(str::trim).filter(|raw| !raw.is_empty()) {
        match parse_host(raw) {
            Ok(parsed) => {
                if !out.contains(&parsed.pattern) {
                    out.push(parsed.pattern);
                }
            }
            Err(message) => {
                if let Some(report) = report.as_deref_mut() {
                    report.error(field(key), format!("{message}: this alias is not served"));
                }
            }
        }
    }
    out
}

/// The other name of a `from-to-www-redirect` for rule host `host`: `www.` added or removed.
/// Wildcard hosts have none.
pub(crate) fn www_other(host: &HostPattern) -> Option<HostPattern> {
    let HostPattern::Exact(name) = host else {
        return None;
    };
    let other = match name.strip_prefix("www.") {
        Some(bare) => bare.to_string(),
        None => format!("www.{name}"),
    };
    parse_host(&other).ok().map(|parsed| parsed.pattern)
}

/// The extra names of an Ingress whose rules have `hosts`, each with its annotation's field:
/// what tenancy must grant before they are served. Reads quietly (`add` reports).
pub(crate) fn extra_names(annotations: &BTreeMap<String, String>, hosts: &[HostPattern]) -> Vec<(HostPattern, String)> {
    let mut out = Vec::new();
    if let Some((key, _)) = value(annotations, "server-alias") {
        out.extend(aliases(annotations, None).into_iter().map(|alias| (alias, field(key))));
    }
    if let Some((key, "true")) = value(annotations, "from-to-www-redirect") {
        out.extend(hosts.iter().filter_map(www_other).map(|other| (other, field(key))));
    }
    out
}

impl ExtraHosts {
    /// Collects the extra hosts of one served Ingress whose rules have `hosts` (valid, served
    /// ones); `granted`: under tenancy, the extra names the tenant holds.
    pub(crate) fn add(
        &mut self,
        annotations: &BTreeMap<String, String>,
        hosts: &[HostPattern],
        granted: Option<&std::collections::BTreeSet<HostPattern>>,
        route_prefix: &str,
        report: &mut Reporter<'_>,
    ) {
        let allowed = |name: &HostPattern| granted.is_none_or(|granted| granted.contains(name));
        let mut push = |name: HostPattern, host: &HostPattern, www: bool, key: &str, report: &Reporter<'_>| {
            self.pending.push(Pending {
                name,
                host: host.clone(),
                www,
                field: field(key),
                route_prefix: route_prefix.to_string(),
                key: report.key.clone(),
                origin: report.origin.clone(),
            });
        };
        if let Some((key, _)) = value(annotations, "server-alias") {
            let names = aliases(annotations, Some(&mut *report));
            match hosts.first() {
                // ingress-nginx gives the aliases to every rule host; nginx then serves each
                // name by the first server that has it: the first rule's host.
                Some(host) => {
                    for alias in names.into_iter().filter(|alias| allowed(alias)) {
                        push(alias, host, false, key, &*report);
                    }
                }
                None if !names.is_empty() => report.warning(
                    field(key),
                    "the Ingress has no rule with a host: an alias of the catch-all changes nothing; ignored",
                ),
                None => {}
            }
        }
        if redirect::from_to_www(annotations, report)
            && let Some((key, _)) = value(annotations, "from-to-www-redirect")
        {
            for host in hosts {
                match www_other(host) {
                    Some(other) if allowed(&other) => push(other, host, true, key, &*report),
                    Some(_) => {}
                    None => report.warning(
                        field(key),
                        format!(
                            "host {:?} is a wildcard: it has no www name to redirect from",
                            host.display()
                        ),
                    ),
                }
            }
        }
    }

    /// Decides every extra host: aliases first, then redirects, each in the order collected.
    pub(crate) fn resolve(self, table: &mut TableBuilder, tls: &mut TlsBuilder<'_>, issues: &mut Vec<Issue>) {
        let (aliases, redirects): (Vec<Pending>, Vec<Pending>) = self.pending.into_iter().partition(|p| !p.www);
        // Names already redirected (two Ingresses of one host may both ask).
        let mut redirected = std::collections::BTreeSet::new();
        for pending in aliases.into_iter().chain(redirects) {
            if pending.www && redirected.contains(&pending.name) {
                continue;
            }
            let mut report = Reporter {
                key: &pending.key,
                origin: &pending.origin,
                issues: &mut *issues,
            };
            let name = pending.name.display();
            let host = pending.host.display();
            let Some(target) = table.existing_vhost(&VhostKey::Host(pending.host.clone())) else {
                continue;
            };
            let what = if pending.www {
                format!("from-to-www-redirect: no redirect from {name:?} to {host:?}")
            } else {
                format!("server-alias {name:?} of host {host:?} is not served")
            };
            if table.existing_vhost(&VhostKey::Host(pending.name.clone())).is_some() {
                report.warning(
                    &pending.field,
                    format!("{what}: a rule of an Ingress has that host and keeps it (as in ingress-nginx)"),
                );
                continue;
            }
            if let Some(owner) = table.alias_of(&pending.name) {
                if owner != target || pending.www {
                    report.warning(
                        &pending.field,
                        format!(
                            "{what}: it is already an alias of host {:?} (the older Ingress wins)",
                            table.vhost_name(owner)
                        ),
                    );
                }
                continue;
            }
            if pending.www {
                redirected.insert(pending.name.clone());
                let vhost = table.vhost(VhostKey::Host(pending.name.clone()));
                let to = match &pending.host {
                    HostPattern::Exact(host) => Arc::from(host.as_str()),
                    HostPattern::Wildcard(_) => continue,
                };
                table.add_redirect_host(
                    vhost,
                    format!("{}/from-to-www/{name}", pending.route_prefix),
                    Arc::new(RouteRedirect::OtherHost {
                        host: to,
                        status: WWW_STATUS,
                    }),
                );
            } else {
                table.add_alias(pending.name.clone(), target);
            }
            if let Extension::NotCovered { secret, reason } = tls.extend_to(&pending.host, &pending.name) {
                report.warning(
                    &pending.field,
                    format!(
                        "the certificate of host {host:?} (Secret {secret}) does not cover {name:?} ({reason}): HTTPS \
                         requests to {name:?} get the default certificate; list {name:?} in a tls entry whose \
                         certificate is valid for it"
                    ),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests;
