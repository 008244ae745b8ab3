//! ingress-nginx's `custom-headers`: a ConfigMap (`NAMESPACE/NAME`, or `NAME` in the Ingress's
//! namespace) whose `data` are headers set on every response of the Ingress's routes.
//!
//! As ingress-nginx: each name must be in the operator's allow-list
//! (`--allowed-response-headers`, its `global-allowed-response-headers`), names are letters,
//! digits, `-` and `_`, values visible characters and spaces. Values are data: a value with
//! CR, LF or another control character is refused, never written. Framing and connection
//! headers (`Content-Length`, `Transfer-Encoding`, `Connection`, …) are refused whatever the
//! allow-list says: they would change how the answer is read, not what it says.
//!
//! Anything wrong keeps the Ingress from being served in that version (an error naming it and
//! the annotation); a bad entry is also an error of the ConfigMap (field `data[NAME]`), so the
//! controller keeps serving its last good version. The ConfigMap is read from the snapshot:
//! in Kubernetes mode every ConfigMap is watched, so an edit applies at the next translation.

use std::collections::BTreeMap;

use http::{HeaderName, HeaderValue};

use crate::config::{Kind, Object, Snapshot};

use super::Reporter;
use super::annotations::{field, value};

/// Never set from a ConfigMap: they frame or route the answer.
const FORBIDDEN: &[&str] = &[
    "connection",
    "content-length",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// The response headers of `custom-headers` (either prefix), sorted by name; empty without
/// the annotation. `allowed`: the allow-list (compared without case). `Err(())`: reported;
/// the Ingress must not be served.
pub(crate) fn ingress_custom_headers(
    namespace: &str,
    annotations: &BTreeMap<String, String>,
    snapshot: &Snapshot,
    allowed: &[String],
    report: &mut Reporter<'_>,
) -> Result<Vec<(HeaderName, HeaderValue)>, ()> {
    let Some((key, text)) = value(annotations, "custom-headers") else {
        return Ok(Vec::new());
    };
    let text = text.trim();
    let (map_namespace, name) = text.split_once('/').unwrap_or((namespace, text));
    let valid_name = |part: &str| {
        !part.is_empty()
            && part.len() <= 253
            && part
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
    };
    if !valid_name(map_namespace) || !valid_name(name) {
        report.error(
            field(key),
            format!("{text:?} is not a ConfigMap reference (NAMESPACE/NAME or NAME): the Ingress is not served"),
        );
        return Err(());
    }
    if map_namespace != namespace {
        report.error(
            field(key),
            format!(
                "ConfigMap {map_namespace}/{name} is in another namespace than the Ingress ({namespace}): only the \
                 Ingress's own namespace is read (as ingress-nginx without allow-cross-namespace-resources); the \
                 Ingress is not served"
            ),
        );
        return Err(());
    }
    let Some(stored) = snapshot.get(Kind::ConfigMap, map_namespace, name) else {
        report.error(
            field(key),
            format!("ConfigMap {map_namespace}/{name} does not exist: the Ingress is not served"),
        );
        return Err(());
    };
    let Object::ConfigMap(config_map) = &stored.object else {
        return Err(());
    };
    let ingress = report.object_name();
    let config_key = stored.key();
    let mut on_map = Reporter {
        key: &config_key,
        origin: &stored.origin,
        issues: &mut *report.issues,
    };
    let mut headers = Vec::new();
    let mut bad_entries = 0;
    let mut not_allowed = Vec::new();
    for (header, text) in &config_map.data {
        let data_field = format!("data[{}]", header.escape_debug());
        let name_ok = !header.is_empty()
            && header
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        let Some(name) = name_ok
            .then(|| HeaderName::from_bytes(header.as_bytes()).ok())
            .flatten()
        else {
            on_map.error(
                &data_field,
                format!(
                    "not a header name (letters, digits, - and _), used by custom-headers of Ingress {ingress}, which \
                     is not served"
                ),
            );
            bad_entries += 1;
            continue;
        };
        if FORBIDDEN.contains(&name.as_str()) {
            on_map.error(
                &data_field,
                format!(
                    "{} frames the answer and is never set from custom-headers (Ingress {ingress} is not served)",
                    name.as_str()
                ),
            );
            bad_entries += 1;
            continue;
        }
        let value_ok = !text.is_empty() && text.bytes().all(|b| b == b' ' || b.is_ascii_graphic());
        let Some(value) = value_ok.then(|| HeaderValue::from_str(text).ok()).flatten() else {
            on_map.error(
                &data_field,
                format!(
                    "{:?} is not a header value (visible ASCII characters and spaces only; CR, LF and other control \
                     characters are refused), used by custom-headers of Ingress {ingress}, which is not served",
                    shorten(text)
                ),
            );
            bad_entries += 1;
            continue;
        };
        if !allowed
            .iter()
            .any(|allowed| allowed.trim().eq_ignore_ascii_case(header))
        {
            not_allowed.push(header.clone());
            continue;
        }
        headers.push((name, value));
    }
    if bad_entries > 0 {
        report.error(
            field(key),
            format!(
                "ConfigMap {map_namespace}/{name} has {bad_entries} entr{} that cannot be a response header (see its \
                 errors): the Ingress is not served",
                if bad_entries == 1 { "y" } else { "ies" }
            ),
        );
        return Err(());
    }
    if !not_allowed.is_empty() {
        let list = if allowed.is_empty() {
            "none is allowed".to_string()
        } else {
            format!("allowed: {}", allowed.join(", "))
        };
        report.error(
            field(key),
            format!(
                "ConfigMap {map_namespace}/{name} sets {} not in --allowed-response-headers (ingress-nginx's \
                 global-allowed-response-headers; {list}): the Ingress is not served",
                not_allowed
                    .iter()
                    .map(|header| header.escape_debug().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        );
        return Err(());
    }
    headers.sort_by(|a, b| a.0.as_str().cmp(b.0.as_str()));
    Ok(headers)
}

/// At most 60 characters of `text`, control characters escaped by `{:?}` where printed.
fn shorten(text: &str) -> String {
    text.chars().take(60).collect()
}

#[cfg(test)]
mod tests;
