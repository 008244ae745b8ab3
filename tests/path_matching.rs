//! Property test: path matching through `translate()` + `RouteTable::find` agrees with a plain
//! reference model written straight from the Kubernetes Ingress documentation:
//!
//! - `Exact` matches the URL path exactly (case-sensitive);
//! - `Prefix` matches element-wise: the path is split by `/`, and it matches when its elements
//!   are a prefix of the request's elements (a trailing slash is ignored, `/` matches all);
//!   `ImplementationSpecific` is `Prefix` here;
//! - when several paths match, the longest wins (for `Prefix`, without its trailing slash), and
//!   at equal length `Exact` beats `Prefix`;
//! - the same path and type twice (also from two Ingresses for one host): the older Ingress,
//!   then the first declared, wins.

use http::{HeaderMap, Method};
use proptest::prelude::*;
use vestibule::config::{
    HttpIngressPath, HttpIngressRuleValue, Ingress, IngressBackend, IngressClass, IngressClassSpec, IngressRule,
    IngressServiceBackend, IngressSpec, Object, ObjectMeta, Origin, ServiceBackendPort, Snapshot, StoredObject,
};
use vestibule::routes::{RequestInfo, RouteTable};
use vestibule::translate::{INGRESS_CONTROLLER, TranslateOptions, translate};

const SEGMENTS: [&str; 3] = ["a", "b", "ab"];
/// Ingress names, oldest first (their creation timestamps say so, against name order).
const INGRESSES: [(&str, &str); 2] = [
    ("zz-older", "2020-01-01T00:00:00Z"),
    ("aa-newer", "2021-01-01T00:00:00Z"),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PathType {
    Exact,
    Prefix,
    ImplementationSpecific,
}

impl PathType {
    fn as_str(self) -> &'static str {
        match self {
            PathType::Exact => "Exact",
            PathType::Prefix => "Prefix",
            PathType::ImplementationSpecific => "ImplementationSpecific",
        }
    }
}

/// One declared Ingress path.
#[derive(Debug, Clone)]
struct Declared {
    /// Index in `INGRESSES`: 0 is older.
    ingress: usize,
    path_type: PathType,
    path: String,
}

fn join(segments: &[&str], trailing_slash: bool) -> String {
    let mut path = format!("/{}", segments.join("/"));
    if trailing_slash && !segments.is_empty() {
        path.push('/');
    }
    path
}

fn declared() -> impl Strategy<Value = Declared> {
    let path_type = prop_oneof![
        Just(PathType::Exact),
        Just(PathType::Prefix),
        Just(PathType::ImplementationSpecific)
    ];
    let segments = prop::collection::vec(prop::sample::select(&SEGMENTS[..]), 0..=3);
    (0..INGRESSES.len(), path_type, segments, any::<bool>()).prop_map(|(ingress, path_type, segments, slash)| {
        Declared {
            ingress,
            path_type,
            path: join(&segments, slash),
        }
    })
}

fn request_path() -> impl Strategy<Value = String> {
    // Include an empty segment (a double slash) and a segment no path uses.
    let segment = prop::sample::select(vec!["a", "b", "ab", "abc", ""]);
    (prop::collection::vec(segment, 0..=4), any::<bool>()).prop_map(|(segments, slash)| join(&segments, slash))
}

// ---------------------------------------------------------------------------------------------
// The reference model.

/// Path elements, ignoring one trailing slash: `/` → [], `/a/b/` → [a, b], `/a//b` → [a, "", b].
fn elements(path: &str) -> Vec<&str> {
    let trimmed = path.strip_suffix('/').unwrap_or(path);
    if trimmed.is_empty() {
        return Vec::new();
    }
    trimmed.split('/').skip(1).collect()
}

fn matches(path_type: PathType, path: &str, request: &str) -> bool {
    match path_type {
        PathType::Exact => path == request,
        PathType::Prefix | PathType::ImplementationSpecific => {
            let path = elements(path);
            let request = elements(request);
            request.len() >= path.len() && request[..path.len()] == path[..]
        }
    }
}

/// The length a match is ranked by: the path, without a Prefix's trailing slash.
fn match_length(path_type: PathType, path: &str) -> usize {
    match path_type {
        PathType::Exact => path.len(),
        _ => path.strip_suffix('/').unwrap_or(path).len(),
    }
}

/// The route the documentation says serves `request`.
fn model(declared: &[(usize, Declared)], request: &str) -> Option<String> {
    declared
        .iter()
        .filter(|(_, d)| matches(d.path_type, &d.path, request))
        // Best: longest; then Exact; then the older Ingress; then the first declared.
        .min_by_key(|(index, d)| {
            (
                std::cmp::Reverse(match_length(d.path_type, &d.path)),
                d.path_type != PathType::Exact,
                d.ingress,
                *index,
            )
        })
        .map(|(index, d)| route_name(d.ingress, *index))
}

// ---------------------------------------------------------------------------------------------
// The real thing.

