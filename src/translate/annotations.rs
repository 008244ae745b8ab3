//! The ingress-nginx annotation catalogue: every `nginx.ingress.kubernetes.io/*` key that
//! ingress-nginx documents or parses, and the older generic `ingress.kubernetes.io/*` names
//! (same suffix, same meaning), each classified as honoured, honoured with a difference,
//! accepted as a no-op, unsupported or refused; and the report of one Ingress's annotations.
//!
//! Nothing here is ever turned into configuration text: an annotation is either read into a
//! typed value by the code that honours it, or reported. Keys under the two prefixes that the
//! catalogue does not know are unsupported (warning), except `*-snippet` keys, which are raw
//! nginx text and refused.
//!
//! Fail closed: an Ingress carrying an access-control annotation that is not honoured
//! (`auth-*`, `*-source-range`, `satisfy`, any `*-snippet`) is not served at all, not even its
//! last good version: serving it would expose what the annotation was written to protect.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::routes::canary::MAX_WEIGHT_TOTAL;
use crate::routes::{CanaryRule, Cidr, HeaderRule, RewritePiece, RouteTimeouts, SourceRanges, UpstreamProtocol};

use super::Reporter;
use super::table::RewriteTarget;

/// The annotation prefix of ingress-nginx.
pub const NGINX_PREFIX: &str = "nginx.ingress.kubernetes.io/";
/// The older, generic prefix many tutorials still carry; the same names mean the same.
pub const GENERIC_PREFIX: &str = "ingress.kubernetes.io/";

/// What Vestibule does with an annotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Support {
    /// Honoured as ingress-nginx documents it.
    Honoured,
    /// Honoured, with the difference described.
    Differs(&'static str),
    /// Accepted and without effect (nginx tuning with no counterpart, harmless); why.
    NoOp(&'static str),
    /// Not supported: ignored (or, for access control, the Ingress is not served); what to use
    /// instead, or an empty string when nothing does.
    Unsupported(&'static str),
    /// Refused as unsafe (raw nginx configuration); never executed.
    Refused,
}

impl Support {
    /// The class as the README table and messages name it.
    pub fn label(&self) -> &'static str {
        match self {
            Support::Honoured => "honoured",
            Support::Differs(_) => "honoured with a difference",
            Support::NoOp(_) => "accepted as no-op",
            Support::Unsupported(_) => "unsupported",
            Support::Refused => "refused (unsafe)",
        }
    }

    /// The note that goes with the class (difference, reason, or what to use instead).
    pub fn note(&self) -> &'static str {
        match self {
            Support::Honoured => "",
            Support::Differs(note) | Support::NoOp(note) | Support::Unsupported(note) => note,
            Support::Refused => "raw nginx configuration is never used; express the need with a supported annotation",
        }
    }
}

/// One catalogued annotation (the name without prefix).
#[derive(Debug, Clone, Copy)]
pub struct Entry {
    pub name: &'static str,
    pub support: Support,
}

fn is_access_control(name: &str) -> bool {
    name.starts_with("auth-") || name.ends_with("-source-range") || name == "satisfy" || name.ends_with("-snippet")
}

use Support::{Differs, Honoured, NoOp, Refused, Unsupported};

const SATISFY: Support = Unsupported(
    "remove it: every configured check (source range, basic, forward auth) must pass, as ingress-nginx's default (all)",
);
const AUTH_NO_CACHE: Support = NoOp("the auth service's answers are not cached: it is asked on every request");
const AUTH_KEEPALIVE: Support = NoOp("a new connection to the auth service for each check");
const SOURCE_RANGE: Support = Differs(
    "others get 403; the client address is the connection's peer, or behind a --trusted-proxy the client X-Forwarded-For names (ingress-nginx: with use-forwarded-headers); an address that cannot be read is refused",
);
const AFFINITY: Support = Differs(
    "the cookie names the endpoint by a keyed hash (HMAC-SHA256, a key made when the process starts): after a restart, or on another replica, the session picks an endpoint again and gets a new cookie (ingress-nginx hashes the endpoint address without a key)",
);
const CANARY: Support = Differs(
    "the canary's backend joins the routes of the primary Ingress with the same host and path (the oldest canary per route); without one the canary is not served; the weight is spread evenly over each window of canary-weight-total requests (ingress-nginx: random)",
);
const BACKEND_TLS_SETTINGS: Support = Unsupported("TLS to backends uses rustls's safe defaults (TLS 1.2 and 1.3)");
const RATE_LIMIT: Support = Differs(
    "per client address, shared by every route of the Ingress and every worker of one replica (as nginx's zones); at most 16,384 addresses tracked per limit, the one closest to a full bucket forgotten first; over it: 503, or --limit-req-status-code",
);
const BANDWIDTH: Support = Unsupported("no bandwidth limits: responses are sent as fast as the client reads");
const LIMIT_ALLOWLIST: Support = Differs(
    "exempts its clients from limit-rps, limit-rpm and limit-connections; an entry that does not parse is an error and left out",
);
const BUFFERS: Support = NoOp("nginx buffer tuning: bodies are streamed, with bounded buffers");
const TELEMETRY: Support = NoOp("no OpenTelemetry export: tracing goes to the log");
const MODSECURITY: Support = Unsupported("no web application firewall: put one in front or in the backend");
const URL_REDIRECT: Support = Differs(
    "answered for every path of the Ingress before the HTTPS redirect and any access check, as ingress-nginx's return; the URL may name $host, $scheme, $request_uri, $escaped_request_uri (any other $ is an error); temporal-redirect wins over permanent-redirect; a URL that is not absolute http(s) keeps the Ingress from being served",
);
const REDIRECT_CODE: Support = Differs(
    "300 to 308 (temporal: 300 to 307); another value is an error and the Ingress is not served (ingress-nginx silently uses 301 or 302)",
);
const HASH: Support = Unsupported("no hash balancing yet: requests are balanced round robin");
const FASTCGI: Support = Unsupported("FastCGI backends are not supported: put an HTTP server in front of them");

