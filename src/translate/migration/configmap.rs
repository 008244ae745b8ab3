//! ingress-nginx's controller ConfigMap (its global settings) as `vestibule migrate` reads it:
//! each key mapped to the `vestibule run` flag that does the same, or classed like an annotation
//! (supported with a difference, accepted as no-op, unsupported, refused), and the defaults of
//! ingress-nginx that Vestibule does not keep.
//!
//! Pure: a key and its value in, a finding out. The values are parsed as ingress-nginx reads
//! them (nginx time and size units); a value that does not parse is reported, never passed on.

use std::collections::BTreeMap;

use serde::Serialize;

use super::Category;
use crate::routes::cidr::Cidr;

/// One key of the ConfigMap.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyFinding {
    pub key: String,
    pub value: String,
    pub category: Category,
    /// The difference, why it is a no-op, or what to use instead; empty when supported.
    pub note: String,
    /// The `vestibule run` flags this key becomes (`--name value`), in order.
    pub flags: Vec<String>,
}

/// The controller ConfigMap of ingress-nginx, assessed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConfigMapAssessment {
    pub namespace: String,
    pub name: String,
    /// Where it was read (`file, document N`).
    pub origin: String,
    /// Each key, sorted.
    pub keys: Vec<KeyFinding>,
    /// ingress-nginx defaults the ConfigMap leaves in place and Vestibule does not have
    /// (`value`: ingress-nginx's default).
    pub defaults: Vec<KeyFinding>,
    /// Every flag of `keys`, in key order: the `vestibule run` flags that carry the settings over.
    pub flags: Vec<String>,
    /// Anything here behaves otherwise than under ingress-nginx.
    pub changes_behaviour: bool,
}

/// The names ingress-nginx's manifests and Helm chart give the controller ConfigMap (the chart
/// prefixes the release name: `<release>-ingress-nginx-controller`).
pub fn is_controller_configmap(name: &str, labels: &BTreeMap<String, String>) -> bool {
    let chart = labels
        .get("app.kubernetes.io/name")
        .is_some_and(|v| v == "ingress-nginx")
        && labels
            .get("app.kubernetes.io/component")
            .is_none_or(|component| component == "controller");
    chart
        || name == "ingress-nginx-controller"
        || name.ends_with("-ingress-nginx-controller")
        || name == "nginx-configuration"
}

/// Assesses the ConfigMap's `data`.
pub fn assess_configmap(
    namespace: &str,
    name: &str,
    origin: &str,
    data: &BTreeMap<String, String>,
) -> ConfigMapAssessment {
    let keys: Vec<KeyFinding> = data.iter().map(|(key, value)| assess_key(key, value, data)).collect();
    let defaults = defaults_not_kept(data);
    let flags = keys.iter().flat_map(|finding| finding.flags.iter().cloned()).collect();
    let changes_behaviour = keys
        .iter()
        .chain(&defaults)
        .any(|finding| finding.category.changes_behaviour());
    ConfigMapAssessment {
        namespace: namespace.to_string(),
        name: name.to_string(),
        origin: origin.to_string(),
        keys,
        defaults,
        flags,
        changes_behaviour,
    }
}

fn finding(key: &str, value: &str, category: Category, note: impl Into<String>, flags: Vec<String>) -> KeyFinding {
    KeyFinding {
        key: key.escape_debug().to_string(),
        value: value.escape_debug().to_string(),
        category,
        note: note.into(),
        flags,
    }
}

const NGINX_BUFFERS: &str = "nginx buffer and table tuning: bodies are streamed with bounded buffers";
const LOGS: &str = "the access log has one format (RUST_LOG=info,access=debug; README \"Logs\")";
const TRACING: &str = "no tracing exporter yet: use the access log and /metrics";
const ACCESS: &str = "global access control is not applied: every Ingress would be served without it; put the \
                      equivalent annotation on each Ingress (Ingresses with access-control annotations Vestibule \
                      does not honour are not served)";

