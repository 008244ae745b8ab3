//! Tenants and their hosts (`--tenancy namespace`, and always for Docker tenants): pure.
//!
//! A tenant is a namespace. Its **default domain** is `--default-domain NS=DOMAIN`, else
//! `<ns>.<--tenant-domain-suffix>`; the default domain and its subdomains are the tenant's alone.
//! Any other host is a **custom domain**, routed only once the domain verifier (`src/domains.rs`)
//! says the tenant proved it owns it; the verifier's findings arrive as a Secret of its own
//! source ([`VERIFICATION_NAMESPACE`]/[`VERIFICATION_NAME`], `Origin::DomainVerifier`), and the
//! claims it must check leave as [`DomainClaim`]s.
//!
//! A host belongs to one tenant: the first admitted claim (Ingresses arrive oldest first) wins;
//! the rules of other tenants naming it are refused with a warning naming the owner. Within one
//! tenant the usual merge rules hold. Under tenancy a rule without a host and a
//! `defaultBackend` (both would catch every host, other tenants' pending ones included) are
//! refused too. Reads no clock, no DNS: the verdicts are the verifier's.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::config::{Ingress, Kind, Object, Origin, Snapshot};

use super::Reporter;
use super::hosts::{HostPattern, parse_host};

/// The namespace of the verifier's Secret (never a tenant's: a name with a reserved prefix).
pub const VERIFICATION_NAMESPACE: &str = "vestibule-domains";
/// The name of the verifier's Secret. `stringData` keys are `TENANT/DOMAIN`; values are
/// `verified`, or `pending: REASON`.
pub const VERIFICATION_NAME: &str = "verification";

/// The tenancy settings `translate` needs (from the command line).
#[derive(Debug, Clone, Default)]
pub struct TenancyOptions {
    /// `--tenancy namespace`: every served Ingress is its namespace's (tenant's).
    pub namespaces: bool,
    /// Ingress classes whose Ingresses are always tenant-scoped (the Docker provider's).
    pub tenant_classes: Vec<String>,
    /// `--tenant-domain-suffix`: a tenant's default domain is `<tenant>.<suffix>`.
    pub domain_suffix: Option<String>,
    /// `--default-domain TENANT=DOMAIN`.
    pub default_domains: BTreeMap<String, String>,
}

impl TenancyOptions {
    /// The default domain of `tenant`, if it has one.
    pub fn default_domain(&self, tenant: &str) -> Option<String> {
        if let Some(domain) = self.default_domains.get(tenant) {
            return Some(domain.clone());
        }
        self.domain_suffix.as_ref().map(|suffix| format!("{tenant}.{suffix}"))
    }

    /// Whether this Ingress is tenant-scoped.
    pub(crate) fn applies(&self, ingress: &Ingress) -> bool {
        self.namespaces
            || ingress
                .spec
                .ingress_class_name
                .as_deref()
                .is_some_and(|class| self.tenant_classes.iter().any(|c| c == class))
    }

    /// The tenant whose default domain holds `host` (a name or a `*.` pattern), if any.
    fn default_domain_owner(&self, host: &str) -> Option<String> {
        let name = host.strip_prefix("*.").unwrap_or(host);
        for (tenant, domain) in &self.default_domains {
            if within(name, domain) {
                return Some(tenant.clone());
            }
        }
        let suffix = self.domain_suffix.as_deref()?;
        let rest = name.strip_suffix(suffix)?.strip_suffix('.')?;
        // `a.b.t1.suffix` → tenant `t1`, the label just before the suffix.
        let tenant = rest.rsplit('.').next().filter(|t| !t.is_empty())?;
        // A tenant with its own --default-domain has no `<tenant>.<suffix>` domain.
        (!self.default_domains.contains_key(tenant)).then(|| tenant.to_string())
    }
}

/// `name` is `domain` or one of its subdomains.
fn within(name: &str, domain: &str) -> bool {
    name == domain || name.strip_suffix(domain).is_some_and(|rest| rest.ends_with('.'))
}

/// A custom domain a tenant claims, for the verifier to check.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct DomainClaim {
    pub tenant: String,
    /// `shop.example` or `*.example.com`.
    pub domain: String,
    /// The tenant's default domain, which a CNAME must name (`None`: the tenant has none, so
    /// only A/AAAA records can verify it).
    pub target: Option<String>,
    /// Whether the verifier's last word was "verified".
    pub verified: bool,
}

