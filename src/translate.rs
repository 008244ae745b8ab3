//! `translate(snapshot) -> Translation`: pure and deterministic. Kubernetes objects in, the
//! route table, the status of every object we own, and the issues found, out.
//!
//! No I/O, no clock, no randomness, no tokio: the same snapshot gives byte-identical output.
//! Invalid objects (or the invalid parts of them) are skipped one by one and reported; they
//! never remove other objects' routes.
//!
//! Issues: an **error** means the object version is defective (the API server would reject it,
//! or it names something that cannot work, such as a missing TLS Secret); the controller then
//! keeps serving the object's last good version. A **warning** means it is served with a caveat:
//! a dependency not there yet (Service, port), a conflict lost to an older Ingress, an
//! unsupported feature. Either way the valid parts of the object are served — except for the
//! Ingresses kept out whole, with the reason reported: a canary without a primary (canaries
//! join their primary's routes, after every primary is added), a class that does not exist
//! (warnings), and access control that is not honoured (an error, and `withheld`: the controller
//! serves no version of it; see `annotations.rs`).
//!
//! Ingress semantics (what `ImplementationSpecific` means here, precedence, conflicts) are
//! documented in ARCHITECTURE.md and on the functions of `translate/ingress.rs`.

pub mod acme;
mod affinity;
pub mod annotation_report;
pub mod annotations;
mod auth;
mod backend_tls;
mod backends;
mod classes;
mod client_cert;
mod cors;
mod custom_headers;
mod extra_hosts;
mod gateway;
mod hosts;
mod ingress;
pub mod lb;
mod limits;
pub mod migration;
mod mirror;
mod paths;
mod redirect;
mod retry;
mod status;
mod table;
pub mod tcp_ports;
pub mod tenancy;
#[cfg(test)]
mod test_support;
mod tls;

use std::collections::BTreeSet;
use std::sync::Arc;

use serde::Serialize;

use crate::config::{Ingress, Issue, Kind, Object, ObjectKey, Origin, Snapshot, StoredObject};
use crate::routes::{CanaryRule, RouteAuth, RouteTable, SourceRanges};

use self::acme::AcmeName;
use self::backends::Backends;
use self::classes::{ClassDecision, OurClasses};
use self::ingress::Builders;
use self::lb::{LbAddresses, LbOptions};
use self::table::TableBuilder;
use self::tcp_ports::TcpClaim;
use self::tenancy::{DomainClaim, HostGate, HostOwners, TenancyOptions, Verifications};
use self::tls::TlsBuilder;

/// The IngressClass `spec.controller` value Vestibule serves.
pub const INGRESS_CONTROLLER: &str = "vestibule.dev/ingress-controller";

pub use self::gateway::GATEWAY_CONTROLLER;

#[derive(Debug, Clone)]
pub struct TranslateOptions {
    /// `--publish-address`: the IP or hostname written to served Ingresses'
    /// `status.loadBalancer.ingress`.
    pub publish_address: Option<String>,
    /// The `--https` listener's port, named in HTTPS redirects unless it is 443 (`None`: 443).
    pub https_port: Option<u16>,
    /// Validate every Ingress, ours or not (`vestibule check`): the Ingresses of other classes
    /// are reported on too, and never served.
    pub validate_all_classes: bool,
    /// `--controller-name`: the IngressClass `spec.controller` served.
    pub controller_name: String,
    /// `--ingress-class` (repeatable): serve only these of our IngressClasses. Empty: all.
    pub ingress_classes: Vec<String>,
    /// Follow `type: ExternalName` Services (always from manifests; in Kubernetes mode only
    /// with `--allow-external-name`, since any namespace can create one).
    pub follow_external_names: bool,
    /// `--publish-service NS/NAME`: the Service whose addresses (its load balancer's, read from
    /// the snapshot) are written instead of `publish_address`.
    pub publish_service: Option<ServiceRef>,
    /// Forward-auth URLs (`auth-url`) may name loopback, link-local or unspecified addresses:
    /// from manifests (the operator wrote them), not in Kubernetes mode (any namespace writes
    /// Ingresses, and such an address reaches the proxy's own pod, its admin server included).
    pub allow_local_auth_urls: bool,
    /// `mirror-target` URLs may name loopback, link-local or unspecified literal addresses
    /// (`--allow-local-external-name`, which lets their names resolve to such addresses too).
    pub allow_local_mirror_targets: bool,
    /// Tenants and their hosts (`--tenancy namespace`, Docker tenants; see `tenancy.rs`).
    pub tenancy: TenancyOptions,
    /// `--acme-directory` is set: hosts of `spec.tls` entries without a `secretName` get
    /// certificates from the ACME task (see `acme.rs`).
    pub acme: bool,
    /// `--lb`: LoadBalancer Services of ours get addresses from address pools (see `lb.rs`).
    pub lb: Option<LbOptions>,
    /// `--allowed-response-headers`: the header names ingress-nginx's `custom-headers` may set
    /// (its `global-allowed-response-headers`); empty: none.
    pub allowed_response_headers: Vec<String>,
}