fn route_name(ingress: usize, index: usize) -> String {
    format!("ingress/default/{}/rules[0]/paths[{index}]", INGRESSES[ingress].0)
}

fn meta(name: &str) -> ObjectMeta {
    ObjectMeta {
        name: name.to_string(),
        ..Default::default()
    }
}

fn snapshot(per_ingress: &[Vec<Declared>]) -> Snapshot {
    let origin = |document| Origin::Builtin {
        name: "path_matching".into(),
        document,
    };
    let mut class = IngressClass {
        metadata: meta("vestibule"),
        spec: IngressClassSpec {
            controller: INGRESS_CONTROLLER.into(),
            parameters: None,
        },
    };
    class
        .metadata
        .annotations
        .insert("ingressclass.kubernetes.io/is-default-class".into(), "true".into());
    let mut objects = vec![StoredObject::new(origin(0), Object::IngressClass(class))];
    for (i, paths) in per_ingress.iter().enumerate() {
        let (name, created) = INGRESSES[i];
        let mut metadata = meta(name);
        metadata.creation_timestamp = Some(created.into());
        let paths = paths
            .iter()
            .map(|d| HttpIngressPath {
                path: Some(d.path.clone()),
                path_type: Some(d.path_type.as_str().into()),
                backend: IngressBackend {
                    service: Some(IngressServiceBackend {
                        name: "web".into(),
                        port: Some(ServiceBackendPort {
                            name: None,
                            number: Some(80),
                        }),
                    }),
                    resource: None,
                },
            })
            .collect();
        let ingress = Ingress {
            metadata,
            spec: IngressSpec {
                rules: vec![IngressRule {
                    host: Some("a.example".into()),
                    http: Some(HttpIngressRuleValue { paths }),
                }],
                ..Default::default()
            },
        };
        objects.push(StoredObject::new(origin(i + 1), Object::Ingress(ingress)));
    }
    Snapshot::from_objects(objects, Vec::new())
}

fn find(table: &RouteTable, path: &str) -> Option<String> {
    let headers = HeaderMap::new();
    let request = RequestInfo {
        host: "a.example",
        path,
        query: None,
        method: &Method::GET,
        headers: &headers,
    };
    table.find(&request).map(|route| route.name.to_string())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn translate_and_router_agree_with_the_documented_rules(
        declared in prop::collection::vec(declared(), 1..10),
        requests in prop::collection::vec(request_path(), 1..12),
    ) {
        // Number the paths within each Ingress, as `paths[j]` does.
        let mut per_ingress: Vec<Vec<Declared>> = vec![Vec::new(); INGRESSES.len()];
        let mut numbered = Vec::new();
        for d in declared {
            let index = per_ingress[d.ingress].len();
            per_ingress[d.ingress].push(d.clone());
            numbered.push((index, d));
        }
        let translation = translate(&snapshot(&per_ingress), &TranslateOptions::default());
        prop_assert!(
            translation.issues.iter().all(|issue| !issue.is_error()),
            "unexpected errors: {:?}", translation.issues
        );
        for request in &requests {
            prop_assert_eq!(
                find(&translation.table, request),
                model(&numbered, request),
                "request {:?}", request
            );
        }
    }
}

/// The model itself, on the examples of the Kubernetes documentation's table.
#[test]
fn model_follows_the_documentation_examples() {
    use PathType::*;
    let cases: [(PathType, &str, &str, bool); 14] = [
        (Prefix, "/", "/anything", true),
        (Exact, "/foo", "/foo", true),
        (Exact, "/foo", "/bar", false),
        (Exact, "/foo", "/foo/", false),
        (Exact, "/foo/", "/foo", false),
        (Prefix, "/foo", "/foo", true),
        (Prefix, "/foo", "/foo/", true),
        (Prefix, "/foo/", "/foo", true),
        (Prefix, "/foo/", "/foo/", true),
        (Prefix, "/aaa/bb", "/aaa/bbb", false),
        (Prefix, "/aaa/bbb", "/aaa/bbb", true),
        (Prefix, "/aaa/bbb/", "/aaa/bbb", true),
        (Prefix, "/aaa/bbb", "/aaa/bbb/ccc", true),
        (Prefix, "/aaa/bbb", "/aaa/bbbxyz", false),
    ];
    for (path_type, path, request, expected) in cases {
        assert_eq!(
            matches(path_type, path, request),
            expected,
            "{path_type:?} {path} {request}"
        );
    }
    // Longest wins; Exact beats Prefix at equal length.
    let d = |path_type, path: &str| Declared {
        ingress: 0,
        path_type,
        path: path.into(),
    };
    let declared = vec![(0, d(Prefix, "/")), (1, d(Prefix, "/aaa/")), (2, d(Exact, "/aaa"))];
    assert_eq!(model(&declared, "/aaa/ccc"), Some(route_name(0, 1)));
    assert_eq!(model(&declared, "/aaa"), Some(route_name(0, 2)));
    assert_eq!(model(&declared, "/b"), Some(route_name(0, 0)));
}