/// The verifier's findings: (tenant, domain) → `Ok(())` verified, `Err(reason)` pending.
#[derive(Debug, Default)]
pub(crate) struct Verifications(BTreeMap<(String, String), Result<(), String>>);

impl Verifications {
    /// Reads the verifier's Secret; one from any other origin is ignored (a tenant cannot
    /// verify its own domains by writing it).
    pub(crate) fn from_snapshot(snapshot: &Snapshot) -> Self {
        let mut found = BTreeMap::new();
        let Some(stored) = snapshot.get(Kind::Secret, VERIFICATION_NAMESPACE, VERIFICATION_NAME) else {
            return Verifications(found);
        };
        let (Object::Secret(secret), Origin::DomainVerifier) = (&stored.object, &stored.origin) else {
            return Verifications(found);
        };
        for (key, value) in &secret.string_data {
            let Some((tenant, domain)) = key.split_once('/') else {
                continue;
            };
            let verdict = if value == "verified" {
                Ok(())
            } else {
                Err(value.strip_prefix("pending: ").unwrap_or(value).to_string())
            };
            found.insert((tenant.to_string(), domain.to_string()), verdict);
        }
        Verifications(found)
    }

    fn get(&self, tenant: &str, domain: &str) -> Option<&Result<(), String>> {
        self.0.get(&(tenant.to_string(), domain.to_string()))
    }

    /// Verified directly, or through the verified wildcard one label up (`*.example.com`
    /// covers `a.example.com`).
    fn verified(&self, tenant: &str, host: &str) -> bool {
        if matches!(self.get(tenant, host), Some(Ok(()))) {
            return true;
        }
        if host.starts_with("*.") {
            return false;
        }
        host.split_once('.')
            .is_some_and(|(_, parent)| matches!(self.get(tenant, &format!("*.{parent}")), Some(Ok(()))))
    }
}

/// What tenancy decided about one Ingress's rules.
#[derive(Debug, Default)]
pub(crate) struct HostGate {
    /// Indices of `spec.rules` not to serve.
    pub(crate) skipped_rules: BTreeSet<usize>,
    /// Under tenancy, the hosts its TLS entries may name (the admitted rule hosts); `None`:
    /// no tenancy, no restriction.
    pub(crate) tls_hosts: Option<BTreeSet<HostPattern>>,
    /// Under tenancy: `spec.defaultBackend` is refused.
    pub(crate) refuse_default_backend: bool,
    /// Under tenancy, the extra hosts (`server-alias`, `from-to-www-redirect`'s other name)
    /// the tenant holds; `None`: no tenancy, no restriction.
    pub(crate) extra_hosts: Option<BTreeSet<HostPattern>>,
}

/// Hosts claimed so far in one translation, and the custom-domain claims found.
#[derive(Debug, Default)]
pub(crate) struct HostOwners {
    /// host pattern → (tenant, `namespace/name` of the Ingress that claimed it first).
    owners: BTreeMap<String, (String, String)>,
    pub(crate) claims: BTreeSet<DomainClaim>,
}