impl Default for TranslateOptions {
    fn default() -> Self {
        TranslateOptions {
            publish_address: None,
            https_port: None,
            validate_all_classes: false,
            controller_name: INGRESS_CONTROLLER.to_string(),
            ingress_classes: Vec::new(),
            follow_external_names: true,
            publish_service: None,
            allow_local_auth_urls: true,
            allow_local_mirror_targets: false,
            tenancy: TenancyOptions::default(),
            acme: false,
            lb: None,
            allowed_response_headers: Vec::new(),
        }
    }
}

/// A Service named `namespace/name` (`--publish-service`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceRef {
    pub namespace: String,
    pub name: String,
}

impl std::fmt::Display for ServiceRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

impl std::str::FromStr for ServiceRef {
    type Err = String;

    /// `NAMESPACE/NAME`, both non-empty.
    fn from_str(value: &str) -> Result<Self, String> {
        match value.split_once('/') {
            Some((namespace, name)) if !namespace.is_empty() && !name.is_empty() && !name.contains('/') => {
                Ok(ServiceRef {
                    namespace: namespace.to_string(),
                    name: name.to_string(),
                })
            }
            _ => Err(format!("{value:?} is not NAMESPACE/NAME")),
        }
    }
}

/// The result of one translation.
#[derive(Debug, Default)]
pub struct Translation {
    pub table: RouteTable,
    /// Status of each object we own, sorted by kind, namespace, name.
    pub statuses: Vec<ObjectStatus>,
    /// Problems in the objects, sorted. Does not repeat the snapshot's own (load) issues.
    pub issues: Vec<Issue>,
    /// What became of each Ingress (served or not, and why), sorted by namespace and name.
    pub ingresses: Vec<IngressVerdict>,
    /// Ingresses not served on purpose, whatever their last good version was: they carry
    /// access control that is not honoured (fail closed). The controller must not substitute
    /// an older version for them.
    pub withheld: BTreeSet<ObjectKey>,
    /// The custom domains tenants claim, for the domain verifier, sorted.
    pub domain_claims: Vec<DomainClaim>,
    /// The Service ports asking for a public TCP port, for the allocator, sorted.
    pub tcp_claims: Vec<TcpClaim>,
    /// The hosts that ask for an ACME certificate, for the ACME task, sorted.
    pub acme_names: Vec<AcmeName>,
    /// With `--lb`: the addresses of each LoadBalancer Service of ours, and the Services whose
    /// status holds addresses though they are no longer LoadBalancers; sorted.
    pub lb_addresses: Vec<LbAddresses>,
}

/// Whether one Ingress is served, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IngressVerdict {
    pub namespace: String,
    pub name: String,
    pub served: bool,
    pub reason: String,
}

/// One entry of `/api/status`: the status the controller would write to the Kubernetes API.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectStatus {
    pub api_version: String,
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub status: serde_json::Value,
}

/// An Ingress to serve: its object, key, who may use its routes, and whether it was written for
/// ingress-nginx (whose defaults then apply).
type ServedIngress<'s> = (&'s StoredObject, &'s Ingress, ObjectKey, Access, bool);

