//! ingress-nginx's authentication annotations → a typed [`RouteAuth`]: `auth-type: basic` with
//! `auth-secret` (`auth-file` or `auth-map`) and `auth-realm`; `auth-url` with `auth-method`,
//! `auth-signin` (+ `-redirect-param`), `auth-response-headers`, `auth-request-redirect`.
//!
//! Every value is parsed into a typed value or refused. Anything that keeps the protection from
//! being set up as written (a Secret missing or unreadable, no usable user, a URL that does not
//! parse) is an error and `Err(())`: the caller withholds the Ingress (fail closed), since
//! serving it would expose what the annotation protects.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use http::{HeaderName, HeaderValue, Method, Uri};

use crate::config::{Kind, Object, Secret, Snapshot};
use crate::routes::RouteAuth;
use crate::routes::auth::{
    BasicAuth, DEFAULT_REALM, ForwardAuth, PasswordHash, SigninUrl, check_user, is_local_address, parse_htpasswd,
};

use super::Reporter;
use super::annotations::{boolean, field, value};
use super::tls::secret_value;

/// The authentication of an Ingress's routes: `Ok(None)` without any; `Err(())` when it is
/// asked for and cannot be set up (reported).
pub(crate) fn route_auth(
    namespace: &str,
    annotations: &BTreeMap<String, String>,
    snapshot: &Snapshot,
    allow_loopback: bool,
    report: &mut Reporter<'_>,
) -> Result<Option<Arc<RouteAuth>>, ()> {
    let basic = basic(namespace, annotations, snapshot, report);
    let forward = forward(annotations, allow_loopback, report);
    match (basic?, forward?) {
        (None, None) => Ok(None),
        (basic, forward) => Ok(Some(Arc::new(RouteAuth { basic, forward }))),
    }
}

fn basic(
    namespace: &str,
    annotations: &BTreeMap<String, String>,
    snapshot: &Snapshot,
    report: &mut Reporter<'_>,
) -> Result<Option<BasicAuth>, ()> {
    let Some((type_key, auth_type)) = value(annotations, "auth-type") else {
        if let Some((key, _)) = value(annotations, "auth-secret") {
            report.error(
                field(key),
                "auth-secret without auth-type: set auth-type: basic (ingress-nginx would serve the Ingress unprotected)",
            );
            return Err(());
        }
        return Ok(None);
    };
    match auth_type {
        "basic" => {}
        "digest" => {
            report.error(
                field(type_key),
                "digest authentication is not supported: use basic (over HTTPS) or auth-url",
            );
            return Err(());
        }
        other => {
            report.error(
                field(type_key),
                format!(
                    "{:?} is not an authentication type: write basic",
                    other.escape_debug().to_string()
                ),
            );
            return Err(());
        }
    }
    let Some((secret_key, reference)) = value(annotations, "auth-secret") else {
        report.error(
            field(type_key),
            "auth-type: basic needs auth-secret (the Secret holding the users)",
        );
        return Err(());
    };
    let (secret_namespace, secret_name) = match reference.split_once('/') {
        None => (namespace, reference),
        Some((ns, name)) => (ns, name),
    };
    let valid_name = |name: &str| {
        !name.is_empty()
            && name.len() <= 253
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
    };
    if !valid_name(secret_namespace) || !valid_name(secret_name) {
        report.error(
            field(secret_key),
            format!(
                "{:?} is not NAME or NAMESPACE/NAME of a Secret",
                reference.escape_debug().to_string()
            ),
        );
        return Err(());
    }
    if secret_namespace != namespace {
        report.error(
            field(secret_key),
            format!(
                "Secret {secret_namespace}/{secret_name} is in another namespace: an Ingress may only use Secrets of \
                 its own namespace (as ingress-nginx without allow-cross-namespace-resources)"
            ),
        );
        return Err(());
    }
    let secret_type = value(annotations, "auth-secret-type");
    let map = match secret_type {
        None | Some((_, "auth-file")) => false,
        Some((_, "auth-map")) => true,
        Some((key, other)) => {
            report.error(
                field(key),
                format!(
                    "{:?} is not a Secret type: write auth-file or auth-map",
                    other.escape_debug().to_string()
                ),
            );
            return Err(());
        }
    };
    let name = format!("{secret_namespace}/{secret_name}");
    let Some(Object::Secret(secret)) = snapshot
        .get(Kind::Secret, secret_namespace, secret_name)
        .map(|stored| &stored.object)
    else {
        report.error(
            field(secret_key),
            format!("Secret {name} does not exist (or is not watched): the Ingress is not served until it does"),
        );
        return Err(());
    };
    let (users, problems) = if map {
        users_of_map(secret)
    } else {
        users_of_file(secret)
    };
    for problem in &problems {
        report.error(field(secret_key), format!("Secret {name}: {problem}"));
    }
    if users.is_empty() {
        report.error(
            field(secret_key),
            format!("Secret {name} holds no usable user: the Ingress is not served"),
        );
        return Err(());
    }
    let realm = value(annotations, "auth-realm").map_or(DEFAULT_REALM, |(_, realm)| realm);
    Ok(Some(BasicAuth::new(realm, name, users)))
}