impl HostOwners {
    /// Decides the rules of one tenant-scoped Ingress, reporting each refusal on its rule.
    /// Ingresses must come oldest first.
    pub(crate) fn gate(
        &mut self,
        tenant: &str,
        ingress: &Ingress,
        options: &TenancyOptions,
        verifications: &Verifications,
        report: &mut Reporter<'_>,
    ) -> HostGate {
        let own_domain = options.default_domain(tenant);
        let mut gate = HostGate {
            tls_hosts: Some(BTreeSet::new()),
            refuse_default_backend: ingress.spec.default_backend.is_some(),
            ..HostGate::default()
        };
        if gate.refuse_default_backend {
            report.warning(
                "spec.defaultBackend",
                format!(
                    "tenant {tenant}: a defaultBackend would catch every host, other tenants' included; it is not \
                     served under tenancy (give the rules hosts)"
                ),
            );
        }
        for (i, rule) in ingress.spec.rules.iter().enumerate() {
            let field = format!("spec.rules[{i}].host");
            let Some(raw) = rule.host.as_deref().filter(|h| !h.is_empty()) else {
                report.warning(
                    &field,
                    format!(
                        "tenant {tenant}: a rule without a host would catch every host, other tenants' included; it is \
                         not served under tenancy"
                    ),
                );
                gate.skipped_rules.insert(i);
                continue;
            };
            // Invalid hosts are reported by the rule walk; nothing to decide here.
            let Ok(parsed) = parse_host(raw) else {
                continue;
            };
            let host = parsed.pattern.display();
            let name = host.strip_prefix("*.").unwrap_or(&host);
            let in_own_domain = own_domain.as_deref().is_some_and(|domain| within(name, domain));
            if !in_own_domain {
                if let Some(other) = options.default_domain_owner(&host).filter(|other| other != tenant) {
                    report.warning(
                        &field,
                        format!(
                            "host {host:?} is in the default domain of tenant {other}; tenant {tenant} cannot claim it, \
                             this rule is not served"
                        ),
                    );
                    gate.skipped_rules.insert(i);
                    continue;
                }
            }
            // A host an older claim of another tenant holds: refused, whatever else it is.
            if let Some((owner, by)) = self.owners.get(&host).filter(|(owner, _)| owner != tenant) {
                report.warning(
                    &field,
                    format!(
                        "host {host:?} belongs to tenant {owner} (Ingress {by} claimed it first); tenant {tenant} \
                             cannot take it, this rule is not served"
                    ),
                );
                gate.skipped_rules.insert(i);
                continue;
            }
            if !in_own_domain {
                let verified = verifications.verified(tenant, &host);
                self.claims.insert(DomainClaim {
                    tenant: tenant.to_string(),
                    domain: host.clone(),
                    target: own_domain.clone(),
                    verified,
                });
                if !verified {
                    let why = match verifications.get(tenant, &host) {
                        Some(Err(reason)) => reason.clone(),
                        _ => "not checked yet".to_string(),
                    };
                    report.warning(
                        &field,
                        format!(
                            "custom domain {host:?} of tenant {tenant} is pending verification: {why}; it answers 404 \
                             until verified"
                        ),
                    );
                    gate.skipped_rules.insert(i);
                    continue;
                }
            }
            self.owners
                .entry(host.clone())
                .or_insert_with(|| (tenant.to_string(), report.object_name()));
            if let Some(hosts) = gate.tls_hosts.as_mut() {
                hosts.insert(parsed.pattern);
            }
        }
        // TLS entries may also name any host of the tenant's own default domain, and bind a
        // custom domain no rule names yet: it is claimed like a rule's host (verified first,
        // the oldest claim wins), so the tenant holds it before routing it.
        for (i, tls) in ingress.spec.tls.iter().enumerate() {
            for (j, raw) in tls.hosts.iter().enumerate() {
                let Ok(parsed) = parse_host(raw) else {
                    continue;
                };
                let host = parsed.pattern.display();
                let name = host.strip_prefix("*.").unwrap_or(&host);
                if own_domain.as_deref().is_some_and(|domain| within(name, domain)) {
                    if let Some(hosts) = gate.tls_hosts.as_mut() {
                        hosts.insert(parsed.pattern);
                    }
                    continue;
                }
                let named_by_rule = ingress
                    .spec
                    .rules
                    .iter()
                    .filter_map(|rule| rule.host.as_deref())
                    .any(|rule_host| parse_host(rule_host).is_ok_and(|p| p.pattern.display() == host));
                if named_by_rule {
                    continue; // decided with its rule above
                }
                self.bind_tls_only(
                    tenant,
                    &host,
                    &format!("spec.tls[{i}].hosts[{j}]"),
                    options,
                    verifications,
                    report,
                );
            }
        }
        gate
    }

    /// The extra hosts of a tenant-scoped Ingress (its `server-alias` names, the other name of
    /// its `from-to-www-redirect`), each claimed like a rule's host: in the tenant's own default
    /// domain, or a verified custom domain no other tenant holds. Those granted go into
    /// `gate.extra_hosts`; refusals are warnings at `field` of each.
    pub(crate) fn gate_extra_hosts(
        &mut self,
        tenant: &str,
        extra: &[(HostPattern, String)],
        options: &TenancyOptions,
        verifications: &Verifications,
        gate: &mut HostGate,
        report: &mut Reporter<'_>,
    ) {
        let own_domain = options.default_domain(tenant);
        let mut granted = BTreeSet::new();
        for (pattern, field) in extra {
            let host = pattern.display();
            let name = host.strip_prefix("*.").unwrap_or(&host);
            let in_own_domain = own_domain.as_deref().is_some_and(|domain| within(name, domain));
            let held = if in_own_domain {
                match self.owners.get(&host).filter(|(owner, _)| owner != tenant) {
                    Some((owner, by)) => {
                        report.warning(
                            field,
                            format!(
                                "host {host:?} belongs to tenant {owner} (Ingress {by} claimed it first); tenant {tenant} \
                                 cannot take it, it is not served"
                            ),
                        );
                        false
                    }
                    None => {
                        self.owners
                            .entry(host.clone())
                            .or_insert_with(|| (tenant.to_string(), report.object_name()));
                        true
                    }
                }
            } else {
                self.bind_tls_only(tenant, &host, field, options, verifications, report);
                self.owners.get(&host).is_some_and(|(owner, _)| owner == tenant)
                    && verifications.verified(tenant, &host)
            };
            if held {
                granted.insert(pattern.clone());
            }
        }
        gate.extra_hosts = Some(granted);
    }

