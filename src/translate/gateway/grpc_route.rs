//! GRPCRoute as the HTTPRoute it is equivalent to: a gRPC call is an HTTP/2 `POST` to
//! `/<service>/<method>`, so each method match becomes a path match and the rest (headers,
//! filters, backends, attachment, status) is HTTPRoute's, with the route kind GRPCRoute (its
//! own name in routes and status, its backends spoken to with h2c).
//!
//! Method matches, as the spec defines them:
//! - `Exact` service and method: path `Exact /<service>/<method>`;
//! - `Exact` service only: path `PathPrefix /<service>` (every method of the service);
//! - `Exact` method only: `RegularExpression /[^/]+/<method>`;
//! - `RegularExpression`: `RegularExpression /(<service>)/(<method>)`, each `[^/]+` when absent;
//! - no method match: every call (`PathPrefix /`).
//!
//! Precedence follows HTTPRoute's (exact path, longest prefix, then most header matches, then
//! the oldest route), which orders the spec's criteria the same way for these shapes: a full
//! method before a service, a service before regular expressions.
//!
//! Checks the CRD's CEL rules on the method match (service and method characters, one of them
//! present) and the filter types a GRPCRoute may have; errors carry the GRPCRoute's own field
//! paths.

use crate::config::gateway::{GrpcRoute, HttpPathMatch, HttpRoute, HttpRouteMatch, HttpRouteRule, HttpRouteSpec};

/// One GRPCRoute converted: the equivalent HTTPRoute, and the errors found (field, message).
pub(crate) struct Converted {
    pub(crate) http: HttpRoute,
    pub(crate) errors: Vec<(String, String)>,
}

/// Filter types a GRPCRoute may have (the CRD's enumeration).
const GRPC_FILTERS: &[&str] = &[
    "RequestHeaderModifier",
    "ResponseHeaderModifier",
    "RequestMirror",
    "ExtensionRef",
];

pub(crate) fn convert(route: &GrpcRoute) -> Converted {
    let mut errors = Vec::new();
    let mut rules = Vec::new();
    for (r, rule) in route.spec.rules.iter().enumerate() {
        let mut matches = Vec::new();
        for (m, matched) in rule.matches.iter().enumerate() {
            let field = |rest: &str| format!("spec.rules[{r}].matches[{m}].method{rest}");
            let path = match &matched.method {
                None => None,
                Some(method) => match method_path(method) {
                    Ok(path) => Some(path),
                    Err((rest, message)) => {
                        errors.push((field(rest), message));
                        None
                    }
                },
            };
            matches.push(HttpRouteMatch {
                path,
                headers: matched.headers.clone(),
                query_params: Vec::new(),
                method: None,
            });
        }
        for (f, filter) in rule.filters.iter().enumerate() {
            if !GRPC_FILTERS.contains(&filter.type_.as_str()) {
                errors.push((
                    format!("spec.rules[{r}].filters[{f}].type"),
                    format!(
                        "{:?} is not a GRPCRoute filter (one of {})",
                        filter.type_,
                        GRPC_FILTERS.join(", ")
                    ),
                ));
            }
        }
        rules.push(HttpRouteRule {
            name: rule.name.clone(),
            matches,
            filters: rule.filters.clone(),
            backend_refs: rule.backend_refs.clone(),
            timeouts: None,
            session_persistence: rule.session_persistence.clone(),
            // GRPCRoute has no retry field.
            retry: None,
        });
    }
    Converted {
        http: HttpRoute {
            metadata: route.metadata.clone(),
            spec: HttpRouteSpec {
                parent_refs: route.spec.parent_refs.clone(),
                hostnames: route.spec.hostnames.clone(),
                rules,
            },
        },
        errors,
    }
}

