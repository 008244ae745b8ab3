use std::path::PathBuf;

use super::*;
use crate::config::Origin;
use crate::config::parse::parse_documents;

fn assess_yaml(text: &str) -> Assessment {
    let parsed = parse_documents(text, |document| Origin::File {
        path: PathBuf::from("in.yaml"),
        document,
    });
    assert!(
        parsed.issues.iter().all(|issue| !issue.is_error()),
        "{:?}",
        parsed.issues
    );
    assess(
        &Snapshot::from_objects(parsed.objects, parsed.issues),
        crate::translate::INGRESS_CONTROLLER,
    )
}

/// An Ingress `name` for `host` with these annotations (YAML flow map body) and, when `tls`,
/// a `tls` entry for the host.
fn ingress(name: &str, annotations: &str, tls: bool) -> String {
    let tls = if tls {
        "\n  tls: [{hosts: [app.example], secretName: app-tls}]"
    } else {
        ""
    };
    format!(
        r#"
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: {name}
  annotations: {{{annotations}}}
spec:
  ingressClassName: nginx{tls}
  rules:
  - host: app.example
    http:
      paths:
      - {{path: /, pathType: Prefix, backend: {{service: {{name: a, port: {{number: 80}}}}}}}}
"#
    )
}

fn only(assessment: &Assessment) -> &IngressAssessment {
    assert_eq!(assessment.ingresses.len(), 1, "{assessment:#?}");
    &assessment.ingresses[0]
}

fn kinds(ingress: &IngressAssessment) -> Vec<FindingKind> {
    ingress.findings.iter().map(|finding| finding.kind).collect()
}

#[test]
fn each_annotation_takes_the_catalogues_class() {
    let assessment = assess_yaml(&ingress(
        "app",
        r#"nginx.ingress.kubernetes.io/ssl-redirect: "true", nginx.ingress.kubernetes.io/use-regex: "false",
           nginx.ingress.kubernetes.io/proxy-buffering: "off", nginx.ingress.kubernetes.io/load-balance: "ewma",
           nginx.ingress.kubernetes.io/stream-snippet: "x", example.com/unrelated: "y""#,
        false,
    ));
    let app = only(&assessment);
    for annotation in &app.annotations {
        let catalogue = annotations::classify(&annotation.key).unwrap().support;
        assert_eq!(annotation.category, Category::of(catalogue), "{annotation:?}");
        assert_eq!(annotation.note, catalogue.note(), "{annotation:?}");
    }
    let keys: Vec<(&str, Category)> = app
        .annotations
        .iter()
        .map(|annotation| (annotation.key.as_str(), annotation.category))
        .collect();
    assert_eq!(
        keys,
        [
            ("nginx.ingress.kubernetes.io/load-balance", Category::Unsupported),
            ("nginx.ingress.kubernetes.io/proxy-buffering", Category::NoOp),
            ("nginx.ingress.kubernetes.io/ssl-redirect", Category::Supported),
            ("nginx.ingress.kubernetes.io/stream-snippet", Category::Refused),
            ("nginx.ingress.kubernetes.io/use-regex", Category::Differs),
        ],
        "other prefixes are not listed"
    );
    assert_eq!(assessment.summary.annotations[&Category::Supported], 1);
    assert_eq!(assessment.summary.annotations[&Category::Refused], 1);
    // The snippet is refused and the Ingress withheld, as translate decides.
    assert!(!app.served);
    assert!(app.changes_behaviour);
}

