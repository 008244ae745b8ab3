//! The dashboard at `/`: one HTML page rendered on the server from the published state
//! (generation, readiness, issues, routes, object status). No JavaScript, no external assets,
//! no build step.
//!
//! Routes are rendered from [`RouteTable::describe`](crate::routes::RouteTable::describe)'s
//! JSON by a generic renderer (objects become key/value tables, lists of flat objects become
//! tables, lists of scalars become comma-separated text), so the page follows that JSON's shape
//! without knowing it. Every string that comes from user input goes through [`escape`].

use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use serde_json::Value;

use super::{AdminState, api};
use crate::config::Issue;
use crate::controller::Published;

/// Nesting beyond this is shown as raw JSON rather than recursing further.
const MAX_DEPTH: usize = 24;

const STYLE: &str = "\
body{font:14px/1.4 system-ui,sans-serif;margin:0 auto;max-width:1200px;padding:0 1em 2em;color:#222}\
header{border-bottom:1px solid #ccc;margin-bottom:1em}h1{margin:.5em 0 .2em}\
h2{margin-top:1.5em;border-bottom:1px solid #eee}h3{margin:1em 0 .3em;font-size:1em}\
table{border-collapse:collapse;margin:.2em 0}th,td{border:1px solid #ddd;padding:.2em .5em;\
text-align:left;vertical-align:top}th{background:#f6f6f6;font-weight:600}\
table.kv>tbody>tr>th{background:#fafafa;font-weight:normal;color:#555}\
.item{border-left:3px solid #ddd;padding-left:.5em;margin:.4em 0}\
.muted{color:#888}.ok{color:#070;font-weight:600}.bad{color:#b00;font-weight:600}\
tr.error td{background:#fde2e2}tr.warning td{background:#fff3cd}\
.badge{display:inline-block;padding:0 .5em;border-radius:.7em;font-size:.9em}\
.badge.error{background:#b00;color:#fff}.badge.warning{background:#e0a800;color:#000}\
pre{margin:0;white-space:pre-wrap}nav a{margin-right:1em}code{font-size:.95em}";

/// Renders the whole page.
pub fn render(state: &AdminState, published: &Published) -> String {
    let mut out = String::with_capacity(16 * 1024);
    out.push_str("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">");
    out.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">");
    out.push_str("<title>Vestibule</title><style>");
    out.push_str(STYLE);
    out.push_str("</style></head><body>\n");
    summary(&mut out, state, published);
    issues(&mut out, &published.issues);
    routes(&mut out, published);
    statuses(&mut out, published);
    out.push_str("</body></html>\n");
    out
}

fn summary(out: &mut String, state: &AdminState, published: &Published) {
    let readiness = if state.draining.load(Ordering::Acquire) {
        "<span class=\"bad\">draining</span>"
    } else if state.publication.is_applied() {
        "<span class=\"ok\">ready</span>"
    } else {
        "<span class=\"bad\">not ready</span>"
    };
    let errors = published.issues.iter().filter(|i| i.is_error()).count();
    let warnings = published.issues.len() - errors;
    let _ = write!(
        out,
        "<header><h1>Vestibule</h1><p>Configuration generation <strong id=\"generation\">{}</strong> · {} · \
         {} routes · {} backends · {} objects with status · ",
        published.generation,
        readiness,
        published.table.routes.len(),
        published.table.backends.len(),
        published.statuses.len(),
    );
    if errors > 0 {
        let _ = write!(out, "<span class=\"badge error\">{errors} errors</span> ");
    }
    if warnings > 0 {
        let _ = write!(out, "<span class=\"badge warning\">{warnings} warnings</span>");
    }
    if errors + warnings == 0 {
        out.push_str("no issues");
    }
    out.push_str(
        "</p><nav><a href=\"/\">refresh</a><a href=\"/api/routes\">/api/routes</a>\
         <a href=\"/api/status\">/api/status</a><a href=\"/api/issues\">/api/issues</a>\
         <a href=\"/metrics\">/metrics</a></nav></header>\n",
    );
}

fn issues(out: &mut String, issues: &[Issue]) {
    let _ = write!(out, "<section id=\"issues\"><h2>Issues ({})</h2>", issues.len());
    if issues.is_empty() {
        out.push_str("<p class=\"muted\">No problems in the current objects.</p></section>\n");
        return;
    }
    out.push_str("<table><tr><th>severity</th><th>object</th><th>origin</th><th>field</th><th>message</th></tr>");
    for issue in issues {
        let severity = api::severity(issue);
        let _ = write!(out, "<tr class=\"{severity}\"><td>{severity}</td><td>");
        match &issue.subject.object {
            Some(object) => escape_into(out, &object.to_string()),
            None => out.push_str("<span class=\"muted\">—</span>"),
        }
        out.push_str("</td><td>");
        match &issue.subject.origin {
            Some(origin) => escape_into(out, &origin.to_string()),
            None => out.push_str("<span class=\"muted\">—</span>"),
        }
        out.push_str("</td><td><code>");
        escape_into(out, &issue.field);
        out.push_str("</code></td><td>");
        escape_into(out, &issue.message);
        out.push_str("</td></tr>");
    }
    out.push_str("</table></section>\n");
}

fn routes(out: &mut String, published: &Published) {
    out.push_str("<section id=\"routes\"><h2>Routes</h2>");
    let described = published.table.describe();
    match &described {
        Value::Object(sections) if !sections.is_empty() => {
            for (name, value) in sections {
                out.push_str("<h3>");
                escape_into(out, name);
                out.push_str("</h3>");
                render_value(out, value, 1);
            }
        }
        Value::Object(_) | Value::Null => out.push_str("<p class=\"muted\">No routes.</p>"),
        other => render_value(out, other, 1),
    }
    out.push_str("</section>\n");
}