/// The table a translation of `snapshot` would give when `snapshot` differs from the one
/// `table` was translated from only in the EndpointSlices and Endpoints of `services`
/// (namespace, name): `table` with those Services' backends resolved again, everything else
/// copied. `None` when the change is more than new endpoint lists (an issue about an
/// EndpointSlice, a backend going from no endpoints to some or back): then [`translate`].
/// The statuses and issues of the earlier translation stay those of `snapshot`.
pub fn refresh_endpoints(
    snapshot: &Snapshot,
    options: &TranslateOptions,
    table: &RouteTable,
    services: &BTreeSet<(String, String)>,
) -> Option<RouteTable> {
    let backends = backends::refresh_endpoints(snapshot, options.follow_external_names, &table.backends, services)?;
    // Everything but the backends is shared with `table`, not copied.
    Some(RouteTable {
        backends,
        ..table.clone()
    })
}

/// Translates a snapshot. See the module documentation.
pub fn translate(snapshot: &Snapshot, options: &TranslateOptions) -> Translation {
    let classes = OurClasses::from_snapshot(snapshot, options);
    let mut issues = Vec::new();
    let mut verdicts = Vec::new();
    let mut withheld = BTreeSet::new();
    let mut served: Vec<ServedIngress<'_>> = Vec::new();
    let mut unserved: Vec<(&StoredObject, &Ingress, ObjectKey)> = Vec::new();
    // Canary Ingresses of ours, with their rule and the index of their verdict.
    let mut canaries: Vec<(&StoredObject, &Ingress, ObjectKey, CanaryRule, usize)> = Vec::new();
    for stored in snapshot.of_kind(Kind::Ingress) {
        let Object::Ingress(ingress) = &stored.object else {
            continue;
        };
        let key = stored.key();
        let decision = classes.decide(ingress);
        let mut verdict = IngressVerdict {
            namespace: key.namespace.clone(),
            name: key.name.clone(),
            served: false,
            reason: decision.reason(),
        };
        let ours = matches!(decision, ClassDecision::Ours(_));
        if ours || options.validate_all_classes {
            let mut report = Reporter {
                key: &key,
                origin: &stored.origin,
                issues: &mut issues,
            };
            match admit(ingress, &decision, snapshot, options, &mut verdict, &mut report) {
                Admission::Serve(access) => {
                    let nginx = ingress::written_for_ingress_nginx(ingress, &decision, options);
                    served.push((stored, ingress, key, access, nginx))
                }
                Admission::Validate => unserved.push((stored, ingress, key)),
                Admission::Canary(rule) => canaries.push((stored, ingress, key, rule, verdicts.len())),
                Admission::Withhold if ours => {
                    withheld.insert(key);
                }
                Admission::Withhold | Admission::Skip => {}
            }
        } else if let ClassDecision::Missing { class, field } = &decision {
            issues.push(Issue::warning(
                Some(key.clone()),
                Some(stored.origin.clone()),
                *field,
                missing_class_message(class),
            ));
        }
        verdicts.push(verdict);
    }
    // Oldest first: conflicts go to the first to claim. Objects without a creation timestamp
    // (manifests) count as newer than any with one; ties go by namespace and name.
    served.sort_by(|(_, a, a_key, _, _), (_, b, b_key, _, _)| {
        let a_time = a.metadata.creation_timestamp.as_deref();
        let b_time = b.metadata.creation_timestamp.as_deref();
        (a_time.is_none(), a_time, a_key).cmp(&(b_time.is_none(), b_time, b_key))
    });

    let ingresses = snapshot.of_kind(Kind::Ingress).count();
    if classes.is_empty() && ingresses > 0 {
        // Not about any one object: a new user's manifests often lack the class.
        issues.push(Issue::warning(
            None,
            None,
            "",
            format!(
                "no IngressClass has spec.controller {:?}{}, so none of the {ingresses} Ingress(es) is served; \
                 add one (annotated ingressclass.kubernetes.io/is-default-class: \"true\" to serve Ingresses without a class)",
                options.controller_name,
                if options.ingress_classes.is_empty() {
                    String::new()
                } else {
                    format!(" and a name given by --ingress-class ({})", options.ingress_classes.join(", "))
                },
            ),
        ));
    }
    // Before the builders: they borrow from it.
    let grpc_routes = gateway::GrpcRoutes::new(snapshot);
    let mut builders = Builders {
        table: TableBuilder::default(),
        backends: Backends::new(snapshot, options.follow_external_names)
            .allowing_local_addresses(options.allow_local_mirror_targets),
        tls: TlsBuilder::new(snapshot).with_acme(options.acme),
        extra: Default::default(),
        snapshot,
        allowed_response_headers: &options.allowed_response_headers,
    };
    let verifications = Verifications::from_snapshot(snapshot);
    let mut owners = HostOwners::default();
    for (stored, ingress, key, access, nginx) in &served {
        let namespace = ingress.metadata.namespace.as_deref().unwrap_or("default");
        let mut report = Reporter {
            key,
            origin: &stored.origin,
            issues: &mut issues,
        };
        let gate = if options.tenancy.applies(ingress) {
            let mut gate = owners.gate(namespace, ingress, &options.tenancy, &verifications, &mut report);
            // server-alias and from-to-www-redirect names are claims like rule hosts.
            let hosts: Vec<_> = ingress
                .spec
                .rules
                .iter()
                .enumerate()
                .filter(|(i, _)| !gate.skipped_rules.contains(i))
                .filter_map(|(_, rule)| hosts::parse_host(rule.host.as_deref()?).ok())
                .map(|parsed| parsed.pattern)
                .collect();
            let extra = extra_hosts::extra_names(&ingress.metadata.annotations, &hosts);
            owners.gate_extra_hosts(
                namespace,
                &extra,
                &options.tenancy,
                &verifications,
                &mut gate,
                &mut report,
            );
            gate
        } else {
            HostGate::default()
        };
        ingress::add_ingress(
            namespace,
            ingress,
            access.clone(),
            *nginx,
            &gate,
            &mut builders,
            &mut report,
        );
    }
    // Canaries after every primary, oldest first: they never claim a route, they join one.
    canaries.sort_by(|(_, a, a_key, _, _), (_, b, b_key, _, _)| {
        let a_time = a.metadata.creation_timestamp.as_deref();
        let b_time = b.metadata.creation_timestamp.as_deref();
        (a_time.is_none(), a_time, a_key).cmp(&(b_time.is_none(), b_time, b_key))
    });
    let mut served_canaries = Vec::new();
    for (stored, ingress, key, rule, verdict) in &canaries {
        let namespace = ingress.metadata.namespace.as_deref().unwrap_or("default");
        let mut report = Reporter {
            key,
            origin: &stored.origin,
            issues: &mut issues,
        };
        let admitted = owners.canary_admitted(namespace, options.tenancy.applies(ingress), ingress, &mut report);
        let joined = if admitted {
            ingress::add_canary(namespace, ingress, rule, &mut builders, &mut report)
        } else {
            0
        };
        if let Some(verdict) = verdicts.get_mut(*verdict) {
            if joined > 0 {
                verdict.served = true;
                verdict.reason = format!("a canary: its backend joins {joined} route(s) of the primary Ingress");
                served_canaries.push(key.clone());
            } else {
                verdict.reason = CANARY_REASON.to_string();
                report.warning(
                    "metadata.annotations",
                    "the canary is not served: none of its paths joins a primary Ingress's route (see its paths' warnings)",
                );
            }
        }
    }
    // server-alias and from-to-www-redirect names, now that every rule host is known.
    let extra = std::mem::take(&mut builders.extra);
    extra.resolve(&mut builders.table, &mut builders.tls, &mut issues);
    // Ingresses of other classes (`check` only): their rules are validated in a scratch table
    // of their own, so they never take anything from the served ones.
    for (stored, ingress, key) in &unserved {
        let namespace = ingress.metadata.namespace.as_deref().unwrap_or("default");
        let mut scratch = Builders {
            table: TableBuilder::default(),
            backends: Backends::new(snapshot, options.follow_external_names)
                .allowing_local_addresses(options.allow_local_mirror_targets),
            tls: TlsBuilder::new(snapshot),
            extra: Default::default(),
            snapshot,
            allowed_response_headers: &options.allowed_response_headers,
        };
        let mut report = Reporter {
            key,
            origin: &stored.origin,
            issues: &mut issues,
        };
        let gate = HostGate::default();
        ingress::add_ingress(
            namespace,
            ingress,
            Access::default(),
            false,
            &gate,
            &mut scratch,
            &mut report,
        );
    }

    let published = match &options.publish_service {
        Some(service) => Some(status::publish_service_addresses(snapshot, service, &mut issues).join(",")),
        None => options.publish_address.clone(),
    };
    let mut statuses = status::statuses(
        served.iter().map(|(_, _, key, _, _)| key).chain(served_canaries.iter()),
        published.as_deref(),
    );
    let Builders {
        mut table,
        mut backends,
        mut tls,
        ..
    } = builders;
    statuses.extend(gateway::add_gateway_api(
        snapshot,
        &grpc_routes,
        options,
        &mut table,
        &mut backends,
        &mut tls,
        &mut issues,
    ));
    statuses.sort_by(|a, b| (&a.kind, &a.namespace, &a.name).cmp(&(&b.kind, &b.namespace, &b.name)));
    let tcp_claims = tcp_ports::claims(snapshot, &mut issues);
    let lb_addresses = match &options.lb {
        Some(lb) => lb::allocate(snapshot, lb, &mut issues),
        None => Vec::new(),
    };
    let (backends, backend_issues) = backends.finish();
    let acme_names = tls.acme_names();
    let (certificates, tls_issues) = tls.finish();
    issues.extend(backend_issues);
    issues.extend(tls_issues);
    issues.sort();
    issues.dedup();
    verdicts.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    let mut table = table.build(backends, certificates, options.https_port);
    table.acme_challenges = Arc::new(acme::challenges(snapshot));
    Translation {
        table,
        statuses,
        issues,
        ingresses: verdicts,
        withheld,
        domain_claims: owners.claims.into_iter().collect(),
        tcp_claims,
        acme_names,
        lb_addresses,
    }
}