/// Every catalogued annotation, sorted by name. The README's table is generated from it (a
/// test fails when they disagree).
pub static CATALOGUE: &[Entry] = &[
    e("affinity", AFFINITY),
    e(
        "affinity-canary-behavior",
        Differs(
            "sticky (the default): a session naming an endpoint of the primary or the canary backend stays there, the canary rule decides only for requests without one; legacy: the canary rule decides every request, the session then picks within that backend",
        ),
    ),
    e(
        "affinity-mode",
        Differs(
            "balanced and persistent alike: a session stays with its endpoint while it is ready; endpoints added later get new sessions only (ingress-nginx's balanced mode moves some sessions to them)",
        ),
    ),
    e("allowlist-source-range", SOURCE_RANGE),
    e(
        "app-root",
        Differs(
            "a request for / that one of the Ingress's own routes matches is redirected (302); ingress-nginx redirects / on the whole host",
        ),
    ),
    e("auth-always-set-cookie", Honoured),
    e("auth-cache-duration", AUTH_NO_CACHE),
    e("auth-cache-key", AUTH_NO_CACHE),
    e("auth-keepalive", AUTH_KEEPALIVE),
    e("auth-keepalive-requests", AUTH_KEEPALIVE),
    e("auth-keepalive-share-vars", AUTH_KEEPALIVE),
    e("auth-keepalive-timeout", AUTH_KEEPALIVE),
    e("auth-method", Honoured),
    e(
        "auth-proxy-set-headers",
        Unsupported("no extra headers to the auth service (a ConfigMap of headers) yet"),
    ),
    e(
        "auth-realm",
        Differs("quotes, backslashes and control characters are removed; at most 128 characters"),
    ),
    e("auth-request-redirect", Honoured),
    e("auth-response-headers", Honoured),
    e(
        "auth-secret",
        Differs(
            "a Secret of the Ingress's own namespace only (ingress-nginx allows others with allow-cross-namespace-resources); hashes: bcrypt, $apr1$, $1$, {SHA}, $5$, $6$ (plain text and DES crypt lines are refused: those users cannot log in); while the Secret is missing or holds no usable user the Ingress is not served",
        ),
    ),
    e("auth-secret-type", Honoured),
    e(
        "auth-signin",
        Differs(
            "nginx variables: only $host, $http_host, $best_http_host, $scheme, $pass_access_scheme, $request_uri, $escaped_request_uri",
        ),
    ),
    e("auth-signin-redirect-param", Honoured),
    e("auth-snippet", Refused),
    e("auth-tls-error-page", Honoured),
    e(
        "auth-tls-match-cn",
        Differs(
            "a Rust regular expression (no look-around or backreferences), searched in the subject DN as nginx's ~; no certificate: the DN is empty",
        ),
    ),
    e("auth-tls-pass-certificate-to-upstream", Honoured),
    e(
        "auth-tls-secret",
        Differs(
            "a Secret of the Ingress's own namespace (NAMESPACE/NAME or NAME), any type, its ca.crt; certificates are requested per host by SNI, and a request whose Host asks for other client-certificate settings than the handshake's SNI gets 421; every route of the host is protected, whichever Ingress it comes from (the oldest Ingress's settings; a newer Ingress asking for others is not served on that host)",
        ),
    ),
    e(
        "auth-tls-verify-client",
        Differs(
            "on (the default), optional, optional_no_ca, off as ingress-nginx: the handshake never fails for a missing or bad certificate, the request gets 400 (or a redirect to auth-tls-error-page); plain HTTP requests count as sent without a certificate (ingress-nginx applies no check there)",
        ),
    ),
    e(
        "auth-tls-verify-depth",
        Differs(
            "at most that many intermediate certificates between the client's certificate and a CA of ca.crt (a CA of ca.crt ends the chain, even when it is not a root)",
        ),
    ),
    e(
        "auth-type",
        Differs("basic only: digest keeps the Ingress from being served"),
    ),
    e(
        "auth-url",
        Differs(
            "no nginx variables in the URL; a new connection per check, bounded by --connect-timeout and --response-header-timeout; loopback and link-local addresses refused in Kubernetes mode",
        ),
    ),
    e(
        "backend-protocol",
        Differs(
            "HTTP, HTTPS (HTTP/1.1 over TLS), GRPC (h2c), GRPCS (HTTP/2 over TLS), AUTO_HTTP (as HTTP); TLS backends' certificates are not verified and no SNI is sent unless proxy-ssl-verify and proxy-ssl-server-name ask, as ingress-nginx's defaults; FCGI and AJP are refused as errors (served as HTTP)",
        ),
    ),
    e("canary", CANARY),
    e("canary-by-cookie", CANARY),
    e("canary-by-header", CANARY),
    e("canary-by-header-pattern", CANARY),
    e("canary-by-header-value", CANARY),
    e("canary-weight", CANARY),
    e("canary-weight-total", CANARY),
    e("client-body-buffer-size", BUFFERS),
    e("configuration-snippet", Refused),
    e(
        "connection-proxy-header",
        NoOp("connections to backends are managed by the proxy (keep-alive pools)"),
    ),
    e("cors-allow-credentials", Honoured),
    e("cors-allow-headers", Honoured),
    e("cors-allow-methods", Honoured),
    e(
        "cors-allow-origin",
        Differs(
            "an entry that does not parse is an error and left out; it never widens the list to * (ingress-nginx falls back to * when no entry parses)",
        ),
    ),
    e("cors-expose-headers", Honoured),
    e("cors-max-age", Honoured),
    e(
        "custom-headers",
        Differs(
            "a ConfigMap of the Ingress's own namespace (NAMESPACE/NAME or NAME); names must be in --allowed-response-headers (ingress-nginx's global-allowed-response-headers, compared without case); names of letters, digits, - and _, values of visible ASCII and spaces; Content-Length, Transfer-Encoding, Connection and other framing headers refused; set on the backend's answers, replacing its own; anything wrong keeps the Ingress from being served (ingress-nginx answers 503 on its paths); the ConfigMap is watched",
        ),
    ),
    e(
        "custom-http-errors",
        Unsupported("backend error responses are passed through as they are"),
    ),
    e("default-backend", Unsupported("use spec.defaultBackend")),
    e("denylist-source-range", SOURCE_RANGE),
    e(
        "disable-proxy-intercept-errors",
        NoOp("backend error responses are never intercepted"),
    ),
    e(
        "enable-access-log",
        NoOp("the access log is global: RUST_LOG=access=debug"),
    ),
    e(
        "enable-cors",
        Differs(
            "a preflight is an OPTIONS request with Origin and Access-Control-Request-Method (other OPTIONS requests reach the backend); listed origins get Vary: Origin; preflights are answered after source ranges and rate limits, before authentication",
        ),
    ),
    e(
        "enable-global-auth",
        NoOp("there is no global external authentication to disable"),
    ),
    e("enable-modsecurity", MODSECURITY),
    e("enable-opentelemetry", TELEMETRY),
    e("enable-owasp-core-rules", MODSECURITY),
    e(
        "enable-rewrite-log",
        NoOp("rewrites are not logged: /api/routes shows each route's"),
    ),
    e("fastcgi-index", FASTCGI),
    e("fastcgi-params-configmap", FASTCGI),
    e("force-ssl-redirect", Honoured),
    e(
        "from-to-www-redirect",
        Differs(
            "308 from www.HOST to HOST or the reverse, same scheme, path and query (one trailing / dropped, as ingress-nginx); the port the client named is kept (ingress-nginx names its HTTPS port whenever it is not 443); not when a rule of any Ingress has that name; the host's certificate is served there only if valid for it (a warning says so otherwise); wildcard hosts have none",
        ),
    ),
    e(
        "http2-push-preload",
        NoOp("HTTP/2 server push is obsolete; browsers ignore it"),
    ),
    e("limit-allowlist", LIMIT_ALLOWLIST),
    e("limit-burst-multiplier", Honoured),
    e(
        "limit-connections",
        Differs(
            "counts the client's requests in progress on the Ingress's routes, each until its answer is sent (an upgraded connection no longer counts); over it: 503, or --limit-conn-status-code",
        ),
    ),
    e("limit-rate", BANDWIDTH),
    e("limit-rate-after", BANDWIDTH),
    e("limit-rpm", RATE_LIMIT),
    e("limit-rps", RATE_LIMIT),
    e("limit-whitelist", LIMIT_ALLOWLIST),
    e("load-balance", Unsupported("requests are balanced round robin")),
    e("mirror-host", Honoured),
    e("mirror-request-body", Honoured),
    e(
        "mirror-target",
        Differs(
            "a Service of the Ingress's namespace or an outside address (loopback, link-local, admin: only with --allow-local-external-name); at most 128 copies in flight per worker, bodies up to 1 MiB, 10 s each",
        ),
    ),
    e("modsecurity-snippet", Refused),
    e("modsecurity-transaction-id", MODSECURITY),
    e("opentelemetry-operation-name", TELEMETRY),
    e("opentelemetry-trust-incoming-span", TELEMETRY),
    e("permanent-redirect", URL_REDIRECT),
    e("permanent-redirect-code", REDIRECT_CODE),
    e(
        "preserve-trailing-slash",
        NoOp("HTTPS redirects always keep the path exactly as sent"),
    ),
    e(
        "proxy-body-size",
        Differs(
            "applied only where annotated: ingress-nginx's global default of 1m is not (--max-body-size has no counterpart yet)",
        ),
    ),
    e("proxy-buffer-size", BUFFERS),
    e("proxy-buffering", BUFFERS),
    e("proxy-buffers-number", BUFFERS),
    e("proxy-busy-buffers-size", BUFFERS),
    e(
        "proxy-connect-timeout",
        Differs("seconds, 1 to 3600 (ingress-nginx: nginx caps it at 75 s)"),
    ),
    e(
        "proxy-cookie-domain",
        Unsupported("set cookie attributes in the backend"),
    ),
    e("proxy-cookie-path", Unsupported("set cookie attributes in the backend")),
    e(
        "proxy-http-version",
        NoOp(
            "backends are spoken to in HTTP/1.1 (HTTP/2 by backend-protocol GRPC or GRPCS, or the Service port's appProtocol)",
        ),
    ),
    e("proxy-max-temp-file-size", BUFFERS),
    e(
        "proxy-next-upstream",
        Differs(
            "error and invalid_header both retry a connection that broke or an answer that is not HTTP; a body is sent again only if kept: at most 64 KiB of known length (longer or chunked ones: tried once more only when the connection failed); without any proxy-next-upstream* annotation a failed connection is tried once more on another endpoint, nothing else (ingress-nginx: error timeout, 3 tries)",
        ),
    ),
    e("proxy-next-upstream-timeout", Honoured),
    e("proxy-next-upstream-tries", Honoured),
    e("proxy-read-timeout", Honoured),
    e(
        "proxy-redirect-from",
        Unsupported("write Location headers right in the backend"),
    ),
    e(
        "proxy-redirect-to",
        Unsupported("write Location headers right in the backend"),
    ),
    e(
        "proxy-request-buffering",
        NoOp("request bodies are streamed to the backend"),
    ),
    e(
        "proxy-send-timeout",
        Differs(
            "also bounds pauses of the client sending its body (408), which ingress-nginx bounds with client-body-timeout",
        ),
    ),
    e("proxy-ssl-ciphers", BACKEND_TLS_SETTINGS),
    e(
        "proxy-ssl-name",
        Differs(
            "the name the backends' certificates are verified for, and the SNI with proxy-ssl-server-name \"on\"; required by proxy-ssl-verify \"on\" (ingress-nginx would check its internal upstream name)",
        ),
    ),
    e("proxy-ssl-protocols", BACKEND_TLS_SETTINGS),
    e(
        "proxy-ssl-secret",
        Differs(
            "a Secret of the Ingress's namespace: ca.crt verifies the backends with proxy-ssl-verify \"on\", tls.crt and tls.key are presented as the client certificate",
        ),
    ),
    e("proxy-ssl-server-name", Honoured),
    e(
        "proxy-ssl-verify",
        Differs(
            "\"on\": the chain must end in a CA of proxy-ssl-secret's ca.crt and the certificate be valid for proxy-ssl-name, else 502; verification that cannot be set up (no Secret, no ca.crt, no proxy-ssl-name) keeps the Ingress from being served (fail closed)",
        ),
    ),
    e("proxy-ssl-verify-depth", Honoured),
    e(
        "relative-redirects",
        Unsupported("Location headers of backends are passed through as they are"),
    ),
    e(
        "rewrite-target",
        Differs(
            "the backend receives it instead of the request's path, query kept; $0 … $9 are the groups of the path's regex: with them ImplementationSpecific paths are regexes (as with use-regex), Prefix and Exact paths keep their pathType and have empty groups; a fixed target leaves every path as its pathType says (ingress-nginx makes them regexes)",
        ),
    ),
    e("satisfy", SATISFY),
    e(
        "server-alias",
        Differs(
            "comma-separated names of the Ingress's first rule host, serving every route of that host; a name a rule of any Ingress has is dropped (as ingress-nginx), between aliases the older Ingress wins; the host's certificate is served for an alias only if valid for it; under tenancy an alias is claimed like a host",
        ),
    ),
    e("server-snippet", Refused),
    e(
        "service-upstream",
        Unsupported("requests go to the Service's endpoints directly"),
    ),
    e(
        "session-cookie-change-on-failure",
        Differs(
            "a failure is a failed connection, or a try that proxy-next-upstream retries: the cookie moves to the endpoint that answered",
        ),
    ),
    e(
        "session-cookie-conditional-samesite-none",
        NoOp("SameSite=None is sent to every browser"),
    ),
    e("session-cookie-domain", Honoured),
    e(
        "session-cookie-expires",
        Differs("sent as Max-Age (when session-cookie-max-age is not set), not as an Expires date"),
    ),
    e("session-cookie-max-age", Honoured),
    e("session-cookie-name", Honoured),
    e(
        "session-cookie-path",
        Differs(
            "without it, each route's path; a regular expression path gets / and a warning (ingress-nginx requires the annotation there)",
        ),
    ),
    e("session-cookie-samesite", Honoured),
    e("session-cookie-secure", Honoured),
    e("ssl-ciphers", Unsupported("TLS settings are global (rustls defaults)")),
    e(
        "ssl-passthrough",
        Unsupported("TLS is always terminated by the proxy; the backend gets plain HTTP"),
    ),
    e("ssl-prefer-server-ciphers", NoOp("rustls chooses the cipher suite")),
    e("ssl-redirect", Honoured),
    e("stream-snippet", Refused),
    e("temporal-redirect", URL_REDIRECT),
    e("temporal-redirect-code", REDIRECT_CODE),
    e("upstream-hash-by", HASH),
    e("upstream-hash-by-subset", HASH),
    e("upstream-hash-by-subset-size", HASH),
    e(
        "upstream-vhost",
        Differs(
            "a host name with an optional :port (nginx variables are not read: an error); X-Forwarded-Host keeps the client's Host; a value that is not one keeps the Ingress from being served",
        ),
    ),
    e(
        "use-port-in-redirects",
        NoOp("HTTPS redirects name the --https port whenever it is not 443"),
    ),
    e(
        "use-regex",
        Differs(
            "applies to the ImplementationSpecific paths of the annotated Ingress only; ingress-nginx applies it to every path of the host",
        ),
    ),
    e("whitelist-source-range", SOURCE_RANGE),
    e(
        "x-forwarded-prefix",
        Differs(
            "an absolute path of URI characters (no nginx variables), replacing any X-Forwarded-Prefix the client sent; a value that is not one keeps the Ingress from being served",
        ),
    ),
];

