//! What moving an Ingress from ingress-nginx to Vestibule changes (`vestibule migrate`): each
//! ingress-nginx annotation as supported, supported with a difference, accepted as no-op,
//! unsupported or refused, and the Ingress-level consequences (not served, canary, rewrite
//! captures, HTTPS redirect, the older annotation prefix).
//!
//! Pure, and no second opinion: the class of an annotation is the catalogue's
//! ([`annotations::classify`]), whether an Ingress is served is
//! [`annotation_admission`](super::annotation_admission)'s, rewrites and redirects are read by
//! the functions `translate` uses. This module only compares them with what ingress-nginx does.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::config::{Ingress, Issue, Kind, Object, Snapshot};

use super::TranslateOptions;
use super::annotations::{self, Classified, GENERIC_PREFIX, NGINX_PREFIX, Support};
use super::classes::{ClassDecision, class_name};
use super::{AnnotationAdmission, CANARY_INVALID_REASON, Reporter, annotation_admission, ingress};

pub mod configmap;
pub mod to_gateway;

pub use configmap::ConfigMapAssessment;

/// ingress-nginx's IngressClass `spec.controller`.
pub const INGRESS_NGINX_CONTROLLER: &str = ingress::INGRESS_NGINX_CONTROLLER;

/// The class of one annotation when moving, as `vestibule migrate` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Category {
    /// Honoured as ingress-nginx documents it.
    Supported,
    /// Honoured, with a difference (the note says which).
    Differs,
    /// Accepted without effect; harmless.
    NoOp,
    /// Ignored (or, for access control, the Ingress is not served).
    Unsupported,
    /// Raw nginx configuration: refused, never executed.
    Refused,
}

impl Category {
    /// Every category, in the order reports list them.
    pub const ALL: [Category; 5] = [
        Category::Supported,
        Category::Differs,
        Category::NoOp,
        Category::Unsupported,
        Category::Refused,
    ];

    /// How the text report names it.
    pub fn label(self) -> &'static str {
        match self {
            Category::Supported => "supported",
            Category::Differs => "supported with a difference",
            Category::NoOp => "accepted as no-op",
            Category::Unsupported => "unsupported",
            Category::Refused => "refused (unsafe)",
        }
    }

    /// Whether an annotation of this category behaves otherwise than under ingress-nginx.
    pub fn changes_behaviour(self) -> bool {
        matches!(self, Category::Differs | Category::Unsupported | Category::Refused)
    }

    pub(crate) fn of(support: Support) -> Category {
        match support {
            Support::Honoured => Category::Supported,
            Support::Differs(_) => Category::Differs,
            Support::NoOp(_) => Category::NoOp,
            Support::Unsupported(_) => Category::Unsupported,
            Support::Refused => Category::Refused,
        }
    }
}

/// One ingress-nginx annotation of an Ingress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AnnotationFinding {
    pub key: String,
    pub value: String,
    pub category: Category,
    /// The difference, why it is a no-op, or what to use instead; empty when supported.
    pub note: String,
    /// Access control that is not honoured: the Ingress is not served because of it.
    pub fails_closed: bool,
}

/// What an Ingress-level finding is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FindingKind {
    /// Not served at all: access control that is not honoured, or a source range that does not parse.
    Withheld,
    /// A canary Ingress: served as an alternative backend on its primary's routes, or not
    /// served when its `canary-*` values do not parse.
    Canary,
    /// Plain HTTP is redirected to HTTPS where ingress-nginx did not, or the reverse.
    HttpsRedirect,
    /// An annotation value that does not parse.
    InvalidValue,
    /// An `ingress.kubernetes.io/` annotation that Vestibule honours; ingress-nginx (default
    /// `--annotations-prefix`) ignored it.
    GenericPrefix,
    /// The Ingress names no class.
    NoClass,
}

/// Something about a whole Ingress that moving changes, or that the user must know.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Finding {
    pub kind: FindingKind,
    pub changes_behaviour: bool,
    pub message: String,
}

