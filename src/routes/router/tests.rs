use std::collections::HashMap;
use std::sync::Arc;

use http::{HeaderMap, Method, StatusCode};

use std::borrow::Cow;

use super::*;
use crate::routes::{RouteAction, RouteTimeouts, WildcardHost};

fn route(name: &str) -> Route {
    Route {
        name: Arc::from(name),
        action: RouteAction::Respond(StatusCode::OK),
        unavailable: StatusCode::SERVICE_UNAVAILABLE,
        timeouts: RouteTimeouts::default(),
        https_redirect: Default::default(),
        source_ranges: None,
        rewrite_path: None,
        app_root: None,
        canary: None,
        max_body: None,
        auth: None,
        grpc: false,
        cors: None,
        limits: None,
        affinity: None,
        mirror: None,
        retry: None,
        redirect: None,
        headers: None,
    }
}

fn candidates(route: usize) -> Vec<Candidate> {
    vec![Candidate {
        conditions: Conditions::default(),
        route,
    }]
}

/// routes: 0 exact /foo, 1 prefix /foo, 2 prefix /, 3 wildcard prefix /, 4 catch-all prefix /api
fn table() -> RouteTable {
    let mut exact_host = VirtualHost {
        name: "a.example".into(),
        ..Default::default()
    };
    exact_host.exact.insert("/foo".into(), candidates(0));
    exact_host.prefix.insert("/foo".into(), candidates(1));
    exact_host.prefix.insert("".into(), candidates(2));
    let mut wildcard = VirtualHost {
        name: "*.example".into(),
        ..Default::default()
    };
    wildcard.prefix.insert("".into(), candidates(3));
    let mut catch_all = VirtualHost {
        name: "*".into(),
        ..Default::default()
    };
    catch_all.prefix.insert("/api".into(), candidates(4));
    let http = HttpRouter {
        vhosts: vec![exact_host, wildcard, catch_all],
        client_certificates: false,
        exact: HashMap::from([("a.example".to_string(), 0)]),
        wildcard: HashMap::from([(
            "example".to_string(),
            WildcardHost {
                vhost: 1,
                any_depth: false,
            },
        )]),
        catch_all: Some(2),
    };
    RouteTable {
        http: Arc::new(http),
        routes: Arc::new((0..5).map(|i| route(&format!("r{i}"))).collect()),
        ..Default::default()
    }
}

fn find<'t>(table: &'t RouteTable, host: &str, path: &str) -> Option<&'t str> {
    let headers = HeaderMap::new();
    let request = RequestInfo {
        host,
        path,
        query: None,
        method: &Method::GET,
        headers: &headers,
    };
    table.find(&request).map(|r| &*r.name)
}

#[test]
fn exact_beats_prefix_of_equal_length() {
    let t = table();
    assert_eq!(find(&t, "a.example", "/foo"), Some("r0"));
    assert_eq!(find(&t, "a.example", "/foo/"), Some("r1"));
    assert_eq!(find(&t, "a.example", "/foo/bar"), Some("r1"));
}

#[test]
fn prefix_matches_by_path_element() {
    let t = table();
    assert_eq!(find(&t, "a.example", "/foobar"), Some("r2"));
    assert_eq!(find(&t, "a.example", "/"), Some("r2"));
}

#[test]
fn hosts_are_case_insensitive_and_ignore_port_and_trailing_dot() {
    let t = table();
    assert_eq!(find(&t, "A.Example:8080", "/foo"), Some("r0"));
    assert_eq!(find(&t, "a.example.", "/foo"), Some("r0"));
}

#[test]
fn ingress_wildcard_matches_exactly_one_label() {
    let t = table();
    assert_eq!(find(&t, "b.example", "/x"), Some("r3"));
    // Two labels deep: not the wildcard, so the catch-all, which has no route for /x.
    assert_eq!(find(&t, "c.b.example", "/x"), None);
    assert_eq!(find(&t, "c.b.example", "/api/v1"), Some("r4"));
    // The bare suffix is not matched by the wildcard either.
    assert_eq!(find(&t, "example", "/api"), Some("r4"));
}

#[test]
fn no_fallthrough_from_a_matched_host_to_the_catch_all() {
    let mut t = table();
    Arc::make_mut(&mut t.http).vhosts[0].prefix.remove("");
    assert_eq!(find(&t, "a.example", "/api"), None);
}

#[test]
fn fallback_applies_when_no_path_matches() {
    let mut t = table();
    Arc::make_mut(&mut t.http).vhosts[2].fallback = Some(3);
    assert_eq!(find(&t, "unknown.host", "/nothing"), Some("r3"));
}

#[test]
fn normalize_host_handles_ipv6_literals() {
    assert_eq!(normalize_host("[::1]:8080"), "[::1]");
    assert_eq!(normalize_host("[::1]"), "[::1]");
    assert_eq!(normalize_host("Example.COM"), "example.com");
}

#[test]
fn conditions_are_checked_in_candidate_order() {
    let mut t = table();
    let mut headers_condition = Conditions::default();
    headers_condition.headers.push(crate::routes::HeaderCondition {
        name: http::HeaderName::from_static("x-canary"),
        value: ValueMatch::Exact("yes".into()),
    });
    Arc::make_mut(&mut t.http).vhosts[0].exact.insert(
        "/c".into(),
        vec![
            Candidate {
                conditions: headers_condition,
                route: 4,
            },
            Candidate {
                conditions: Conditions::default(),
                route: 3,
            },
        ],
    );
    let mut headers = HeaderMap::new();
    let plain = RequestInfo {
        host: "a.example",
        path: "/c",
        query: None,
        method: &Method::GET,
        headers: &headers,
    };
    assert_eq!(t.find(&plain).map(|r| &*r.name), Some("r3"));
    headers.insert("x-canary", "yes".parse().unwrap());
    let canary = RequestInfo {
        host: "a.example",
        path: "/c",
        query: Some("a=1"),
        method: &Method::GET,
        headers: &headers,
    };
    assert_eq!(t.find(&canary).map(|r| &*r.name), Some("r4"));
}

#[test]
fn query_values_are_found_by_name() {
    assert_eq!(query_value(Some("a=1&b=2"), "b"), Some("2"));
    assert_eq!(query_value(Some("a"), "a"), Some(""));
    assert_eq!(query_value(None, "a"), None);
}

#[test]
fn normalize_path_removes_dot_segments_and_merges_slashes() {
    let cases = [
        ("/", "/"),
        ("/a/b", "/a/b"),
        ("/a/b/", "/a/b/"),
        ("/public/../admin", "/admin"),
        ("/public/./x", "/public/x"),
        ("/a//b///c", "/a/b/c"),
        ("/..", "/"),
        ("/../../etc", "/etc"),
        ("/a/b/..", "/a/"),
        ("/a/.", "/a/"),
        ("/%2e%2e/admin", "/admin"),
        ("/%2E%2e/admin", "/admin"),
        ("/a%2Fb", "/a%2Fb"),
        ("/%7Euser", "/~user"),
        ("/caf%C3%A9", "/caf%C3%A9"),
        ("/x%", "/x%"),
        ("/x%2", "/x%2"),
        ("/.hidden", "/.hidden"),
        ("/a/..b", "/a/..b"),
        ("*", "*"),
    ];
    for (input, expected) in cases {
        assert_eq!(normalize_path(input), expected, "{input}");
    }
    assert!(matches!(normalize_path("/plain/path"), Cow::Borrowed(_)));
    assert!(
        matches!(normalize_path("/a/.well-known"), Cow::Borrowed(_)),
        "nothing to change: borrowed"
    );
}
