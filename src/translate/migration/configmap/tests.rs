use std::collections::BTreeMap;

use super::*;

fn data(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn assess(pairs: &[(&str, &str)]) -> ConfigMapAssessment {
    assess_configmap(
        "ingress-nginx",
        "ingress-nginx-controller",
        "cm.yaml, document 1",
        &data(pairs),
    )
}

fn key<'a>(assessment: &'a ConfigMapAssessment, name: &str) -> &'a KeyFinding {
    assessment
        .keys
        .iter()
        .find(|finding| finding.key == name)
        .unwrap_or_else(|| panic!("no finding for {name}: {assessment:#?}"))
}

#[test]
fn timeouts_become_flags_in_nginx_units() {
    let assessment = assess(&[
        ("proxy-connect-timeout", "10"),
        ("proxy-read-timeout", "2m"),
        ("client-header-timeout", "15s"),
        ("client-body-timeout", "500ms"),
        ("worker-shutdown-timeout", "240s"),
    ]);
    assert_eq!(
        assessment.flags,
        [
            "--request-body-timeout 0.5",
            "--header-read-timeout 15",
            "--connect-timeout 10",
            "--response-header-timeout 120",
            "--response-body-timeout 120",
            "--drain-timeout 240",
        ]
    );
    assert_eq!(key(&assessment, "proxy-connect-timeout").category, Category::Supported);
    assert_eq!(key(&assessment, "proxy-read-timeout").category, Category::Differs);
}

#[test]
fn values_that_do_not_parse_give_no_flag() {
    for (name, value) in [
        ("proxy-connect-timeout", "5x"),
        ("proxy-connect-timeout", "-5"),
        ("proxy-read-timeout", "99999999"),
        ("worker-processes", "0"),
        ("large-client-header-buffers", "4"),
        ("limit-req-status-code", "200"),
        ("use-forwarded-headers", "yes please"),
        ("http2-max-concurrent-streams", "many"),
    ] {
        let assessment = assess(&[(name, value)]);
        let finding = key(&assessment, name);
        assert!(finding.flags.is_empty(), "{name}={value}: {finding:?}");
        assert!(assessment.flags.is_empty(), "{name}={value}");
        assert_eq!(finding.category, Category::Unsupported, "{name}={value}");
        assert!(
            finding.note.contains("does not parse"),
            "{name}={value}: {}",
            finding.note
        );
        assert!(assessment.changes_behaviour, "{name}={value}");
    }
}

#[test]
fn forwarded_headers_trust_the_real_ip_cidrs() {
    let assessment = assess(&[
        ("use-forwarded-headers", "true"),
        ("proxy-real-ip-cidr", "10.0.0.0/8, 192.168.1.7"),
    ]);
    assert_eq!(
        assessment.flags,
        ["--trusted-proxy 10.0.0.0/8", "--trusted-proxy 192.168.1.7/32"]
    );
    assert_eq!(key(&assessment, "proxy-real-ip-cidr").category, Category::Supported);

    // ingress-nginx's default proxy-real-ip-cidr is everyone.
    let everyone = assess(&[("use-forwarded-headers", "true")]);
    assert_eq!(everyone.flags, ["--trusted-proxy 0.0.0.0/0"]);

    // Without use-forwarded-headers the CIDRs do nothing, there as here.
    let alone = assess(&[("proxy-real-ip-cidr", "10.0.0.0/8")]);
    assert!(alone.flags.is_empty());
    assert_eq!(key(&alone, "proxy-real-ip-cidr").category, Category::NoOp);

    let bad = assess(&[("use-forwarded-headers", "true"), ("proxy-real-ip-cidr", "10.0.0.0/99")]);
    assert!(bad.flags.is_empty(), "{bad:?}");
}