/// One Ingress, as moving it to Vestibule would leave it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IngressAssessment {
    pub namespace: String,
    pub name: String,
    /// Where it was read (`file, document N`).
    pub origin: String,
    /// The IngressClass it names (`spec.ingressClassName`, else `kubernetes.io/ingress.class`).
    pub class: Option<String>,
    /// That class's `spec.controller` when the IngressClass is among the objects read.
    pub controller: Option<String>,
    /// Whether Vestibule would serve it once it serves its class.
    pub served: bool,
    /// Why not, when not served.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_served_reason: Option<String>,
    /// Anything here behaves otherwise than under ingress-nginx.
    pub changes_behaviour: bool,
    /// Its `nginx.ingress.kubernetes.io/*` and `ingress.kubernetes.io/*` annotations, by key.
    pub annotations: Vec<AnnotationFinding>,
    pub findings: Vec<Finding>,
}

/// An ingress-nginx IngressClass that Vestibule can serve in place.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TakeOver {
    pub class: String,
    pub controller: String,
    /// The IngressClass is among the objects read (else `controller` is ingress-nginx's, assumed
    /// from the class name `nginx`).
    pub class_found: bool,
    /// How many of the Ingresses read name it.
    pub ingresses: usize,
    /// The `vestibule run` flags that serve it.
    pub flags: Vec<String>,
}

/// Counts over the whole report.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    pub ingresses: usize,
    pub served: usize,
    pub not_served: usize,
    /// Ingresses with anything that behaves otherwise than under ingress-nginx.
    pub changes_behaviour: usize,
    /// Annotations per category, every category present.
    pub annotations: BTreeMap<Category, usize>,
}

/// The whole report of `vestibule migrate`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Assessment {
    /// Sorted by namespace and name.
    pub ingresses: Vec<IngressAssessment>,
    pub take_over: Vec<TakeOver>,
    pub summary: Summary,
    /// ingress-nginx's controller ConfigMaps found among the manifests (its global settings),
    /// each key mapped to `vestibule run` flags or classed; absent when none was read.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub config_maps: Vec<ConfigMapAssessment>,
}

impl Assessment {
    /// Whether anything would behave otherwise than under ingress-nginx (`migrate` exits 1).
    pub fn changes_behaviour(&self) -> bool {
        self.summary.changes_behaviour > 0 || self.config_maps.iter().any(|cm| cm.changes_behaviour)
    }
}

/// Assesses every Ingress of `snapshot`, whatever its class, as Vestibule would serve it under
/// its current class name with `--controller-name controller_name` (`vestibule migrate` passes
/// its own `--controller-name`: `k8s.io/ingress-nginx` when taking ingress-nginx's classes over
/// in place, else Vestibule's).
pub fn assess(snapshot: &Snapshot, controller_name: &str) -> Assessment {
    let options = TranslateOptions {
        controller_name: controller_name.to_string(),
        ..TranslateOptions::default()
    };
    let controllers: BTreeMap<&str, &str> = snapshot
        .of_kind(Kind::IngressClass)
        .filter_map(|stored| match &stored.object {
            Object::IngressClass(class) => Some((class.metadata.name.as_str(), class.spec.controller.as_str())),
            _ => None,
        })
        .collect();
    let mut ingresses = Vec::new();
    for stored in snapshot.of_kind(Kind::Ingress) {
        let Object::Ingress(ingress) = &stored.object else {
            continue;
        };
        let key = stored.key();
        let mut issues = Vec::new();
        let mut report = Reporter {
            key: &key,
            origin: &stored.origin,
            issues: &mut issues,
        };
        let class = class_name(ingress);
        let controller = class.and_then(|class| controllers.get(class)).copied();
        let context = Context {
            // Served by Vestibule under the name it has now.
            written_for_ingress_nginx: ingress::written_for_ingress_nginx(
                ingress,
                &ClassDecision::Ours(class.map(str::to_string)),
                &options,
            ),
            // An Ingress of another controller never had ingress-nginx's defaults to lose.
            had_ingress_nginx_defaults: controller.is_none_or(|controller| controller == INGRESS_NGINX_CONTROLLER),
        };
        let mut assessment = assess_ingress(ingress, context, snapshot, &options, &mut report);
        assessment.namespace = key.namespace.clone();
        assessment.name = key.name.clone();
        assessment.origin = stored.origin.to_string();
        assessment.controller = controller.map(str::to_string);
        ingresses.push(assessment);
    }
    ingresses.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    let take_over = take_over(&controllers, &ingresses);
    let mut summary = Summary {
        ingresses: ingresses.len(),
        annotations: Category::ALL.iter().map(|category| (*category, 0)).collect(),
        ..Summary::default()
    };
    for ingress in &ingresses {
        if ingress.served {
            summary.served += 1;
        } else {
            summary.not_served += 1;
        }
        summary.changes_behaviour += usize::from(ingress.changes_behaviour);
        for annotation in &ingress.annotations {
            *summary.annotations.entry(annotation.category).or_default() += 1;
        }
    }
    Assessment {
        ingresses,
        take_over,
        summary,
        config_maps: Vec::new(),
    }
}