const fn e(name: &'static str, support: Support) -> Entry {
    Entry { name, support }
}

/// How one annotation key is treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Classified {
    pub support: Support,
    /// It controls who may reach the backend and is not honoured: the Ingress is not served
    /// (fail closed).
    pub fails_closed: bool,
}

/// How `key` is treated, or `None` when it is under neither prefix. Unknown names under a
/// prefix are unsupported, or refused for `*-snippet`.
pub fn classify(key: &str) -> Option<Classified> {
    let name = key
        .strip_prefix(NGINX_PREFIX)
        .or_else(|| key.strip_prefix(GENERIC_PREFIX))?;
    let support = match CATALOGUE.binary_search_by(|entry| entry.name.cmp(name)) {
        Ok(index) => CATALOGUE.get(index).map_or(Refused, |entry| entry.support),
        Err(_) if name.ends_with("-snippet") => Refused,
        Err(_) => Unsupported("ingress-nginx does not document this annotation either: check its spelling"),
    };
    let fails_closed = is_access_control(name) && matches!(support, Unsupported(_) | Refused);
    Some(Classified { support, fails_closed })
}

/// `nginx.ingress.kubernetes.io/<name>` or `ingress.kubernetes.io/<name>`, whichever `annotations`
/// holds (the first prefix wins when both are present).
pub(crate) fn value<'a>(annotations: &'a BTreeMap<String, String>, name: &str) -> Option<(&'a str, &'a str)> {
    [NGINX_PREFIX, GENERIC_PREFIX].into_iter().find_map(|prefix| {
        annotations
            .get_key_value(&format!("{prefix}{name}"))
            .map(|(key, value)| (key.as_str(), value.as_str()))
    })
}

