//! Golden tests of `translate()`.
//!
//! Regenerate after a deliberate change, then review every changed `out.snap`:
//!
//!     INSTA_UPDATE=always cargo test --test golden
//!
//! Each directory under `tests/golden/` is one case:
//! - `in.yaml`: multi-document Kubernetes manifests, loaded as `vestibule run -f` loads them;
//! - `options.yaml` (optional): `{publishAddress, publishService: NAMESPACE/NAME, httpsPort,
//!   validateAllClasses, controllerName, ingressClasses: [...], followExternalNames, lb}` (the
//!   `run` flags they stand for);
//! - `requests.yaml` (optional): `[{host, path, expect}]`, where `expect` is the route name
//!   `RouteTable::find` must return (`null`: no route, 404). These are written by hand and
//!   prove routing end to end through `translate`. Gateway API cases add `port` (the
//!   Gateway listener port the request arrives on), and optionally `method` and `headers`;
//!   `connection: true` makes it a connection to a TLS or TCP port, `host` its SNI;
//! - `out.snap`: the accepted output: routes (`RouteTable::describe`), status, and issues (the
//!   loader's and `translate`'s, as printed); with `lb`, the LoadBalancer Services' addresses.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use http::{HeaderMap, Method};
use serde::{Deserialize, Serialize};
use vestibule::config::parse::parse_documents;
use vestibule::config::{Origin, Snapshot};
use vestibule::routes::RequestInfo;
use vestibule::translate::lb::{LbAddresses, LbOptions};
use vestibule::translate::tenancy::{DomainClaim, TenancyOptions};
use vestibule::translate::{ObjectStatus, TranslateOptions, Translation, translate};

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Options {
    publish_address: Option<String>,
    https_port: Option<u16>,
    #[serde(default)]
    validate_all_classes: bool,
    /// `--controller-name`.
    controller_name: Option<String>,
    /// `--ingress-class` (repeatable).
    #[serde(default)]
    ingress_classes: Vec<String>,
    /// false: Kubernetes mode without `--allow-external-name`.
    follow_external_names: Option<bool>,
    allow_local_auth_urls: Option<bool>,
    #[serde(default)]
    allow_local_mirror_targets: bool,
    /// `NAMESPACE/NAME`.
    publish_service: Option<String>,
    /// `--tenancy namespace`.
    #[serde(default)]
    tenancy_namespaces: bool,
    /// `--tenant-domain-suffix`.
    tenant_domain_suffix: Option<String>,
    /// `--default-domain TENANT=DOMAIN`.
    #[serde(default)]
    default_domains: std::collections::BTreeMap<String, String>,
    /// `--acme-directory` is set.
    #[serde(default)]
    acme: bool,
    /// `--allowed-response-headers`.
    #[serde(default)]
    allowed_response_headers: Vec<String>,
    /// `--lb` (its flags at their defaults).
    #[serde(default)]
    lb: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Request {
    host: String,
    path: String,
    expect: Option<String>,
    /// A Gateway API listener port; absent: the Ingress listeners.
    #[serde(default)]
    port: Option<u16>,
    #[serde(default)]
    method: Option<String>,
    #[serde(default)]
    headers: std::collections::BTreeMap<String, String>,
    /// A connection to a Gateway API TLS or TCP `port` rather than a request: `host` is the
    /// ClientHello's SNI (empty: none), `expect` the TLSRoute/TCPRoute picked.
    #[serde(default)]
    connection: bool,
}

#[derive(Serialize)]
struct Output<'a> {
    routes: serde_json::Value,
    status: &'a [ObjectStatus],
    issues: Vec<String>,
    /// The custom domains tenants claim (with tenancy only).
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    domain_claims: &'a [DomainClaim],
    /// LoadBalancer Services' addresses (with `lb` only).
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    lb_addresses: &'a [LbAddresses],
}

fn cases() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&root)
        .expect("tests/golden exists")
        .map(|entry| entry.expect("readable directory entry").path())
        .filter(|path| path.join("in.yaml").is_file())
        .collect();
    cases.sort();
    cases
}