/// `auth-file`: the key `auth`, htpasswd lines. Problems name the line, never a hash.
fn users_of_file(secret: &Secret) -> (BTreeMap<String, PasswordHash>, Vec<String>) {
    if !secret.data.contains_key("auth") && !secret.string_data.contains_key("auth") {
        return (
            BTreeMap::new(),
            vec!["no key \"auth\" (auth-secret-type auth-file: htpasswd lines under the key auth)".to_string()],
        );
    }
    let text = match secret_value(secret, "auth") {
        Ok(bytes) => bytes,
        Err((_, reason)) => return (BTreeMap::new(), vec![reason]),
    };
    let Ok(text) = String::from_utf8(text) else {
        return (BTreeMap::new(), vec!["auth is not UTF-8 text".to_string()]);
    };
    let (users, errors) = parse_htpasswd(&text);
    let problems = errors
        .into_iter()
        .map(|err| format!("auth line {}: {}; this line is not used", err.line, err.message))
        .collect();
    (users, problems)
}

/// `auth-map`: each key a user, each value its hash.
fn users_of_map(secret: &Secret) -> (BTreeMap<String, PasswordHash>, Vec<String>) {
    let mut users = BTreeMap::new();
    let mut problems = Vec::new();
    let keys: std::collections::BTreeSet<&String> = secret.data.keys().chain(secret.string_data.keys()).collect();
    for user in keys {
        let shown = user.escape_debug().to_string();
        let hash = match secret_value(secret, user) {
            Ok(bytes) => String::from_utf8(bytes).map_err(|_| "not UTF-8 text".to_string()),
            Err((_, reason)) => Err(reason),
        };
        let parsed = hash.and_then(|hash| {
            check_user(user)
                .and_then(|()| PasswordHash::parse(hash.trim()))
                .map_err(str::to_string)
        });
        match parsed {
            Ok(hash) => {
                users.insert(user.clone(), hash);
            }
            Err(message) => problems.push(format!("user {shown:?}: {message}; this user is not used")),
        }
    }
    (users, problems)
}

/// The `auth-*` names that belong to forward authentication.
const FORWARD_ONLY: &[&str] = &[
    "auth-always-set-cookie",
    "auth-method",
    "auth-signin",
    "auth-signin-redirect-param",
    "auth-response-headers",
    "auth-request-redirect",
];