/// A boolean annotation as ingress-nginx reads it: `"true"` or `"false"`; anything else is an
/// error naming the annotation, and `default` applies.
pub(crate) fn boolean(
    annotations: &BTreeMap<String, String>,
    name: &str,
    default: bool,
    report: &mut Reporter<'_>,
) -> bool {
    match value(annotations, name) {
        None => default,
        Some((_, "true")) => true,
        Some((_, "false")) => false,
        Some((key, other)) => {
            report.error(
                field(key),
                format!("{other:?} is not a boolean: write \"true\" or \"false\" (read as {default})"),
            );
            default
        }
    }
}

/// The client ranges of an Ingress: `allowlist-source-range` (else its older name
/// `whitelist-source-range`) and `denylist-source-range`, comma-separated CIDR blocks or
/// addresses (either prefix; an empty value restricts nothing). `Ok(None)`: no restriction.
/// `Err(())`: a value does not parse (reported, naming the annotation): the Ingress must not be
/// served, since serving it would admit everybody.
pub(crate) fn source_ranges(
    annotations: &BTreeMap<String, String>,
    report: &mut Reporter<'_>,
) -> Result<Option<Arc<SourceRanges>>, ()> {
    if value(annotations, "allowlist-source-range").is_some()
        && let Some((key, _)) = value(annotations, "whitelist-source-range")
    {
        report.warning(
            field(key),
            "ignored: allowlist-source-range is set too, and takes its place",
        );
    }
    let mut parse = |name: &str| -> Result<Vec<Cidr>, ()> {
        let Some((key, value)) = value(annotations, name) else {
            return Ok(Vec::new());
        };
        let mut blocks = Vec::new();
        let mut failed = false;
        for entry in value.split(',').map(str::trim).filter(|entry| !entry.is_empty()) {
            match entry.parse::<Cidr>() {
                Ok(block) => blocks.push(block),
                Err(err) => {
                    report.error(
                        field(key),
                        format!("{err}: write CIDR blocks or addresses, comma-separated"),
                    );
                    failed = true;
                }
            }
        }
        if failed { Err(()) } else { Ok(blocks) }
    };
    let allowlist = if value(annotations, "allowlist-source-range").is_some() {
        parse("allowlist-source-range")
    } else {
        parse("whitelist-source-range")
    };
    let denylist = parse("denylist-source-range");
    let (allow, deny) = (allowlist?, denylist?);
    if allow.is_empty() && deny.is_empty() {
        return Ok(None);
    }
    Ok(Some(Arc::new(SourceRanges { allow, deny })))
}