/// What decides an Ingress's defaults, besides the Ingress itself.
#[derive(Debug, Clone, Copy)]
struct Context {
    /// Vestibule applies ingress-nginx's defaults to it (the HTTPS redirect).
    written_for_ingress_nginx: bool,
    /// Its class is ingress-nginx's, or unknown: what ingress-nginx did is what changes.
    had_ingress_nginx_defaults: bool,
}

/// One Ingress (its identity is filled in by the caller).
fn assess_ingress(
    ingress: &Ingress,
    context: Context,
    snapshot: &Snapshot,
    options: &TranslateOptions,
    report: &mut Reporter<'_>,
) -> IngressAssessment {
    let values = &ingress.metadata.annotations;
    let admission = annotation_admission(ingress, snapshot, options, report);
    // Read for their issues: a value that does not parse is an invalid-value finding.
    let _ = annotations::rewrite_target(values, report);
    let _ = annotations::app_root(values, report);
    // Read as `translate` reads them, so values that do not parse are found.
    let _ = super::cors::route_cors(values, report);
    let _ = super::limits::route_limits("", values, report);
    let _ = super::redirect::ingress_redirect(values, report);
    let _ = super::redirect::ingress_headers(values, report);
    let _ = super::extra_hosts::aliases(values, Some(&mut *report));
    let redirect = ingress::https_redirect(ingress, context.written_for_ingress_nginx, report);
    // Errors about one annotation's value: that value does not parse.
    let errors: Vec<&Issue> = report.issues.iter().filter(|issue| issue.is_error()).collect();

    let mut findings = Vec::new();
    let mut annotations_found = Vec::new();
    for (key, value) in values {
        let Some(Classified { support, fails_closed }) = annotations::classify(key) else {
            continue;
        };
        // Keys from manifest files are not validated by an API server: messages carry them
        // escaped, so a key cannot forge a line of the report.
        let shown = key.escape_debug().to_string();
        let category = Category::of(support);
        let note = support.note().to_string();
        let field = annotations::field(key);
        // The errors `annotations::report` gives access control and refused keys are about the
        // key, not its value.
        let about_value = !fails_closed && support != Support::Refused;
        let invalid: Vec<&&Issue> = errors
            .iter()
            .filter(|issue| about_value && issue.field == field)
            .collect();
        for issue in invalid {
            findings.push(Finding {
                kind: FindingKind::InvalidValue,
                changes_behaviour: true,
                message: format!("{shown}: {}", issue.message),
            });
        }
        if key.starts_with(GENERIC_PREFIX) && matches!(category, Category::Supported | Category::Differs) {
            findings.push(Finding {
                kind: FindingKind::GenericPrefix,
                changes_behaviour: true,
                message: format!(
                    "{shown} takes effect here; ingress-nginx reads only {NGINX_PREFIX} (unless started with \
                     --annotations-prefix ingress.kubernetes.io) and ignored it"
                ),
            });
        }
        annotations_found.push(AnnotationFinding {
            key: key.clone(),
            value: value.clone(),
            category,
            note,
            fails_closed,
        });
    }

    let not_served_reason = match &admission {
        AnnotationAdmission::Serve(_) => None,
        AnnotationAdmission::Withhold(why) => {
            let keys: Vec<String> = annotations_found
                .iter()
                .filter(|annotation| annotation.fails_closed)
                .map(|annotation| annotation.key.escape_debug().to_string())
                .collect();
            findings.push(Finding {
                kind: FindingKind::Withheld,
                changes_behaviour: true,
                message: if keys.is_empty() {
                    format!("not served: {why}")
                } else {
                    format!(
                        "not served: {why}: {}; ingress-nginx served it with them applied",
                        keys.join(", ")
                    )
                },
            });
            Some(why.to_string())
        }
        AnnotationAdmission::Canary(Ok(_)) => {
            findings.push(Finding {
                kind: FindingKind::Canary,
                changes_behaviour: false,
                message: "a canary: its backend joins the routes of the primary Ingress with the same host and \
                          path, chosen by header, then cookie, then weight as in ingress-nginx (not served where \
                          no primary routes the host and path)"
                    .to_string(),
            });
            None
        }
        AnnotationAdmission::Canary(Err(())) => {
            findings.push(Finding {
                kind: FindingKind::Canary,
                changes_behaviour: true,
                message: format!(
                    "not served: {CANARY_INVALID_REASON}; the primary Ingress of its hosts keeps all their traffic, \
                     where ingress-nginx sent this one a share"
                ),
            });
            Some(CANARY_INVALID_REASON.to_string())
        }
    };

    let has_tls = !ingress.spec.tls.is_empty();
    let theirs = ingress_nginx_redirects(values, has_tls);
    let ours = redirect.applies(has_tls);
    if theirs != ours && not_served_reason.is_none() && context.had_ingress_nginx_defaults {
        findings.push(Finding {
            kind: FindingKind::HttpsRedirect,
            changes_behaviour: true,
            message: if theirs {
                "plain HTTP is served here, where ingress-nginx redirected it to HTTPS (308): Vestibule applies \
                 that default only to Ingresses written for ingress-nginx (one of its annotations, a class named \
                 nginx, or --controller-name k8s.io/ingress-nginx); add nginx.ingress.kubernetes.io/ssl-redirect: \
                 \"true\" to keep the redirect"
                    .to_string()
            } else {
                "plain HTTP is redirected to HTTPS (308) here, where ingress-nginx served it; add \
                 nginx.ingress.kubernetes.io/ssl-redirect: \"false\" to keep serving it"
                    .to_string()
            },
        });
    }

    let class = class_name(ingress).map(str::to_string);
    if class.is_none() {
        findings.push(Finding {
            kind: FindingKind::NoClass,
            changes_behaviour: false,
            message: "no IngressClass named: Vestibule serves it only when the class it serves is annotated \
                      ingressclass.kubernetes.io/is-default-class: \"true\" (ingress-nginx also did with \
                      --watch-ingress-without-class)"
                .to_string(),
        });
    }
    findings.sort_by_key(|finding| finding.kind);
    let changes_behaviour = findings.iter().any(|finding| finding.changes_behaviour)
        || annotations_found
            .iter()
            .any(|annotation| annotation.category.changes_behaviour());
    IngressAssessment {
        namespace: String::new(),
        name: String::new(),
        origin: String::new(),
        class,
        controller: None,
        served: not_served_reason.is_none(),
        not_served_reason,
        changes_behaviour,
        annotations: annotations_found,
        findings,
    }
}