#[test]
fn access_control_that_is_not_honoured_withholds_the_ingress_as_translate_does() {
    let text = ingress(
        "guarded",
        r#"nginx.ingress.kubernetes.io/satisfy: any, nginx.ingress.kubernetes.io/auth-proxy-set-headers: web/headers"#,
        false,
    );
    let assessment = assess_yaml(&text);
    let guarded = only(&assessment);
    assert!(!guarded.served);
    assert_eq!(
        guarded.not_served_reason.as_deref(),
        Some("its access control is not supported (fail closed)")
    );
    assert_eq!(kinds(guarded), [FindingKind::Withheld]);
    assert!(
        guarded.findings[0]
            .message
            .contains("auth-proxy-set-headers, nginx.ingress.kubernetes.io/satisfy")
    );
    assert!(guarded.annotations.iter().all(|annotation| annotation.fails_closed));
    assert_eq!((assessment.summary.served, assessment.summary.not_served), (0, 1));

    // The same decision as translate() makes when the class is ours.
    let class = "apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata: {name: nginx}\nspec: {controller: k8s.io/ingress-nginx}\n---\n";
    let parsed = parse_documents(&format!("{class}{text}"), |document| Origin::File {
        path: PathBuf::from("in.yaml"),
        document,
    });
    let snapshot = Snapshot::from_objects(parsed.objects, parsed.issues);
    let options = crate::translate::TranslateOptions {
        controller_name: INGRESS_NGINX_CONTROLLER.to_string(),
        ..Default::default()
    };
    let translation = crate::translate::translate(&snapshot, &options);
    assert_eq!(translation.withheld.len(), 1);
    assert_eq!(
        translation.ingresses[0].reason,
        guarded.not_served_reason.clone().unwrap()
    );
}

#[test]
fn a_source_range_that_does_not_parse_withholds_and_names_the_value() {
    let assessment = assess_yaml(&ingress(
        "ranges",
        r#"nginx.ingress.kubernetes.io/whitelist-source-range: "10.0.0.0/33""#,
        false,
    ));
    let ranges = only(&assessment);
    assert!(!ranges.served);
    assert_eq!(kinds(ranges), [FindingKind::Withheld, FindingKind::InvalidValue]);
    assert!(
        ranges.findings[1].message.contains("whitelist-source-range"),
        "{ranges:#?}"
    );
    // A range that parses is honoured with a difference, and served.
    let assessment = assess_yaml(&ingress(
        "ranges",
        r#"nginx.ingress.kubernetes.io/whitelist-source-range: "10.0.0.0/8""#,
        false,
    ));
    let ranges = only(&assessment);
    assert!(ranges.served && ranges.findings.is_empty(), "{ranges:#?}");
    assert_eq!(ranges.annotations[0].category, Category::Differs);
}

#[test]
fn a_canary_joins_its_primary_and_one_that_does_not_parse_is_not_served() {
    let assessment = assess_yaml(&ingress(
        "next",
        r#"nginx.ingress.kubernetes.io/canary: "true", nginx.ingress.kubernetes.io/canary-weight: "0""#,
        false,
    ));
    let next = only(&assessment);
    assert!(next.served, "{next:#?}");
    assert_eq!(kinds(next), [FindingKind::Canary]);
    assert!(!next.findings[0].changes_behaviour, "{next:#?}");
    assert!(next.findings[0].message.contains("primary"), "{next:#?}");

    let assessment = assess_yaml(&ingress(
        "next",
        r#"nginx.ingress.kubernetes.io/canary: "true", nginx.ingress.kubernetes.io/canary-weight: "ten""#,
        false,
    ));
    let next = only(&assessment);
    assert!(!next.served, "{next:#?}");
    assert!(kinds(next).contains(&FindingKind::Canary), "{next:#?}");
    assert!(kinds(next).contains(&FindingKind::InvalidValue), "{next:#?}");
}

#[test]
fn rewrite_target_with_captures_or_fixed_differs() {
    let assessment = assess_yaml(&ingress(
        "api",
        r#"nginx.ingress.kubernetes.io/rewrite-target: "/$2""#,
        false,
    ));
    let api = only(&assessment);
    assert_eq!(api.annotations[0].category, Category::Differs);
    assert!(api.findings.is_empty(), "{api:#?}");
    assert!(api.served);

    let assessment = assess_yaml(&ingress(
        "api",
        r#"nginx.ingress.kubernetes.io/rewrite-target: "/""#,
        false,
    ));
    let api = only(&assessment);
    assert_eq!(api.annotations[0].category, Category::Differs);
    assert!(api.findings.is_empty(), "{api:#?}");

    let assessment = assess_yaml(&ingress(
        "api",
        r#"nginx.ingress.kubernetes.io/rewrite-target: "no-slash""#,
        false,
    ));
    assert_eq!(kinds(only(&assessment)), [FindingKind::InvalidValue]);
}