fn load(case: &Path) -> (Snapshot, TranslateOptions) {
    let text = std::fs::read_to_string(case.join("in.yaml")).expect("in.yaml is readable");
    let parsed = parse_documents(&text, |document| Origin::File {
        path: PathBuf::from("in.yaml"),
        document,
    });
    let snapshot = Snapshot::from_objects(parsed.objects, parsed.issues);
    let options: Options = match std::fs::read_to_string(case.join("options.yaml")) {
        Ok(text) => serde_yaml_ng::from_str(&text).expect("options.yaml is valid"),
        Err(_) => Options::default(),
    };
    let defaults = TranslateOptions::default();
    let options = TranslateOptions {
        publish_address: options.publish_address,
        https_port: options.https_port,
        validate_all_classes: options.validate_all_classes,
        controller_name: options.controller_name.unwrap_or(defaults.controller_name),
        ingress_classes: options.ingress_classes,
        follow_external_names: options.follow_external_names.unwrap_or(defaults.follow_external_names),
        allow_local_auth_urls: options.allow_local_auth_urls.unwrap_or(defaults.allow_local_auth_urls),
        allow_local_mirror_targets: options.allow_local_mirror_targets,
        publish_service: options
            .publish_service
            .map(|service| service.parse().expect("publishService is NAMESPACE/NAME")),
        tenancy: TenancyOptions {
            namespaces: options.tenancy_namespaces,
            tenant_classes: Vec::new(),
            domain_suffix: options.tenant_domain_suffix,
            default_domains: options.default_domains,
        },
        acme: options.acme,
        lb: options.lb.then(LbOptions::default),
        allowed_response_headers: options.allowed_response_headers,
    };
    (snapshot, options)
}

fn run_case(case: &Path) {
    let name = case
        .file_name()
        .and_then(|n| n.to_str())
        .expect("case name")
        .to_string();
    let (snapshot, options) = load(case);
    let translation = translate(&snapshot, &options);

    let mut issues: Vec<String> = snapshot.issues.iter().map(ToString::to_string).collect();
    issues.extend(translation.issues.iter().map(ToString::to_string));
    let output = Output {
        routes: translation.table.describe(),
        status: &translation.statuses,
        issues,
        domain_claims: &translation.domain_claims,
        lb_addresses: &translation.lb_addresses,
    };
    insta::with_settings!({
        snapshot_path => case,
        prepend_module_to_snapshot => false,
        input_file => case.join("in.yaml"),
        omit_expression => true,
        description => format!("golden case {name}"),
    }, {
        insta::assert_yaml_snapshot!("out", output);
    });

    check_deterministic(&snapshot, &options, &translation);
    check_requests(case, &translation);
}

/// The same snapshot gives the same output.
fn check_deterministic(snapshot: &Snapshot, options: &TranslateOptions, first: &Translation) {
    let second = translate(snapshot, options);
    assert_eq!(first.table.describe(), second.table.describe());
    assert_eq!(first.statuses, second.statuses);
    assert_eq!(first.issues, second.issues);
    assert_eq!(first.lb_addresses, second.lb_addresses);
}

fn check_requests(case: &Path, translation: &Translation) {
    let Ok(text) = std::fs::read_to_string(case.join("requests.yaml")) else {
        return;
    };
    let requests: Vec<Request> = serde_yaml_ng::from_str(&text).expect("requests.yaml is valid");
    assert!(!requests.is_empty(), "requests.yaml lists no requests");
    let mut wrong = Vec::new();
    for request in &requests {
        if request.connection {
            let port = request.port.expect("a connection has a port");
            let sni = Some(request.host.as_str()).filter(|h| !h.is_empty());
            let got = translation
                .table
                .gateway_port(port)
                .and_then(|p| p.streams.find(sni))
                .map(|route| route.name.to_string());
            if got != request.expect {
                wrong.push(format!(
                    "  connection to port {port} with SNI {sni:?}: expected {:?}, got {got:?}",
                    request.expect
                ));
            }
            continue;
        }
        let mut headers = HeaderMap::new();
        for (name, value) in &request.headers {
            headers.insert(
                http::HeaderName::from_bytes(name.as_bytes()).expect("header name"),
                value.parse().expect("header value"),
            );
        }
        let method = match &request.method {
            Some(method) => Method::from_bytes(method.as_bytes()).expect("method"),
            None => Method::GET,
        };
        let (path, query) = match request.path.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (request.path.as_str(), None),
        };
        let info = RequestInfo {
            host: &request.host,
            path,
            query,
            method: &method,
            headers: &headers,
        };
        let found = match request.port {
            None => translation.table.find(&info),
            Some(port) => translation.table.find_on_port(port, &info),
        };
        let got = found.map(|route| route.name.to_string());
        if got != request.expect {
            wrong.push(format!(
                "  {} {} {} (port {:?}, headers {:?}): expected {:?}, got {:?}",
                method, request.host, request.path, request.port, request.headers, request.expect, got
            ));
        }
    }
    assert!(wrong.is_empty(), "requests routed wrongly:\n{}", wrong.join("\n"));
}

#[test]
fn golden_cases() {
    let cases = cases();
    assert!(!cases.is_empty(), "no golden cases found");
    let mut failed = Vec::new();
    for case in &cases {
        if catch_unwind(AssertUnwindSafe(|| run_case(case))).is_err() {
            failed.push(case.display().to_string());
        }
    }
    assert!(
        failed.is_empty(),
        "golden cases failed (see above):\n{}",
        failed.join("\n")
    );
}
