//! The dashboard at `/`: a static page, its script and its style sheet, embedded in the binary
//! (`include_str!`: no build step, nothing fetched from elsewhere). The page asks the JSON API
//! of [`super::browse`] for what it shows, page by page, so its size does not grow with the
//! number of routes.
//!
//! Served with a strict `Content-Security-Policy`: scripts, styles and requests only from this
//! server, no inline script or style, no frames, no forms. The script writes every value it
//! shows as text (`textContent`), never as markup, so hostile names stay text.

use bytes::Bytes;
use http::header::{
    CONTENT_SECURITY_POLICY, HeaderName, HeaderValue, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use http::{Response, StatusCode};
use http_body_util::Full;

const PAGE: &str = include_str!("dashboard/index.html");
const SCRIPT: &str = include_str!("dashboard/dashboard.js");
const STYLE: &str = include_str!("dashboard/dashboard.css");

/// What the page may load: its own script, style sheet and API, nothing else.
pub const CONTENT_SECURITY_POLICY_VALUE: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The dashboard's files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Asset {
    /// `/`
    Page,
    /// `/dashboard.js`
    Script,
    /// `/dashboard.css`
    Style,
}

/// Serves one of the dashboard's files with its security headers.
pub fn asset(asset: Asset) -> Response<Full<Bytes>> {
    let (content_type, body) = match asset {
        Asset::Page => ("text/html; charset=utf-8", PAGE),
        Asset::Script => ("text/javascript; charset=utf-8", SCRIPT),
        Asset::Style => ("text/css; charset=utf-8", STYLE),
    };
    let mut response = super::with_type(StatusCode::OK, content_type, body);
    let headers = response.headers_mut();
    let fixed: [(HeaderName, &'static str); 4] = [
        (CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY_VALUE),
        (X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (REFERRER_POLICY, "no-referrer"),
        (X_FRAME_OPTIONS, "DENY"),
    ];
    for (name, value) in fixed {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_loads_only_its_own_files() {
        assert!(PAGE.contains("src=\"/dashboard.js\"") && PAGE.contains("href=\"/dashboard.css\""));
        for text in [PAGE, SCRIPT, STYLE] {
            assert!(
                !text.contains("http://") && !text.contains("https://"),
                "no outside address"
            );
        }
        // No inline script or style: the policy would refuse them.
        assert!(!PAGE.contains("<script>") && !PAGE.contains("<style") && !PAGE.contains(" style="));
        for handler in [" onclick=", " onload=", " onerror=", "javascript:"] {
            assert!(!PAGE.contains(handler), "inline handler {handler}");
        }
    }

    #[test]
    fn the_script_never_writes_markup() {
        for forbidden in [
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
            "eval(",
        ] {
            assert!(!SCRIPT.contains(forbidden), "{forbidden} in dashboard.js");
        }
    }

    #[test]
    fn assets_carry_the_policy() {
        for which in [Asset::Page, Asset::Script, Asset::Style] {
            let response = asset(which);
            assert_eq!(
                response.headers()[CONTENT_SECURITY_POLICY],
                CONTENT_SECURITY_POLICY_VALUE
            );
            assert_eq!(response.headers()[X_CONTENT_TYPE_OPTIONS], "nosniff");
        }
    }
}