/// One key. `data` is the whole ConfigMap, for keys that only mean something with another.
fn assess_key(key: &str, value: &str, data: &BTreeMap<String, String>) -> KeyFinding {
    use Category::{Differs, NoOp, Refused, Supported, Unsupported};
    let v = value.trim();
    let seconds_flag = |flags: &[&str], note: &str| match nginx_seconds(v) {
        Some(seconds) => {
            let flags = flags
                .iter()
                .map(|flag| format!("{flag} {}", show_seconds(seconds)))
                .collect();
            let category = if note.is_empty() { Supported } else { Differs };
            finding(key, value, category, note, flags)
        }
        None => invalid(key, value, "a time such as 60, 60s or 1m"),
    };
    let boolean = |default: bool| parse_bool(v).unwrap_or(default);
    match key {
        // Timeouts.
        "proxy-connect-timeout" => seconds_flag(&["--connect-timeout"], ""),
        "proxy-read-timeout" => seconds_flag(
            &["--response-header-timeout", "--response-body-timeout"],
            "one nginx read timeout becomes two: the wait for the response head, and the pauses of its body",
        ),
        "client-header-timeout" => seconds_flag(
            &["--header-read-timeout"],
            "the same timeout is also the HTTP/1.1 keep-alive idle timeout (ingress-nginx: keep-alive, 75 s)",
        ),
        "client-body-timeout" => seconds_flag(&["--request-body-timeout"], ""),
        "proxy-send-timeout" => finding(
            key,
            value,
            Differs,
            "no timeout of its own: a request body's pauses are bounded by --request-body-timeout (client-body-timeout)",
            Vec::new(),
        ),
        "keep-alive" => finding(
            key,
            value,
            Differs,
            "the HTTP/1.1 keep-alive idle timeout is --header-read-timeout (default 30 s; client-header-timeout); HTTP/2 \
             connections: --idle-timeout",
            Vec::new(),
        ),
        "worker-shutdown-timeout" => seconds_flag(
            &["--drain-timeout"],
            "in-flight requests get this long after SIGTERM; --shutdown-delay keeps accepting before that",
        ),
        // Workers and connections.
        "worker-processes" => match v {
            "auto" => finding(key, value, Supported, "", vec!["--workers 0".to_string()]),
            _ => match v.parse::<u16>() {
                Ok(workers) if workers > 0 => finding(
                    key,
                    value,
                    Differs,
                    "worker threads of one process, not processes",
                    vec![format!("--workers {workers}")],
                ),
                _ => invalid(key, value, "auto or a number of workers"),
            },
        },
        "max-worker-connections" => match v.parse::<u32>() {
            Ok(connections) => finding(
                key,
                value,
                Differs,
                "client connections per worker thread (nginx counts upstream connections too); beyond it new \
                 connections get 503; 0: from the open-file limit",
                vec![format!("--max-connections {connections}")],
            ),
            Err(_) => invalid(key, value, "a number of connections"),
        },
        "http2-max-concurrent-streams" => match v.parse::<u32>() {
            Ok(streams) if streams > 0 => {
                finding(key, value, Supported, "", vec![format!("--h2-max-streams {streams}")])
            }
            _ => invalid(key, value, "a number of streams"),
        },
        "large-client-header-buffers" => match large_header_buffers(v) {
            Some(bytes) => finding(
                key,
                value,
                Differs,
                "one limit for the whole request head (request line and headers), answered 431; nginx limits each \
                 line to one buffer",
                vec![format!("--max-header-size {bytes}")],
            ),
            None => invalid(key, value, "a count and a size, such as 4 8k"),
        },
        "enable-underscores-in-headers" => match parse_bool(v) {
            Some(true) => finding(
                key,
                value,
                Supported,
                "",
                vec!["--allow-underscores-in-headers".to_string()],
            ),
            Some(false) => finding(key, value, Supported, "", Vec::new()),
            None => invalid(key, value, "true or false"),
        },
        "ignore-invalid-headers" => match parse_bool(v) {
            Some(true) => finding(key, value, Supported, "", Vec::new()),
            _ => finding(
                key,
                value,
                Unsupported,
                "header names are always validated; invalid ones are refused",
                Vec::new(),
            ),
        },
        "limit-req-status-code" | "limit-conn-status-code" => match v.parse::<u16>() {
            Ok(code) if (400..=599).contains(&code) => {
                finding(key, value, Supported, "", vec![format!("--{key} {code}")])
            }
            _ => invalid(key, value, "a status code from 400 to 599"),
        },
        "global-allowed-response-headers" => {
            let names: Vec<&str> = v.split(',').map(str::trim).filter(|name| !name.is_empty()).collect();
            let valid = names.iter().all(|name| {
                name.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            });
            if !valid {
                invalid(key, value, "comma-separated header names")
            } else if names.is_empty() {
                finding(key, value, Supported, "", Vec::new())
            } else {
                finding(
                    key,
                    value,
                    Supported,
                    "",
                    vec![format!("--allowed-response-headers {}", names.join(","))],
                )
            }
        }
        "http-redirect-code" => match v {
            "308" => finding(key, value, Supported, "", Vec::new()),
            _ => finding(key, value, Unsupported, "HTTPS redirects are always 308", Vec::new()),
        },
        // Client addresses behind other proxies.
        "use-forwarded-headers" | "enable-real-ip" => match parse_bool(v) {
            Some(true) => {
                let cidrs = data.get("proxy-real-ip-cidr").map_or("0.0.0.0/0", String::as_str);
                match trusted_proxies(cidrs) {
                    Some(flags) => finding(
                        key,
                        value,
                        Differs,
                        "X-Forwarded-For (and Forwarded) from the peers of proxy-real-ip-cidr (ingress-nginx's \
                         default: everyone) is kept and extended, and its client is the one source ranges, limits \
                         and X-Real-IP use; X-Forwarded-Proto https from them is believed",
                        flags,
                    ),
                    None => invalid("proxy-real-ip-cidr", cidrs, "comma-separated CIDRs or addresses"),
                }
            }
            Some(false) => finding(key, value, Supported, "", Vec::new()),
            None => invalid(key, value, "true or false"),
        },
        "proxy-real-ip-cidr" => {
            let used = ["use-forwarded-headers", "enable-real-ip"]
                .iter()
                .any(|other| data.get(*other).and_then(|v| parse_bool(v.trim())).unwrap_or(false));
            match trusted_proxies(v) {
                None => invalid(key, value, "comma-separated CIDRs or addresses"),
                Some(_) if used => finding(key, value, Supported, "becomes --trusted-proxy (above)", Vec::new()),
                Some(_) => finding(
                    key,
                    value,
                    NoOp,
                    "without use-forwarded-headers it has no effect in ingress-nginx either",
                    Vec::new(),
                ),
            }
        }
        "compute-full-forwarded-for" => finding(key, value, Supported, "", Vec::new()),
        "forwarded-for-header" => match v.eq_ignore_ascii_case("X-Forwarded-For") {
            true => finding(key, value, Supported, "", Vec::new()),
            false => finding(
                key,
                value,
                Unsupported,
                "the client chain is read from X-Forwarded-For only",
                Vec::new(),
            ),
        },
        "use-proxy-protocol" => match boolean(false) {
            false => finding(key, value, Supported, "", Vec::new()),
            true => finding(
                key,
                value,
                Unsupported,
                "no PROXY protocol yet: a load balancer that sends it must stop, or pass X-Forwarded-For with \
                 --trusted-proxy",
                Vec::new(),
            ),
        },
        // TLS.
        "ssl-protocols" => {
            let protocols: Vec<&str> = v.split_whitespace().collect();
            let old: Vec<&str> = protocols
                .iter()
                .copied()
                .filter(|p| !matches!(*p, "TLSv1.2" | "TLSv1.3"))
                .collect();
            if protocols.is_empty() {
                invalid(key, value, "protocol names such as TLSv1.2 TLSv1.3")
            } else if old.is_empty() && protocols.len() == 2 {
                finding(key, value, Supported, "", Vec::new())
            } else if old.is_empty() {
                finding(
                    key,
                    value,
                    Differs,
                    "TLS 1.2 and 1.3 are both always offered",
                    Vec::new(),
                )
            } else {
                finding(
                    key,
                    value,
                    Unsupported,
                    format!("only TLS 1.2 and 1.3 are offered: {} would be refused", old.join(" ")),
                    Vec::new(),
                )
            }
        }
        "ssl-ciphers" => finding(
            key,
            value,
            Differs,
            "the cipher suites are fixed: rustls's safe defaults (AES-GCM and ChaCha20-Poly1305, forward secret)",
            Vec::new(),
        ),
        "ssl-redirect" => match boolean(true) {
            true => finding(key, value, Supported, "", Vec::new()),
            false => finding(
                key,
                value,
                Unsupported,
                "no global switch: an Ingress written for ingress-nginx with tls is redirected unless it is annotated \
                 nginx.ingress.kubernetes.io/ssl-redirect: \"false\"",
                Vec::new(),
            ),
        },
        "force-ssl-redirect" => match boolean(false) {
            false => finding(key, value, Supported, "", Vec::new()),
            true => finding(
                key,
                value,
                Unsupported,
                "no global switch: annotate each Ingress nginx.ingress.kubernetes.io/force-ssl-redirect: \"true\"",
                Vec::new(),
            ),
        },
        "hsts" | "hsts-max-age" | "hsts-include-subdomains" | "hsts-preload" => {
            if key == "hsts" && parse_bool(v) == Some(false) {
                finding(key, value, Supported, "", Vec::new())
            } else {
                finding(
                    key,
                    value,
                    Unsupported,
                    "no Strict-Transport-Security header is added; a backend's own passes through",
                    Vec::new(),
                )
            }
        }
        "ssl-session-cache"
        | "ssl-session-cache-size"
        | "ssl-session-timeout"
        | "ssl-session-tickets"
        | "ssl-buffer-size"
        | "ssl-dh-param"
        | "ssl-ecdh-curve"
        | "ssl-early-data" => finding(
            key,
            value,
            NoOp,
            "TLS session and buffer tuning: rustls's defaults (resumption by tickets, no 0-RTT)",
            Vec::new(),
        ),
        "enable-ocsp" => finding(key, value, Unsupported, "no OCSP stapling", Vec::new()),
        // Bodies and buffers.
        "proxy-body-size" if v == "0" => finding(key, value, Supported, "", Vec::new()),
        "proxy-body-size" => finding(
            key,
            value,
            Unsupported,
            "no global limit: request bodies are not limited unless an Ingress has \
             nginx.ingress.kubernetes.io/proxy-body-size",
            Vec::new(),
        ),
        "proxy-buffering"
        | "proxy-buffer-size"
        | "proxy-buffers-number"
        | "client-body-buffer-size"
        | "proxy-max-temp-file-size"
        | "proxy-request-buffering"
        | "variables-hash-bucket-size"
        | "variables-hash-max-size"
        | "server-name-hash-bucket-size"
        | "server-name-hash-max-size"
        | "map-hash-bucket-size"
        | "proxy-headers-hash-bucket-size"
        | "proxy-headers-hash-max-size"
        | "reuse-port"
        | "worker-cpu-affinity"
        | "max-worker-open-files" => finding(key, value, NoOp, NGINX_BUFFERS, Vec::new()),
        "upstream-keepalive-connections"
        | "upstream-keepalive-timeout"
        | "upstream-keepalive-requests"
        | "upstream-keepalive-time"
        | "keep-alive-requests" => finding(
            key,
            value,
            NoOp,
            "upstream connections are pooled per worker thread and endpoint",
            Vec::new(),
        ),
        "use-http2" => match boolean(true) {
            true => finding(key, value, Supported, "", Vec::new()),
            false => finding(
                key,
                value,
                Unsupported,
                "HTTP/2 is always offered by ALPN on TLS, and h2c by prior knowledge",
                Vec::new(),
            ),
        },
        "server-tokens" => finding(key, value, NoOp, "no Server header with a version is added", Vec::new()),
        // Logs and telemetry.
        "log-format-upstream"
        | "log-format-escape-json"
        | "log-format-escape-none"
        | "log-format-stream"
        | "access-log-path"
        | "access-log-params"
        | "error-log-path"
        | "disable-access-log"
        | "error-log-level"
        | "skip-access-log-urls"
        | "enable-access-log-for-default-backend"
        | "http-access-log-path"
        | "stream-access-log-path" => finding(key, value, Unsupported, LOGS, Vec::new()),
        "enable-opentelemetry"
        | "enable-opentracing"
        | "opentelemetry-config"
        | "otlp-collector-host"
        | "otlp-collector-port"
        | "otel-service-name"
        | "otel-sampler"
        | "otel-sampler-ratio"
        | "opentelemetry-trust-incoming-span" => finding(key, value, Unsupported, TRACING, Vec::new()),
        // Balancing and errors.
        "load-balance" => match v {
            "round_robin" => finding(key, value, Supported, "", Vec::new()),
            _ => finding(
                key,
                value,
                Unsupported,
                "endpoints are balanced round robin",
                Vec::new(),
            ),
        },
        "proxy-next-upstream" | "proxy-next-upstream-tries" | "proxy-next-upstream-timeout" => finding(
            key,
            value,
            Differs,
            "no global retry policy: without the proxy-next-upstream* annotations on an Ingress, a failed connection is tried once more on another endpoint, nothing else; annotate the Ingresses that need more",
            Vec::new(),
        ),
        "custom-http-errors" => finding(
            key,
            value,
            Unsupported,
            "errors from backends pass through as they are",
            Vec::new(),
        ),
        "use-gzip" | "enable-brotli" | "gzip-level" | "gzip-types" | "gzip-min-length" | "brotli-level"
        | "brotli-types" => match key {
            "use-gzip" | "enable-brotli" if parse_bool(v) == Some(false) => {
                finding(key, value, Supported, "", Vec::new())
            }
            _ => finding(
                key,
                value,
                Unsupported,
                "no response compression: a backend's own compression passes through",
                Vec::new(),
            ),
        },
        "use-geoip" | "use-geoip2" | "geoip2-autoreload-in-minutes" => {
            finding(key, value, Unsupported, "no GeoIP variables", Vec::new())
        }
        "proxy-set-headers" | "add-headers" | "hide-headers" => finding(
            key,
            value,
            Unsupported,
            "no headers added to (or hidden from) every request or response",
            Vec::new(),
        ),
        "generate-request-id" => match boolean(true) {
            false => finding(key, value, Supported, "", Vec::new()),
            true => finding(key, value, Unsupported, "no X-Request-ID is generated", Vec::new()),
        },
        "bind-address" => finding(
            key,
            value,
            Unsupported,
            "listen addresses are --http and --https",
            Vec::new(),
        ),
        "no-tls-redirect-locations" => finding(
            key,
            value,
            Unsupported,
            "no path is exempt from the HTTPS redirect",
            Vec::new(),
        ),
        // Access control applied to every Ingress.
        "global-auth-url"
        | "global-auth-method"
        | "global-auth-signin"
        | "global-auth-signin-redirect-param"
        | "global-auth-response-headers"
        | "global-auth-request-redirect"
        | "global-auth-cache-key"
        | "global-auth-cache-duration"
        | "global-auth-always-set-cookie"
        | "enable-global-auth" => {
            if key == "enable-global-auth" && parse_bool(v) == Some(false) {
                finding(key, value, Supported, "", Vec::new())
            } else {
                finding(key, value, Unsupported, ACCESS, Vec::new())
            }
        }
        "block-cidrs" | "block-user-agents" | "block-referers" | "whitelist-source-range" | "denylist-source-range" => {
            if v.is_empty() {
                finding(key, value, Supported, "", Vec::new())
            } else {
                finding(key, value, Unsupported, ACCESS, Vec::new())
            }
        }
        // Raw nginx and Lua: never executed.
        "allow-snippet-annotations" => match boolean(false) {
            false => finding(key, value, Supported, "", Vec::new()),
            true => finding(
                key,
                value,
                Refused,
                "snippets are never executed: an Ingress carrying one is not served",
                Vec::new(),
            ),
        },
        "annotations-risk-level" | "strict-validate-path-type" | "annotation-value-word-blocklist" => finding(
            key,
            value,
            NoOp,
            "annotation values are parsed into typed values and paths are always validated",
            Vec::new(),
        ),
        "plugins" | "lua-shared-dicts" => finding(key, value, Refused, "Lua is never executed", Vec::new()),
        _ if key.ends_with("-snippet") => finding(
            key,
            value,
            Refused,
            "raw nginx configuration is never executed",
            Vec::new(),
        ),
        _ => finding(
            key,
            value,
            Unsupported,
            "not a key Vestibule knows: nothing of it is applied",
            Vec::new(),
        ),
    }
}