/// Whether `target` holds only URI path characters, once its `$n` are taken out.
pub(crate) fn is_path_text(target: &str) -> bool {
    target
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-._~!&'()*+,;=:@/%".contains(&b))
}

/// `rewrite-target` (either prefix): what the backend receives instead of the request's path,
/// fixed or with `$0`…`$9` (the groups of the path's regex). A value that is not an absolute
/// path of URI characters is an error, and not used.
pub(crate) fn rewrite_target(
    annotations: &BTreeMap<String, String>,
    report: &mut Reporter<'_>,
) -> Option<RewriteTarget> {
    let (key, target) = value(annotations, "rewrite-target")?;
    let invalid = |report: &mut Reporter<'_>, why: &str| {
        report.error(field(key), format!("{target:?} {why}: not rewritten"));
    };
    if !target.starts_with('/') || target.starts_with("//") {
        invalid(
            report,
            "is not an absolute path (it must start with / and hold only URI path characters)",
        );
        return None;
    }
    let mut pieces = Vec::new();
    let mut rest = target;
    while let Some(dollar) = rest.find('$') {
        let (text, after) = rest.split_at(dollar);
        if !text.is_empty() {
            pieces.push(RewritePiece::Text(text.to_string()));
        }
        let digit = after.as_bytes().get(1).copied().filter(u8::is_ascii_digit);
        let Some(digit) = digit else {
            invalid(report, "has a $ that is not $0 … $9 (a capture group of the path)");
            return None;
        };
        pieces.push(RewritePiece::Group(usize::from(digit - b'0')));
        rest = after.get(2..).unwrap_or_default();
    }
    if !rest.is_empty() {
        pieces.push(RewritePiece::Text(rest.to_string()));
    }
    let text_ok = pieces.iter().all(|piece| match piece {
        RewritePiece::Text(text) => is_path_text(text),
        RewritePiece::Group(_) => true,
    });
    if !text_ok || (pieces.len() == 1 && target.parse::<http::uri::PathAndQuery>().is_err()) {
        invalid(
            report,
            "is not an absolute path (it must start with / and hold only URI path characters)",
        );
        return None;
    }
    if let Some(Classified { support, .. }) = classify(key) {
        report.warning(field(key), format!("honoured with a difference: {}", support.note()));
    }
    match pieces.as_slice() {
        [RewritePiece::Text(_)] => Some(RewriteTarget::Fixed(Arc::from(target))),
        _ => Some(RewriteTarget::Captures(pieces)),
    }
}

