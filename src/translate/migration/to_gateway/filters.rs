//! The redirect and header annotations as Gateway API filters: `permanent-redirect` /
//! `temporal-redirect` → `RequestRedirect`, `upstream-vhost` → `URLRewrite` hostname,
//! `x-forwarded-prefix` → `RequestHeaderModifier`, `custom-headers` → `ResponseHeaderModifier`.
//! Each says what it cannot express, so the conversion can note it or leave the Ingress out.

use serde_json::{Value, json};

use crate::routes::auth::SigninPiece;
use crate::routes::{RouteHeaders, RouteRedirect};

/// Status codes an HTTPRoute `RequestRedirect` may carry.
const GATEWAY_REDIRECT_CODES: [u16; 5] = [301, 302, 303, 307, 308];

/// A `RequestRedirect` filter answering as `redirect` does, plus notes of what differs; `Err`:
/// it cannot be expressed (why).
pub(super) fn redirect_filter(redirect: &RouteRedirect) -> Result<(Value, Vec<String>), String> {
    let RouteRedirect::Url { status, url } = redirect else {
        return Err("a www redirect is emitted as a route of its own".to_string());
    };
    let code = status.as_u16();
    if !GATEWAY_REDIRECT_CODES.contains(&code) {
        return Err(format!(
            "redirect status {code} has no Gateway API equivalent (301, 302, 303, 307, 308)"
        ));
    }
    // Literal text, then at most `$request_uri` at the very end (the request's path and query
    // kept, which is what a RequestRedirect without a path does).
    let (text, keeps_target) = match url.pieces.as_slice() {
        [SigninPiece::Text(text)] => (text.as_str(), false),
        [SigninPiece::Text(text), SigninPiece::RequestUri] => (text.as_str(), true),
        _ => {
            return Err(format!(
                "redirect URL {:?} uses nginx variables other than a final $request_uri",
                url.template()
            ));
        }
    };
    let uri = text
        .parse::<http::Uri>()
        .map_err(|err| format!("redirect URL {text:?} does not parse ({err})"))?;
    let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
        return Err(format!("redirect URL {text:?} is not absolute"));
    };
    let mut filter = json!({"scheme": scheme, "hostname": authority.host(), "statusCode": code});
    if let Some(port) = authority.port_u16() {
        filter["port"] = json!(port);
    }
    let mut notes = Vec::new();
    let path = uri.path();
    if keeps_target {
        if !matches!(path, "" | "/") || uri.query().is_some() {
            return Err(format!(
                "redirect URL {:?} puts $request_uri after a path: a RequestRedirect keeps or replaces the path, it \
                 cannot prefix it",
                url.template()
            ));
        }
    } else {
        let full = if path.is_empty() { "/" } else { path };
        filter["path"] = json!({"type": "ReplaceFullPath", "replaceFullPath": full});
        if uri.query().is_some() {
            return Err(format!(
                "redirect URL {text:?} has a query, which a RequestRedirect cannot set"
            ));
        }
        notes.push(
            "the redirect's Location keeps the request's query string (a RequestRedirect cannot drop it; \
             ingress-nginx sends the URL as written)"
                .to_string(),
        );
    }
    if !matches!(code, 301 | 302) {
        notes.push(format!(
            "redirect status {code} is an extended Gateway API feature: check that the implementation supports it"
        ));
    }
    Ok((json!({"type": "RequestRedirect", "requestRedirect": filter}), notes))
}

/// The request and response header filters of `headers` (a `URLRewrite` hostname for
/// `upstream-vhost`, merged by the caller with a path rewrite), and notes of what differs.
pub(super) fn header_filters(headers: &RouteHeaders) -> (Option<String>, Vec<Value>, Vec<String>) {
    let mut filters = Vec::new();
    let mut notes = Vec::new();
    let text = |value: &http::HeaderValue| String::from_utf8_lossy(value.as_bytes()).into_owned();
    let hostname = headers.upstream_host.as_ref().map(|host| {
        let host = text(host);
        match host.split_once(':') {
            Some((name, _)) => {
                notes.push(format!(
                    "upstream-vhost {host:?}: a URLRewrite hostname has no port; the backend is sent Host {name:?}"
                ));
                name.to_string()
            }
            None => host,
        }
    });
    if let Some(prefix) = &headers.forwarded_prefix {
        filters.push(json!({
            "type": "RequestHeaderModifier",
            "requestHeaderModifier": {"set": [{"name": "X-Forwarded-Prefix", "value": text(prefix)}]},
        }));
    }
    if !headers.response.is_empty() {
        let set: Vec<Value> = headers
            .response
            .iter()
            .map(|(name, value)| json!({"name": name.as_str(), "value": text(value)}))
            .collect();
        filters.push(json!({"type": "ResponseHeaderModifier", "responseHeaderModifier": {"set": set}}));
        notes.push(
            "custom-headers become a ResponseHeaderModifier, which no allow-list restricts (ingress-nginx's \
             global-allowed-response-headers, Vestibule's --allowed-response-headers)"
                .to_string(),
        );
    }
    (hostname, filters, notes)
}