fn invalid(key: &str, value: &str, expected: &str) -> KeyFinding {
    finding(
        key,
        value,
        Category::Unsupported,
        format!("the value does not parse (expected {expected}): nothing is applied"),
        Vec::new(),
    )
}

/// ingress-nginx defaults that hold when the ConfigMap does not set their key, and that
/// Vestibule does not have.
fn defaults_not_kept(data: &BTreeMap<String, String>) -> Vec<KeyFinding> {
    let defaults = [
        (
            "hsts",
            "true",
            "ingress-nginx adds Strict-Transport-Security: max-age=31536000; includeSubDomains to HTTPS answers; \
             Vestibule adds none",
        ),
        (
            "proxy-body-size",
            "1m",
            "ingress-nginx answers 413 to request bodies over 1 MiB; Vestibule limits bodies only where an Ingress \
             has nginx.ingress.kubernetes.io/proxy-body-size",
        ),
        (
            "generate-request-id",
            "true",
            "ingress-nginx sends an X-Request-ID to backends; Vestibule sends none",
        ),
    ];
    defaults
        .iter()
        .filter(|(key, _, _)| !data.contains_key(*key))
        .map(|(key, value, note)| finding(key, value, Category::Unsupported, *note, Vec::new()))
        .collect()
}

fn parse_bool(value: &str) -> Option<bool> {
    match value {
        "true" | "True" | "TRUE" | "on" => Some(true),
        "false" | "False" | "FALSE" | "off" => Some(false),
        _ => None,
    }
}