/// Who may use an Ingress's routes, from its access-control annotations.
#[derive(Debug, Clone, Default)]
pub(crate) struct Access {
    /// Client address ranges (`None`: all).
    pub(crate) source_ranges: Option<Arc<SourceRanges>>,
    /// Basic and/or forward authentication (`None`: none).
    pub(crate) auth: Option<Arc<RouteAuth>>,
    /// Client certificates, for every host of the Ingress (`None`: none).
    pub(crate) client_auth: Option<Arc<crate::routes::ClientAuth>>,
    /// How its TLS backends are verified (`proxy-ssl-*`; `None`: not, as ingress-nginx's
    /// default).
    pub(crate) backend_tls: Option<Arc<crate::routes::backend_tls::BackendTls>>,
}

/// What becomes of one Ingress that is ours, or that `check` validates.
enum Admission {
    /// Ours and served, with its [`Access`].
    Serve(Access),
    /// Not ours (`check`): its rules are validated, never served.
    Validate,
    /// Not served in any version (fail closed): access control that is not honoured.
    Withhold,
    /// Not served, nothing more to check (a canary whose rule does not parse).
    Skip,
    /// A canary of ours: served where it joins a primary's routes.
    Canary(CanaryRule),
}

/// Reports the Ingress's class problem and annotations, and decides its [`Admission`];
/// `verdict.reason` says why it is not served when it is not.
fn admit(
    ingress: &Ingress,
    decision: &ClassDecision,
    snapshot: &Snapshot,
    options: &TranslateOptions,
    verdict: &mut IngressVerdict,
    report: &mut Reporter<'_>,
) -> Admission {
    let ours = matches!(decision, ClassDecision::Ours(_));
    if let ClassDecision::Missing { class, field } = decision {
        report.warning(*field, missing_class_message(class));
    }
    let access = match annotation_admission(ingress, snapshot, options, report) {
        AnnotationAdmission::Serve(access) => access,
        AnnotationAdmission::Withhold(why) => {
            verdict.reason = withheld_reason(ours, &verdict.reason, why);
            return Admission::Withhold;
        }
        AnnotationAdmission::Canary(Ok(rule)) if ours => return Admission::Canary(rule),
        AnnotationAdmission::Canary(Ok(_)) => return Admission::Validate,
        AnnotationAdmission::Canary(Err(())) => {
            verdict.reason = withheld_reason(ours, &verdict.reason, CANARY_INVALID_REASON);
            return Admission::Skip;
        }
    };
    if !ours {
        return Admission::Validate;
    }
    verdict.served = true;
    Admission::Serve(access)
}