#[test]
fn a_boolean_that_does_not_parse_is_an_invalid_value() {
    let assessment = assess_yaml(&ingress(
        "app",
        r#"nginx.ingress.kubernetes.io/ssl-redirect: "yes""#,
        true,
    ));
    let app = only(&assessment);
    assert_eq!(kinds(app), [FindingKind::InvalidValue]);
    assert!(app.changes_behaviour && app.served);
}

#[test]
fn the_https_redirect_matches_ingress_nginx_by_default_and_with_opt_outs() {
    for (annotations, tls) in [
        ("", true),
        ("", false),
        (r#"nginx.ingress.kubernetes.io/ssl-redirect: "false""#, true),
        (r#"nginx.ingress.kubernetes.io/force-ssl-redirect: "true""#, false),
    ] {
        let assessment = assess_yaml(&ingress("app", annotations, tls));
        let app = only(&assessment);
        assert!(
            !kinds(app).contains(&FindingKind::HttpsRedirect),
            "{annotations} tls={tls}: {app:#?}"
        );
    }
}

#[test]
fn ingress_nginx_redirects_as_it_documents() {
    let map = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (format!("{NGINX_PREFIX}{k}"), v.to_string()))
            .collect()
    };
    assert!(ingress_nginx_redirects(&map(&[]), true));
    assert!(!ingress_nginx_redirects(&map(&[]), false));
    assert!(!ingress_nginx_redirects(&map(&[("ssl-redirect", "false")]), true));
    assert!(ingress_nginx_redirects(&map(&[("force-ssl-redirect", "true")]), false));
}