/// `app-root` (either prefix): the absolute path a request for `/` is redirected to (302).
pub(crate) fn app_root(annotations: &BTreeMap<String, String>, report: &mut Reporter<'_>) -> Option<Arc<str>> {
    let (key, root) = value(annotations, "app-root")?;
    let valid = root.starts_with('/')
        && !root.starts_with("//")
        && root != "/"
        && is_path_text(root)
        && root.parse::<http::uri::PathAndQuery>().is_ok();
    if !valid {
        report.error(
            field(key),
            format!("{root:?} is not an absolute path other than / (URI path characters only): no redirect"),
        );
        return None;
    }
    Some(Arc::from(root))
}

/// The canary rule of a canary Ingress: `canary-by-header` (+ `-value`, else `-pattern`),
/// `canary-by-cookie`, `canary-weight` out of `canary-weight-total` (default 100). `Err(())`: a
/// value does not parse (reported, naming the annotation); the canary is not served.
pub(crate) fn canary_rule(annotations: &BTreeMap<String, String>, report: &mut Reporter<'_>) -> Result<CanaryRule, ()> {
    let mut failed = false;
    let mut number = |name: &str, default: u32, report: &mut Reporter<'_>| -> u32 {
        let Some((key, text)) = value(annotations, name) else {
            return default;
        };
        match text.trim().parse::<u32>() {
            Ok(n) if n <= MAX_WEIGHT_TOTAL => n,
            _ => {
                report.error(
                    field(key),
                    format!("{text:?} is not a whole number from 0 to {MAX_WEIGHT_TOTAL}: the canary is not served"),
                );
                failed = true;
                default
            }
        }
    };
    let weight = number("canary-weight", 0, report);
    let total = number("canary-weight-total", 100, report);
    if total == 0 {
        if let Some((key, _)) = value(annotations, "canary-weight-total") {
            report.error(field(key), "0 is not a weight total: the canary is not served");
        }
        failed = true;
    }
    let mut header = None;
    if let Some((key, name)) = value(annotations, "canary-by-header").filter(|(_, name)| !name.is_empty()) {
        match http::HeaderName::from_bytes(name.as_bytes()) {
            Err(_) => {
                report.error(
                    field(key),
                    format!("{name:?} is not a header name: the canary is not served"),
                );
                failed = true;
            }
            Ok(header_name) => {
                let exact = value(annotations, "canary-by-header-value").filter(|(_, value)| !value.is_empty());
                let pattern = value(annotations, "canary-by-header-pattern").filter(|(_, value)| !value.is_empty());
                let rule = match (exact, pattern) {
                    (Some((_, exact)), pattern) => {
                        if let Some((pattern_key, _)) = pattern {
                            report.warning(
                                field(pattern_key),
                                "ignored: canary-by-header-value is set too, and takes its place",
                            );
                        }
                        Some(HeaderRule::Exact(exact.to_string()))
                    }
                    (None, Some((pattern_key, pattern))) => {
                        match regex::RegexBuilder::new(pattern).size_limit(1 << 20).build() {
                            Ok(regex) => Some(HeaderRule::Pattern(regex)),
                            Err(err) => {
                                report.error(
                                    field(pattern_key),
                                    format!("not a regular expression ({err}): the canary is not served"),
                                );
                                failed = true;
                                None
                            }
                        }
                    }
                    (None, None) => Some(HeaderRule::AlwaysNever),
                };
                header = rule.map(|rule| (header_name, rule));
            }
        }
    }
    let mut cookie = None;
    if let Some((key, name)) = value(annotations, "canary-by-cookie").filter(|(_, name)| !name.is_empty()) {
        let token = name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
        if token {
            cookie = Some(name.to_string());
        } else {
            report.error(
                field(key),
                format!("{name:?} is not a cookie name: the canary is not served"),
            );
            failed = true;
        }
    }
    if failed {
        return Err(());
    }
    Ok(CanaryRule {
        header,
        cookie,
        weight,
        total,
    })
}