/// Why a canary Ingress is not served when nothing of it joined a primary.
pub(crate) const CANARY_REASON: &str = "a canary none of whose paths joins a primary Ingress's route";
/// Why a canary Ingress is not served when its rule does not parse.
pub(crate) const CANARY_INVALID_REASON: &str = "a canary whose canary-* annotations do not parse";

/// What the ingress-nginx annotations of an Ingress decide about serving it, whatever its class.
pub(crate) enum AnnotationAdmission {
    /// Served, its routes admitting only the clients its [`Access`] lets in.
    Serve(Access),
    /// Not served in any version (fail closed), and why.
    Withhold(&'static str),
    /// A canary (`canary: "true"`), and its rule (`Err`: a value does not parse, reported).
    Canary(Result<CanaryRule, ()>),
}

/// Reports every ingress-nginx annotation of an Ingress (see [`annotations::report`]) and
/// decides whether they let it be served, and with what [`Access`] (source ranges, basic and
/// forward auth, their Secrets read from `snapshot`). The one place that decides it:
/// `translate` and `vestibule migrate` both ask here.
pub(crate) fn annotation_admission(
    ingress: &Ingress,
    snapshot: &Snapshot,
    options: &TranslateOptions,
    report: &mut Reporter<'_>,
) -> AnnotationAdmission {
    let annotations = &ingress.metadata.annotations;
    let verdict = annotations::report(annotations, report);
    let source_ranges = annotations::source_ranges(annotations, report);
    if !verdict.unhonoured_access.is_empty() {
        return AnnotationAdmission::Withhold("its access control is not supported (fail closed)");
    }
    let Ok(source_ranges) = source_ranges else {
        report.error(
            "metadata.annotations",
            "the Ingress is not served: its source range does not parse, and serving it would admit every client",
        );
        return AnnotationAdmission::Withhold("its source range does not parse (fail closed)");
    };
    let namespace = ingress.metadata.namespace.as_deref().unwrap_or("default");
    let Ok(backend_tls) =
        backend_tls::ingress_backend_tls(namespace, &ingress.metadata.name, annotations, snapshot, report)
    else {
        return AnnotationAdmission::Withhold("its backends' certificates cannot be verified as asked (fail closed)");
    };
    let Ok(auth) = auth::route_auth(namespace, annotations, snapshot, options.allow_local_auth_urls, report) else {
        report.error(
            "metadata.annotations",
            "the Ingress is not served: its authentication cannot be set up as written, and serving it would admit \
             every client",
        );
        return AnnotationAdmission::Withhold("its authentication cannot be set up (fail closed)");
    };
    let Ok(client_auth) = client_cert::client_auth(namespace, &ingress.metadata.name, annotations, snapshot, report)
    else {
        report.error(
            "metadata.annotations",
            "the Ingress is not served: its client-certificate authentication (auth-tls-*) cannot be set up as \
             written, and serving it would admit every client",
        );
        return AnnotationAdmission::Withhold("its client-certificate authentication cannot be set up (fail closed)");
    };
    if verdict.canary.is_some() {
        return AnnotationAdmission::Canary(annotations::canary_rule(annotations, report));
    }
    AnnotationAdmission::Serve(Access {
        source_ranges,
        auth,
        client_auth,
        backend_tls,
    })
}

fn missing_class_message(class: &str) -> String {
    format!("IngressClass {class:?} does not exist: the Ingress is not served")
}

/// Why an Ingress is not served when its annotations keep it out: only that for one of ours,
/// after the class reason for another's (`check`).
fn withheld_reason(ours: bool, class_reason: &str, why: &str) -> String {
    if ours {
        why.to_string()
    } else {
        format!("{class_reason}; and {why}")
    }
}

/// Issues about one object, naming it and its origin.
pub(crate) struct Reporter<'a> {
    key: &'a ObjectKey,
    origin: &'a Origin,
    issues: &'a mut Vec<Issue>,
}

impl Reporter<'_> {
    pub(crate) fn error(&mut self, field: impl Into<String>, message: impl Into<String>) {
        let issue = Issue::error(Some(self.key.clone()), Some(self.origin.clone()), field, message);
        self.issues.push(issue);
    }

    pub(crate) fn warning(&mut self, field: impl Into<String>, message: impl Into<String>) {
        let issue = Issue::warning(Some(self.key.clone()), Some(self.origin.clone()), field, message);
        self.issues.push(issue);
    }

    /// `namespace/name` of the object.
    pub(crate) fn object_name(&self) -> String {
        format!("{}/{}", self.key.namespace, self.key.name)
    }
}