/// Whether ingress-nginx redirects plain HTTP to HTTPS for this Ingress's TLS hosts (or all its
/// hosts): `force-ssl-redirect: "true"` always, else with TLS unless `ssl-redirect: "false"`.
/// Either prefix is read, as Vestibule reads them; the prefix is reported on its own.
fn ingress_nginx_redirects(values: &BTreeMap<String, String>, has_tls: bool) -> bool {
    let flag = |name| annotations::value(values, name).map(|(_, value)| value);
    flag("force-ssl-redirect") == Some("true") || (has_tls && flag("ssl-redirect") != Some("false"))
}

/// The ingress-nginx classes among the objects read (by controller), and the class name `nginx`
/// when Ingresses name it and no IngressClass of that name was read.
fn take_over(controllers: &BTreeMap<&str, &str>, ingresses: &[IngressAssessment]) -> Vec<TakeOver> {
    let named: Vec<&str> = ingresses
        .iter()
        .filter_map(|ingress| ingress.class.as_deref())
        .collect();
    let mut classes: BTreeSet<(&str, &str, bool)> = controllers
        .iter()
        .filter(|(_, controller)| **controller == INGRESS_NGINX_CONTROLLER)
        .map(|(class, controller)| (*class, *controller, true))
        .collect();
    if named.contains(&"nginx") && !controllers.contains_key("nginx") {
        classes.insert(("nginx", INGRESS_NGINX_CONTROLLER, false));
    }
    classes
        .into_iter()
        .map(|(class, controller, class_found)| TakeOver {
            class: class.to_string(),
            controller: controller.to_string(),
            class_found,
            ingresses: named.iter().filter(|name| **name == class).count(),
            flags: vec![
                "--controller-name".to_string(),
                controller.to_string(),
                "--ingress-class".to_string(),
                class.to_string(),
            ],
        })
        .collect()
}

#[cfg(test)]
mod tests;