/// `backend-protocol` (either prefix, any case, as ingress-nginx reads it): how the Ingress's
/// backends are spoken to; `None`: as their Service port says (HTTP/1.1, or h2c by
/// `appProtocol`). A value that is not supported is an error, and the backends get HTTP.
pub(crate) fn backend_protocol(
    annotations: &BTreeMap<String, String>,
    report: &mut Reporter<'_>,
) -> Option<UpstreamProtocol> {
    let (key, text) = value(annotations, "backend-protocol")?;
    match text.trim().to_ascii_uppercase().as_str() {
        "HTTP" | "AUTO_HTTP" => None,
        "HTTPS" => Some(UpstreamProtocol::Https),
        "GRPC" => Some(UpstreamProtocol::H2c),
        "GRPCS" => Some(UpstreamProtocol::H2Tls),
        "FCGI" | "AJP" => {
            report.error(
                field(key),
                format!("{text:?} backends are not supported: spoken to in HTTP instead; put an HTTP server in front of them"),
            );
            None
        }
        _ => {
            report.error(
                field(key),
                format!("{text:?} is not a backend protocol: write HTTP, HTTPS, GRPC or GRPCS (HTTP is used)"),
            );
            None
        }
    }
}

/// `proxy-body-size` (either prefix): the largest request body, in bytes, from an nginx size
/// (`8m`, `512k`, `1g`, `1024`; `0`: no limit). A value that does not parse is an error, and
/// no limit applies.
pub(crate) fn proxy_body_size(annotations: &BTreeMap<String, String>, report: &mut Reporter<'_>) -> Option<u64> {
    let (key, text) = value(annotations, "proxy-body-size")?;
    let trimmed = text.trim();
    let (digits, unit) = match trimmed.char_indices().last() {
        Some((at, c)) if c.is_ascii_alphabetic() => (&trimmed[..at], c.to_ascii_lowercase()),
        _ => (trimmed, 'b'),
    };
    let scale: u64 = match unit {
        'b' => 1,
        'k' => 1 << 10,
        'm' => 1 << 20,
        'g' => 1 << 30,
        _ => 0,
    };
    let parsed = (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) && scale > 0)
        .then(|| digits.parse::<u64>().ok()?.checked_mul(scale))
        .flatten();
    match parsed {
        Some(0) => None,
        Some(bytes) => Some(bytes),
        None => {
            report.error(
                field(key),
                format!("{text:?} is not a size: write bytes, or a number with k, m or g (\"0\": no limit); no limit applies"),
            );
            None
        }
    }
}