fn statuses(out: &mut String, published: &Published) {
    let _ = write!(
        out,
        "<section id=\"status\"><h2>Status ({})</h2>",
        published.statuses.len()
    );
    if published.statuses.is_empty() {
        out.push_str("<p class=\"muted\">No objects owned by Vestibule.</p></section>\n");
        return;
    }
    out.push_str("<table><tr><th>kind</th><th>object</th><th>status</th></tr>");
    for status in published.statuses.iter() {
        out.push_str("<tr><td>");
        escape_into(out, &status.kind);
        out.push_str("</td><td>");
        if !status.namespace.is_empty() {
            escape_into(out, &status.namespace);
            out.push('/');
        }
        escape_into(out, &status.name);
        out.push_str("</td><td>");
        render_value(out, &status.status, 1);
        out.push_str("</td></tr>");
    }
    out.push_str("</table></section>\n");
}

/// Renders any JSON value as HTML (see the module documentation).
pub fn render_value(out: &mut String, value: &Value, depth: usize) {
    if depth > MAX_DEPTH {
        out.push_str("<pre>");
        escape_into(out, &value.to_string());
        out.push_str("</pre>");
        return;
    }
    match value {
        Value::Null => out.push_str("<span class=\"muted\">—</span>"),
        Value::Bool(_) | Value::Number(_) | Value::String(_) => scalar(out, value),
        Value::Array(items) if items.is_empty() => out.push_str("<span class=\"muted\">none</span>"),
        Value::Array(items) if items.iter().all(is_scalar) => {
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                scalar(out, item);
            }
        }
        Value::Array(items) if items.iter().all(is_flat_object) => flat_table(out, items, depth),
        Value::Array(items) => {
            for item in items {
                out.push_str("<div class=\"item\">");
                render_value(out, item, depth + 1);
                out.push_str("</div>");
            }
        }
        Value::Object(map) if map.is_empty() => out.push_str("<span class=\"muted\">{}</span>"),
        Value::Object(map) => {
            out.push_str("<table class=\"kv\">");
            for (key, value) in map {
                out.push_str("<tr><th>");
                escape_into(out, key);
                out.push_str("</th><td>");
                render_value(out, value, depth + 1);
                out.push_str("</td></tr>");
            }
            out.push_str("</table>");
        }
    }
}

fn scalar(out: &mut String, value: &Value) {
    match value {
        Value::String(s) => escape_into(out, s),
        Value::Null => out.push_str("<span class=\"muted\">—</span>"),
        other => escape_into(out, &other.to_string()),
    }
}

fn is_scalar(value: &Value) -> bool {
    !matches!(value, Value::Array(_) | Value::Object(_))
}

/// An object whose fields are scalars or lists of scalars: one table row.
fn is_flat_object(value: &Value) -> bool {
    match value {
        Value::Object(map) => map.values().all(|v| match v {
            Value::Array(items) => items.iter().all(is_scalar),
            Value::Object(_) => false,
            _ => true,
        }),
        _ => false,
    }
}

/// A list of flat objects as one table; columns are the union of their keys, in first-seen order.
fn flat_table(out: &mut String, items: &[Value], depth: usize) {
    let mut columns: Vec<&str> = Vec::new();
    for item in items {
        if let Value::Object(map) = item {
            for key in map.keys() {
                if !columns.contains(&key.as_str()) {
                    columns.push(key);
                }
            }
        }
    }
    out.push_str("<table><tr>");
    for column in &columns {
        out.push_str("<th>");
        escape_into(out, column);
        out.push_str("</th>");
    }
    out.push_str("</tr>");
    for item in items {
        out.push_str("<tr>");
        for column in &columns {
            out.push_str("<td>");
            match item.get(column) {
                Some(value) => render_value(out, value, depth + 1),
                None => out.push_str("<span class=\"muted\">—</span>"),
            }
            out.push_str("</td>");
        }
        out.push_str("</tr>");
    }
    out.push_str("</table>");
}

/// HTML-escapes `text` (safe in element content and in quoted attribute values).
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    escape_into(&mut out, text);
    out
}

fn escape_into(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn html(value: &Value) -> String {
        let mut out = String::new();
        render_value(&mut out, value, 0);
        out
    }

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            escape(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }

    #[test]
    fn lists_of_flat_objects_become_tables() {
        let page = html(&json!([
            {"path": "/a", "endpoints": ["10.0.0.1:80", "10.0.0.2:80"]},
            {"path": "/b", "backend": "<b>"},
        ]));
        assert!(page.starts_with("<table><tr><th>"), "{page}");
        for column in ["<th>path</th>", "<th>endpoints</th>", "<th>backend</th>"] {
            assert_eq!(page.matches(column).count(), 1, "{page}");
        }
        assert!(page.contains("<td>10.0.0.1:80, 10.0.0.2:80</td>"), "{page}");
        assert!(page.contains("<td>&lt;b&gt;</td>"), "{page}");
    }

    #[test]
    fn nested_values_and_keys_are_escaped() {
        let page = html(&json!({"<k>": {"hosts": [{"host": "a", "paths": [{"path": "<script>"}]}]}}));
        assert!(!page.contains("<script>") && !page.contains("<k>"), "{page}");
        assert!(page.contains("&lt;script&gt;") && page.contains("&lt;k&gt;"), "{page}");
    }

    #[test]
    fn deep_nesting_is_cut_off_as_escaped_json() {
        let mut value = json!("<deep>");
        for _ in 0..100 {
            value = json!([value, {"x": 1}]);
        }
        let page = html(&value);
        assert!(page.contains("<pre>") && !page.contains("<deep>"));
    }
}