/// The path match of a method match, or (field under `method`, message).
fn method_path(method: &crate::config::gateway::GrpcMethodMatch) -> Result<HttpPathMatch, (&'static str, String)> {
    let service = method.service.as_deref().filter(|s| !s.is_empty());
    let name = method.method.as_deref().filter(|s| !s.is_empty());
    let path = |type_: &str, value: String| HttpPathMatch {
        type_: Some(type_.to_string()),
        value: Some(value),
    };
    match method.type_.as_deref() {
        None | Some("Exact") => {
            if let Some(service) = service
                && !valid_service(service)
            {
                return Err((
                    ".service",
                    format!("service {service:?} must match ^(?i)\\.?[a-z_][a-z_0-9]*(\\.[a-z_][a-z_0-9]*)*$"),
                ));
            }
            if let Some(name) = name
                && !valid_method(name)
            {
                return Err((
                    ".method",
                    format!("method {name:?} must match ^[A-Za-z_][A-Za-z_0-9]*$"),
                ));
            }
            match (service, name) {
                (Some(service), Some(name)) => Ok(path("Exact", format!("/{service}/{name}"))),
                (Some(service), None) => Ok(path("PathPrefix", format!("/{service}"))),
                (None, Some(name)) => Ok(path("RegularExpression", format!("/[^/]+/{name}"))),
                (None, None) => Err(("", "one or both of service and method must be specified".to_string())),
            }
        }
        Some("RegularExpression") => {
            if service.is_none() && name.is_none() {
                return Err(("", "one or both of service and method must be specified".to_string()));
            }
            for (rest, pattern) in [(".service", service), (".method", name)] {
                if let Some(pattern) = pattern
                    && let Err(error) = regex::Regex::new(pattern)
                {
                    return Err((rest, format!("invalid regular expression {pattern:?}: {error}")));
                }
            }
            Ok(path(
                "RegularExpression",
                format!("/(?:{})/(?:{})", service.unwrap_or("[^/]+"), name.unwrap_or("[^/]+")),
            ))
        }
        Some(other) => Err((".type", format!("{other:?} is not one of Exact, RegularExpression"))),
    }
}

/// `^(?i)\.?[a-z_][a-z_0-9]*(\.[a-z_][a-z_0-9]*)*$`
fn valid_service(service: &str) -> bool {
    let service = service.strip_prefix('.').unwrap_or(service);
    service.split('.').all(valid_method)
}

/// `^[A-Za-z_][A-Za-z_0-9]*$`
fn valid_method(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::config::gateway::GrpcMethodMatch;

    fn method(type_: Option<&str>, service: Option<&str>, name: Option<&str>) -> GrpcMethodMatch {
        GrpcMethodMatch {
            type_: type_.map(str::to_string),
            service: service.map(str::to_string),
            method: name.map(str::to_string),
        }
    }

    fn shown(result: Result<HttpPathMatch, (&'static str, String)>) -> String {
        match result {
            Ok(path) => format!("{} {}", path.type_.unwrap(), path.value.unwrap()),
            Err((field, message)) => format!("error{field}: {message}"),
        }
    }

    #[test]
    fn method_matches_become_paths() {
        assert_eq!(
            shown(method_path(&method(None, Some("echo.Echo"), Some("Hi")))),
            "Exact /echo.Echo/Hi"
        );
        assert_eq!(
            shown(method_path(&method(Some("Exact"), Some("echo.Echo"), None))),
            "PathPrefix /echo.Echo"
        );
        assert_eq!(
            shown(method_path(&method(None, None, Some("Hi")))),
            "RegularExpression /[^/]+/Hi"
        );
        assert_eq!(
            shown(method_path(&method(Some("RegularExpression"), Some("echo\\..*"), None))),
            "RegularExpression /(?:echo\\..*)/(?:[^/]+)"
        );
        assert!(shown(method_path(&method(None, Some("bad/service"), None))).starts_with("error.service"));
        assert!(shown(method_path(&method(None, Some("e"), Some("1x")))).starts_with("error.method"));
        assert!(shown(method_path(&method(None, None, None))).starts_with("error:"));
        assert!(shown(method_path(&method(Some("RegularExpression"), Some("(x"), None))).starts_with("error.service"));
        assert!(shown(method_path(&method(Some("Prefix"), Some("x"), None))).starts_with("error.type"));
        assert!(valid_service(".grpc.health.v1.Health"));
        assert!(!valid_service("a..b"));
    }
}