fn forward(
    annotations: &BTreeMap<String, String>,
    allow_loopback: bool,
    report: &mut Reporter<'_>,
) -> Result<Option<ForwardAuth>, ()> {
    let Some((url_key, raw_url)) = value(annotations, "auth-url") else {
        for name in FORWARD_ONLY {
            if let Some((key, _)) = value(annotations, name) {
                report.warning(field(key), "without auth-url this has no effect");
            }
        }
        return Ok(None);
    };
    let mut failed = false;
    let mut fail = |key: &str, message: String, report: &mut Reporter<'_>| {
        report.error(field(key), message);
        failed = true;
    };
    let url = match parse_auth_url(raw_url.trim(), allow_loopback) {
        Ok(url) => Some(url),
        Err(message) => {
            fail(url_key, message, report);
            None
        }
    };
    let method = match value(annotations, "auth-method") {
        None => Method::GET,
        Some((key, text)) => match text.trim().to_ascii_uppercase().as_str() {
            method @ ("GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE" | "OPTIONS") => {
                Method::from_bytes(method.as_bytes()).unwrap_or(Method::GET)
            }
            _ => {
                fail(
                    key,
                    format!(
                        "{:?} is not an HTTP method: write GET, HEAD, POST, PUT, PATCH, DELETE or OPTIONS",
                        text.escape_debug().to_string()
                    ),
                    report,
                );
                Method::GET
            }
        },
    };
    let redirect_param = match value(annotations, "auth-signin-redirect-param") {
        None => "rd".to_string(),
        Some((key, param)) => {
            if !param.is_empty() && param.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)) {
                param.to_string()
            } else {
                fail(
                    key,
                    "a query parameter name of letters, digits, '-', '_' or '.' is expected".to_string(),
                    report,
                );
                "rd".to_string()
            }
        }
    };
    let signin = match value(annotations, "auth-signin") {
        None => None,
        Some((key, text)) => match SigninUrl::parse(text.trim(), &redirect_param) {
            Ok(signin) => Some(signin),
            Err(message) => {
                fail(key, message, report);
                None
            }
        },
    };
    let mut response_headers = Vec::new();
    if let Some((key, list)) = value(annotations, "auth-response-headers") {
        for name in list.split(',').map(str::trim).filter(|name| !name.is_empty()) {
            match HeaderName::from_bytes(name.as_bytes()) {
                Ok(header) if !is_hop_by_hop(&header) => response_headers.push(header),
                Ok(_) => report.warning(field(key), format!("{name:?} is a hop-by-hop header and is not copied")),
                Err(_) => fail(
                    key,
                    format!("{:?} is not a header name", name.escape_debug().to_string()),
                    report,
                ),
            }
        }
        response_headers.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        response_headers.dedup();
    }
    let request_redirect = match value(annotations, "auth-request-redirect") {
        None => None,
        Some((key, text)) => match HeaderValue::from_str(text.trim()) {
            Ok(header) if !text.chars().any(char::is_control) => Some(header),
            _ => {
                fail(
                    key,
                    "control characters or non-ASCII text cannot be sent in a header".to_string(),
                    report,
                );
                None
            }
        },
    };
    let always_set_cookie = boolean(annotations, "auth-always-set-cookie", false, report);
    let Some((url, host)) = url else {
        return Err(());
    };
    if failed {
        return Err(());
    }
    Ok(Some(ForwardAuth {
        url,
        host,
        method,
        signin,
        response_headers,
        request_redirect,
        always_set_cookie,
        allow_loopback,
    }))
}

fn is_hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "transfer-encoding"
            | "te"
            | "trailer"
            | "upgrade"
            | "content-length"
            | "host"
    )
}

/// `auth-url`: an absolute `http(s)` URL without user info or nginx variables. Loopback,
/// link-local and unspecified literal addresses (and `localhost`) only when `allow_loopback`.
fn parse_auth_url(text: &str, allow_loopback: bool) -> Result<(Uri, HeaderValue), String> {
    if text.contains('$') {
        return Err(
            "nginx variables ($host, …) in auth-url are not supported: name the auth service's URL".to_string(),
        );
    }
    if text.chars().any(|c| c.is_control() || c == ' ') {
        return Err("control characters and spaces are not allowed in auth-url".to_string());
    }
    let uri: Uri = text
        .parse()
        .map_err(|err| format!("{:?} is not a URL: {err}", text.escape_debug().to_string()))?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) {
        return Err("auth-url must be an http:// or https:// URL".to_string());
    }
    let Some(authority) = uri.authority() else {
        return Err("auth-url has no host".to_string());
    };
    if authority.as_str().contains('@') {
        return Err("auth-url must not carry user information".to_string());
    }
    let host = authority.host().trim_start_matches('[').trim_end_matches(']');
    if !allow_loopback && is_local_host(host) {
        return Err(format!(
            "auth-url names a loopback, link-local or unspecified address ({host}): refused in Kubernetes mode, \
             where it would reach the proxy's own pod"
        ));
    }
    let header =
        HeaderValue::from_str(authority.as_str()).map_err(|_| "auth-url's host is not a valid Host".to_string())?;
    Ok((uri, header))
}

/// `localhost` or a loopback, link-local or unspecified literal address.
pub(crate) fn is_local_host(host: &str) -> bool {
    let lower = host.to_ascii_lowercase();
    if lower == "localhost" || lower.ends_with(".localhost") {
        return true;
    }
    host.parse::<IpAddr>().is_ok_and(is_local_address)
}