#[test]
fn snippets_and_lua_are_refused_and_global_access_control_is_flagged() {
    let assessment = assess(&[
        ("allow-snippet-annotations", "true"),
        ("http-snippet", "server { listen 8080; }"),
        ("main-snippet", "load_module x;"),
        ("plugins", "my_plugin"),
        ("global-auth-url", "http://auth.example/check"),
        ("block-cidrs", "1.2.3.0/24"),
    ]);
    for name in ["allow-snippet-annotations", "http-snippet", "main-snippet", "plugins"] {
        assert_eq!(key(&assessment, name).category, Category::Refused, "{name}");
    }
    for name in ["global-auth-url", "block-cidrs"] {
        let finding = key(&assessment, name);
        assert_eq!(finding.category, Category::Unsupported, "{name}");
        assert!(finding.note.contains("served without it"), "{name}: {}", finding.note);
    }
    assert!(assessment.flags.is_empty());
    assert!(assessment.changes_behaviour);
}

#[test]
fn settings_kept_as_ingress_nginx_has_them_change_nothing() {
    let assessment = assess(&[
        ("allow-snippet-annotations", "false"),
        ("use-http2", "true"),
        ("ssl-protocols", "TLSv1.2 TLSv1.3"),
        ("proxy-buffer-size", "16k"),
        ("limit-req-status-code", "429"),
        ("hsts", "false"),
        ("proxy-body-size", "0"),
        ("generate-request-id", "false"),
    ]);
    let changed: Vec<&KeyFinding> = assessment
        .keys
        .iter()
        .chain(&assessment.defaults)
        .filter(|finding| finding.category.changes_behaviour())
        .collect();
    // proxy-body-size 0 (no limit) is what Vestibule does without the annotation.
    assert!(changed.is_empty(), "{changed:#?}");
    assert_eq!(assessment.flags, ["--limit-req-status-code 429"]);
    assert!(assessment.defaults.is_empty(), "{:?}", assessment.defaults);
    assert!(!assessment.changes_behaviour);

    // A global limit is not read: reported, so the user adds the annotation where it matters.
    let limited = assess(&[("proxy-body-size", "8m")]);
    assert_eq!(key(&limited, "proxy-body-size").category, Category::Unsupported);
}

#[test]
fn defaults_without_a_counterpart_are_listed_unless_the_configmap_sets_them() {
    let assessment = assess(&[]);
    let keys: Vec<&str> = assessment.defaults.iter().map(|finding| finding.key.as_str()).collect();
    assert_eq!(keys, ["hsts", "proxy-body-size", "generate-request-id"]);
    assert!(assessment.changes_behaviour);
}

#[test]
fn old_tls_protocols_are_reported_as_refused_handshakes() {
    let assessment = assess(&[("ssl-protocols", "TLSv1 TLSv1.1 TLSv1.2")]);
    let finding = key(&assessment, "ssl-protocols");
    assert_eq!(finding.category, Category::Unsupported);
    assert!(finding.note.contains("TLSv1 TLSv1.1"), "{}", finding.note);
}

#[test]
fn unknown_keys_and_control_characters_are_reported_escaped() {
    let assessment = assess(&[("no-such-key\nResult: fine", "1")]);
    assert_eq!(assessment.keys.len(), 1);
    assert_eq!(assessment.keys[0].key, "no-such-key\\nResult: fine");
    assert_eq!(assessment.keys[0].category, Category::Unsupported);
}

#[test]
fn the_chart_and_manifest_names_are_recognised() {
    let none = BTreeMap::new();
    assert!(is_controller_configmap("ingress-nginx-controller", &none));
    assert!(is_controller_configmap("edge-ingress-nginx-controller", &none));
    assert!(is_controller_configmap("nginx-configuration", &none));
    assert!(!is_controller_configmap("app-settings", &none));
    let chart: BTreeMap<String, String> = [
        ("app.kubernetes.io/name".to_string(), "ingress-nginx".to_string()),
        ("app.kubernetes.io/component".to_string(), "controller".to_string()),
    ]
    .into();
    assert!(is_controller_configmap("custom", &chart));
    let tcp: BTreeMap<String, String> = [
        ("app.kubernetes.io/name".to_string(), "ingress-nginx".to_string()),
        ("app.kubernetes.io/component".to_string(), "tcp-services".to_string()),
    ]
    .into();
    assert!(!is_controller_configmap("tcp-services", &tcp));
}