/// The per-route timeouts of `proxy-connect-timeout`, `proxy-read-timeout` and
/// `proxy-send-timeout` (either prefix): whole seconds (an `s` suffix allowed), 1 to 3600. A
/// value that does not parse is an error, and the global timeout applies.
pub(crate) fn proxy_timeouts(annotations: &BTreeMap<String, String>, report: &mut Reporter<'_>) -> RouteTimeouts {
    let mut seconds = |name: &str| -> Option<std::time::Duration> {
        let (key, text) = value(annotations, name)?;
        let number = text.trim().strip_suffix('s').unwrap_or(text.trim());
        match number.parse::<u64>() {
            Ok(n) if (1..=3600).contains(&n) && number.bytes().all(|b| b.is_ascii_digit()) => {
                Some(std::time::Duration::from_secs(n))
            }
            _ => {
                report.error(
                    field(key),
                    format!("{text:?} is not a number of seconds from 1 to 3600: the global timeout applies"),
                );
                None
            }
        }
    };
    RouteTimeouts {
        connect: seconds("proxy-connect-timeout"),
        backend_read: seconds("proxy-read-timeout"),
        backend_send: seconds("proxy-send-timeout"),
        ..RouteTimeouts::default()
    }
}

/// The field path of an annotation in issues. Keys from manifest files are not validated by an
/// API server: control characters are escaped, so a key cannot forge a log line.
pub(crate) fn field(key: &str) -> String {
    format!("metadata.annotations[{}]", key.escape_debug())
}

/// What the annotations of one Ingress decide before its rules are looked at.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Verdict {
    /// Access-control annotations that are not honoured, by full key: the Ingress is not served.
    pub(crate) unhonoured_access: Vec<String>,
    /// The key of `canary: "true"` (either prefix): the Ingress is a canary, its backend an
    /// alternative on its primary's routes.
    pub(crate) canary: Option<String>,
}

/// Reports every ingress-nginx annotation of an Ingress that is not simply honoured, and
/// returns which ones keep it from being served.
pub(crate) fn report(annotations: &BTreeMap<String, String>, report: &mut Reporter<'_>) -> Verdict {
    let mut verdict = Verdict::default();
    for key in annotations.keys() {
        let Some(Classified {
            support,
            fails_closed: access,
        }) = classify(key)
        else {
            continue;
        };
        if access {
            verdict.unhonoured_access.push(key.clone());
        }
        let name = key
            .strip_prefix(NGINX_PREFIX)
            .or_else(|| key.strip_prefix(GENERIC_PREFIX));
        if name == Some("rewrite-target") {
            // Reported by `rewrite_target`, which knows whether this value is used.
            continue;
        }
        if annotations.get(key).is_some_and(|value| value == "true") && name == Some("canary") {
            // Reported by the caller, which withholds the Ingress.
            verdict.canary.get_or_insert_with(|| key.clone());
            continue;
        }
        let is_canary = value(annotations, "canary").is_some_and(|(_, value)| value == "true");
        if !is_canary && name.is_some_and(|name| name.starts_with("canary")) {
            report.warning(
                field(key),
                "ignored: the Ingress is not a canary (nginx.ingress.kubernetes.io/canary: \"true\" makes it one)",
            );
            continue;
        }
        let consequence = if access {
            ", so the Ingress is not served"
        } else {
            "; ignored"
        };
        let message = match support {
            Honoured => continue,
            Differs(note) => format!("honoured with a difference: {note}"),
            NoOp(note) => format!("accepted, without effect: {note}"),
            Unsupported("") => format!("not supported{consequence}"),
            Unsupported(note) => format!("not supported{consequence}: {note}"),
            Refused => format!("refused as unsafe, never executed: {}", support.note()),
        };
        if access || support == Refused {
            report.error(field(key), message);
        } else {
            report.warning(field(key), message);
        }
    }
    if let Some(first) = verdict.unhonoured_access.first() {
        report.error(
            "metadata.annotations",
            format!(
                "the Ingress is not served: its access control ({first}{}) is not supported, and serving it without \
                 would expose what it protects; remove the annotation to serve it unprotected",
                if verdict.unhonoured_access.len() > 1 {
                    " and others"
                } else {
                    ""
                },
            ),
        );
    }
    verdict
}

/// The README's table of the catalogue (between its `annotation-table` markers): one row per
/// annotation, its class and note.
pub fn markdown_table() -> String {
    let mut out = String::from(
        "| annotation (`nginx.ingress.kubernetes.io/` or `ingress.kubernetes.io/` + …) | Vestibule | note |\n| --- | --- | --- |\n",
    );
    for entry in CATALOGUE {
        let note = entry.support.note();
        let fails_closed = classify(&format!("{NGINX_PREFIX}{}", entry.name)).is_some_and(|c| c.fails_closed);
        let note = if fails_closed {
            format!("**the Ingress is not served** (fail closed); {note}")
        } else {
            note.to_string()
        };
        out.push_str(&format!("| `{}` | {} | {note} |\n", entry.name, entry.support.label()));
    }
    out
}

#[cfg(test)]
mod tests;