    /// A custom domain listed in `spec.tls` without a rule: claimed for the tenant (listed for
    /// the verifier; once verified, owned), or refused when another tenant holds it. Nothing is
    /// routed for it until a rule names it.
    fn bind_tls_only(
        &mut self,
        tenant: &str,
        host: &str,
        field: &str,
        options: &TenancyOptions,
        verifications: &Verifications,
        report: &mut Reporter<'_>,
    ) {
        if let Some(other) = options.default_domain_owner(host).filter(|other| other != tenant) {
            report.warning(
                field,
                format!("host {host:?} is in the default domain of tenant {other}; tenant {tenant} cannot claim it"),
            );
            return;
        }
        if let Some((owner, by)) = self.owners.get(host).filter(|(owner, _)| owner != tenant) {
            report.warning(
                field,
                format!(
                    "host {host:?} belongs to tenant {owner} (Ingress {by} claimed it first); tenant {tenant} cannot \
                     take it"
                ),
            );
            return;
        }
        let verified = verifications.verified(tenant, host);
        self.claims.insert(DomainClaim {
            tenant: tenant.to_string(),
            domain: host.to_string(),
            target: options.default_domain(tenant),
            verified,
        });
        if verified {
            self.owners
                .entry(host.to_string())
                .or_insert_with(|| (tenant.to_string(), report.object_name()));
        } else {
            let why = match verifications.get(tenant, host) {
                Some(Err(reason)) => reason.clone(),
                _ => "not checked yet".to_string(),
            };
            report.warning(
                field,
                format!("custom domain {host:?} of tenant {tenant} is pending verification: {why}"),
            );
        }
    }

    /// Whether the canary Ingress `ingress` of namespace `tenant` may join routes. A canary
    /// claims nothing: it takes a share of the primary's traffic, so a host owned by a tenant
    /// is joined only by that tenant's canaries, and a tenant-scoped canary (`tenant_scoped`)
    /// joins only hosts its tenant owns (never a hostless rule). Refusals are warnings on the
    /// rule's host; a refused canary is not served at all.
    pub(crate) fn canary_admitted(
        &self,
        tenant: &str,
        tenant_scoped: bool,
        ingress: &Ingress,
        report: &mut Reporter<'_>,
    ) -> bool {
        let mut admitted = true;
        for (i, rule) in ingress.spec.rules.iter().enumerate() {
            let field = format!("spec.rules[{i}].host");
            let host = rule
                .host
                .as_deref()
                .filter(|h| !h.is_empty())
                .and_then(|raw| parse_host(raw).ok())
                .map(|parsed| parsed.pattern.display());
            let refusal = match (&host, host.as_ref().and_then(|h| self.owners.get(h))) {
                (_, Some((owner, _))) if owner == tenant => None,
                (Some(host), Some((owner, by))) => Some(format!(
                    "host {host:?} belongs to tenant {owner} (Ingress {by}); a canary of tenant {tenant} cannot join \
                     its routes, this canary is not served"
                )),
                (Some(host), None) if tenant_scoped => Some(format!(
                    "host {host:?} is not served by tenant {tenant}; a canary joins only its own tenant's routes, this \
                     canary is not served"
                )),
                (None, _) if tenant_scoped => Some(format!(
                    "tenant {tenant}: a canary rule without a host would join every host's routes, other tenants' \
                     included; this canary is not served"
                )),
                _ => None,
            };
            if let Some(message) = refusal {
                report.warning(&field, message);
                admitted = false;
            }
        }
        admitted
    }
}

#[cfg(test)]
mod tests;