#[test]
fn an_honoured_generic_prefix_annotation_is_a_change_from_ingress_nginx() {
    let assessment = assess_yaml(&ingress("old", r#"ingress.kubernetes.io/ssl-redirect: "false""#, true));
    let old = only(&assessment);
    assert_eq!(kinds(old), [FindingKind::GenericPrefix]);
    assert!(old.changes_behaviour);
    // An unsupported one was ignored by both: nothing more than the annotation's own line.
    let assessment = assess_yaml(&ingress("old", r#"ingress.kubernetes.io/load-balance: ewma"#, false));
    assert!(only(&assessment).findings.is_empty());
}

#[test]
fn only_no_ops_and_supported_annotations_change_nothing() {
    let assessment = assess_yaml(&ingress(
        "quiet",
        r#"nginx.ingress.kubernetes.io/proxy-buffering: "off", nginx.ingress.kubernetes.io/ssl-redirect: "true""#,
        true,
    ));
    assert!(!only(&assessment).changes_behaviour);
    assert!(!assessment.changes_behaviour());
    assert_eq!(assessment.summary.changes_behaviour, 0);
}

#[test]
fn ingress_nginx_classes_are_offered_for_take_over() {
    let class = |name: &str, controller: &str| {
        format!(
            "apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata: {{name: {name}}}\nspec: {{controller: {controller}}}\n---\n"
        )
    };
    let text = format!(
        "{}{}{}",
        class("internal", INGRESS_NGINX_CONTROLLER),
        class("traefik", "traefik.io/ingress-controller"),
        ingress("app", "", false)
    );
    let assessment = assess_yaml(&text);
    let classes: Vec<(&str, bool, usize)> = assessment
        .take_over
        .iter()
        .map(|take_over| (take_over.class.as_str(), take_over.class_found, take_over.ingresses))
        .collect();
    // `nginx` is named by the Ingress and not among the classes read: assumed ingress-nginx's.
    assert_eq!(classes, [("internal", true, 0), ("nginx", false, 1)]);
    assert_eq!(
        assessment.take_over[1].flags,
        ["--controller-name", "k8s.io/ingress-nginx", "--ingress-class", "nginx"]
    );
    assert_eq!(only(&assessment).controller, None);
}

#[test]
fn an_ingress_without_class_says_when_it_is_served() {
    let text = ingress("bare", "", false).replace("  ingressClassName: nginx\n", "");
    let assessment = assess_yaml(&text);
    let bare = only(&assessment);
    assert_eq!(bare.class, None);
    assert_eq!(kinds(bare), [FindingKind::NoClass]);
    assert!(!bare.changes_behaviour, "informational only");
}

#[test]
fn a_tls_host_not_written_for_ingress_nginx_loses_the_redirect_unless_taken_over() {
    let class_line = "  ingressClassName: nginx\n";
    // Class `nginx` (the name), an ingress-nginx annotation: the redirect is kept.
    let assessment = assess_yaml(&ingress("docs", "", true));
    assert!(!kinds(only(&assessment)).contains(&FindingKind::HttpsRedirect));
    let renamed = ingress("docs", r#"nginx.ingress.kubernetes.io/proxy-buffering: "off""#, true)
        .replace(class_line, "  ingressClassName: edge\n");
    assert!(!kinds(only(&assess_yaml(&renamed))).contains(&FindingKind::HttpsRedirect));

    // Another class name, no annotation: plain HTTP is served where ingress-nginx redirected.
    let text = ingress("docs", "", true).replace(class_line, "  ingressClassName: edge\n");
    let assessment = assess_yaml(&text);
    let docs = only(&assessment);
    assert_eq!(kinds(docs), [FindingKind::HttpsRedirect]);
    assert!(docs.findings[0].message.contains("ssl-redirect: \"true\""), "{docs:#?}");
    assert!(docs.changes_behaviour);

    // Taken over in place: ingress-nginx's defaults apply to every Ingress.
    let parsed = parse_documents(&text, |document| Origin::File {
        path: PathBuf::from("in.yaml"),
        document,
    });
    let assessment = assess(
        &Snapshot::from_objects(parsed.objects, parsed.issues),
        INGRESS_NGINX_CONTROLLER,
    );
    assert!(only(&assessment).findings.is_empty(), "{assessment:#?}");

    // A class of another controller never had ingress-nginx's redirect to lose.
    let other = format!(
        "apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata: {{name: edge}}\nspec: {{controller: traefik.io/ingress-controller}}\n---\n{text}"
    );
    assert!(only(&assess_yaml(&other)).findings.is_empty());
}

#[test]
fn basic_auth_is_served_with_its_secret_and_withheld_without_it() {
    let text = ingress(
        "guarded",
        r#"nginx.ingress.kubernetes.io/auth-type: basic, nginx.ingress.kubernetes.io/auth-secret: users"#,
        false,
    );
    let missing = assess_yaml(&text);
    let guarded = only(&missing);
    assert!(!guarded.served, "no Secret users: {guarded:?}");
    assert_eq!(
        guarded.not_served_reason.as_deref(),
        Some("its authentication cannot be set up (fail closed)")
    );
    // htpasswd line for user "u" (apr1, from `openssl passwd -apr1`).
    let secret = "apiVersion: v1\nkind: Secret\nmetadata: {name: users}\ntype: Opaque\nstringData:\n  auth: \"u:$apr1$abc$PZF73YJz5hJ9yyI.7OP.R.\"\n---\n";
    let present = assess_yaml(&format!("{secret}{text}"));
    let guarded = only(&present);
    assert!(guarded.served, "{guarded:?}");
    assert!(
        guarded
            .annotations
            .iter()
            .all(|annotation| annotation.category == Category::Differs && !annotation.fails_closed),
        "{:?}",
        guarded.annotations
    );
}