/// An nginx time: a number with an optional unit (`ms`, `s`, `m`, `h`; none: seconds), as in
/// `60`, `60s`, `1m`, `500ms`. At most a day.
fn nginx_seconds(value: &str) -> Option<f64> {
    let split = value.find(|c: char| !c.is_ascii_digit()).unwrap_or(value.len());
    let (number, unit) = value.split_at(split);
    let number: u32 = number.parse().ok()?;
    let scale = match unit {
        "" | "s" => 1.0,
        "ms" => 0.001,
        "m" => 60.0,
        "h" => 3600.0,
        _ => return None,
    };
    let seconds = f64::from(number) * scale;
    (seconds <= 86_400.0).then_some(seconds)
}

fn show_seconds(seconds: f64) -> String {
    if seconds.fract() == 0.0 {
        format!("{seconds:.0}")
    } else {
        format!("{seconds}")
    }
}

/// An nginx size: a number with an optional `k` or `m` unit.
fn nginx_size(value: &str) -> Option<u64> {
    let lower = value.to_ascii_lowercase();
    let (number, scale) = match lower.strip_suffix('k') {
        Some(number) => (number, 1024),
        None => match lower.strip_suffix('m') {
            Some(number) => (number, 1024 * 1024),
            None => (lower.as_str(), 1),
        },
    };
    number.parse::<u64>().ok()?.checked_mul(scale)
}

/// `large-client-header-buffers`: `COUNT SIZE` → their product, bounded to 16 MiB.
fn large_header_buffers(value: &str) -> Option<u64> {
    let mut parts = value.split_whitespace();
    let count: u64 = parts.next()?.parse().ok()?;
    let size = nginx_size(parts.next()?)?;
    if parts.next().is_some() {
        return None;
    }
    let bytes = count.checked_mul(size)?;
    (1..=16 * 1024 * 1024).contains(&bytes).then_some(bytes)
}

/// `proxy-real-ip-cidr`'s comma-separated list → `--trusted-proxy` flags.
fn trusted_proxies(value: &str) -> Option<Vec<String>> {
    let mut flags = Vec::new();
    for part in value.split(',').map(str::trim).filter(|part| !part.is_empty()) {
        let cidr: Cidr = part.parse().ok()?;
        flags.push(format!("--trusted-proxy {cidr}"));
    }
    (!flags.is_empty()).then_some(flags)
}

#[cfg(test)]
mod tests;
