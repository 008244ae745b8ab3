use super::*;

/// One parsed sample line: name, labels (unescaped), value.
type Sample = (String, Vec<(String, String)>, f64);

/// A strict little parser of the text format: every line is a HELP, a TYPE or a sample of
/// the family declared just before it.
fn parse(text: &str) -> Vec<Sample> {
    let mut samples = Vec::new();
    let mut family: Option<(String, String)> = None;
    let mut seen_families = Vec::new();
    assert!(text.ends_with('\n'), "exposition ends with a newline");
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').expect("HELP has a name and text");
            assert!(!help.is_empty());
            assert!(
                !seen_families.contains(&name.to_string()),
                "family {name} declared twice"
            );
            seen_families.push(name.to_string());
            family = None;
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE has a name and kind");
            assert_eq!(
                seen_families.last().map(String::as_str),
                Some(name),
                "TYPE follows its HELP"
            );
            assert!(["counter", "gauge", "histogram"].contains(&kind), "{kind}");
            family = Some((name.to_string(), kind.to_string()));
            continue;
        }
        assert!(!line.starts_with('#'), "unexpected comment {line}");
        let (family_name, kind) = family.clone().expect("sample after TYPE");
        let name_end = line.find(['{', ' ']).expect("sample has a value");
        let name = &line[..name_end];
        let allowed: Vec<String> = if kind == "histogram" {
            ["_bucket", "_sum", "_count"]
                .iter()
                .map(|s| format!("{family_name}{s}"))
                .collect()
        } else {
            vec![family_name.clone()]
        };
        assert!(allowed.contains(&name.to_string()), "{name} in family {family_name}");
        let mut rest = &line[name_end..];
        let mut label_pairs = Vec::new();
        if let Some(body) = rest.strip_prefix('{') {
            let mut chars = body.char_indices();
            loop {
                let (start, _) = chars.next().expect("label or }");
                if body[start..].starts_with('}') {
                    rest = &body[start + 1..];
                    break;
                }
                let eq = body[start..].find("=\"").expect("label=\"") + start;
                let label = body[start..eq].to_string();
                assert!(label.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'), "{label}");
                for _ in start..eq + 1 {
                    chars.next();
                }
                let mut value = String::new();
                loop {
                    match chars.next().expect("closing quote").1 {
                        '\\' => match chars.next().expect("escape").1 {
                            '\\' => value.push('\\'),
                            '"' => value.push('"'),
                            'n' => value.push('\n'),
                            other => panic!("bad escape \\{other}"),
                        },
                        '"' => break,
                        '\n' => panic!("raw newline in label"),
                        c => value.push(c),
                    }
                }
                label_pairs.push((label, value));
                let (i, c) = chars.clone().next().expect("after label");
                if c == ',' {
                    chars.next();
                } else {
                    assert_eq!(c, '}', "at {i}");
                }
            }
        }
        let value = rest.strip_prefix(' ').expect("space before value");
        let value: f64 = if value == "+Inf" {
            f64::INFINITY
        } else {
            value.parse().expect("numeric value")
        };
        samples.push((name.to_string(), label_pairs, value));
    }
    samples
}

fn find(samples: &[Sample], name: &str, want: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .find(|(n, labels, _)| {
            n == name
                && labels.len() == want.len()
                && want
                    .iter()
                    .all(|(k, v)| labels.iter().any(|(lk, lv)| lk == k && lv == v))
        })
        .map(|s| s.2)
}

#[test]
fn status_slots_cover_tracked_codes_and_classes() {
    for (i, code) in TRACKED_STATUSES.iter().enumerate() {
        assert_eq!(status_slot(*code), i);
        assert_eq!(status_label(i), code.to_string());
    }
    assert_eq!(status_label(status_slot(418)), "4xx");
    assert_eq!(status_label(status_slot(599)), "5xx");
    assert_eq!(status_label(status_slot(100)), "1xx");
    assert_eq!(status_label(status_slot(99)), "other");
    assert_eq!(status_label(status_slot(600)), "other");
    assert_eq!(status_label(status_slot(0)), "other");
}

#[test]
fn exposition_parses_line_by_line() {
    let metrics = Metrics::new();
    let shop = metrics.route_stats("ingress/default/shop/r0/p0");
    shop.observe(200, Duration::from_micros(300));
    shop.observe(200, Duration::from_millis(3));
    shop.observe(418, Duration::from_secs(20));
    metrics.unrouted().observe(404, Duration::from_micros(10));
    let key = BackendKey {
        namespace: "default".into(),
        service: "shop".into(),
        port: "80".into(),
    };
    metrics.upstream_error(&key, "connect");
    metrics.upstream_error(&key, "connect");
    metrics.upstream_error(&key, "timeout");
    metrics.reload(ReloadOutcome::Success);
    metrics.reload(ReloadOutcome::Partial);
    metrics.reload(ReloadOutcome::Partial);
    metrics.set_rejected("Ingress", 2);
    metrics.set_rejected("Ingress", 1);
    metrics.set_generation(7);

    let samples = parse(&metrics.encode());
    let route = ("route", "ingress/default/shop/r0/p0");
    assert_eq!(
        find(&samples, "vestibule_requests_total", &[route, ("status", "200")]),
        Some(2.0)
    );
    assert_eq!(
        find(&samples, "vestibule_requests_total", &[route, ("status", "4xx")]),
        Some(1.0)
    );
    assert_eq!(
        find(&samples, "vestibule_requests_total", &[route, ("status", "404")]),
        None
    );
    let unrouted = [("route", UNROUTED), ("status", "404")];
    assert_eq!(find(&samples, "vestibule_requests_total", &unrouted), Some(1.0));

    let bucket = |le| {
        find(
            &samples,
            "vestibule_request_duration_seconds_bucket",
            &[route, ("le", le)],
        )
    };
    assert_eq!(bucket("0.0005"), Some(1.0));
    assert_eq!(bucket("0.0025"), Some(1.0));
    assert_eq!(bucket("0.005"), Some(2.0));
    assert_eq!(bucket("10"), Some(2.0));
    assert_eq!(bucket("+Inf"), Some(3.0));
    assert_eq!(
        find(&samples, "vestibule_request_duration_seconds_count", &[route]),
        Some(3.0)
    );
    let sum = find(&samples, "vestibule_request_duration_seconds_sum", &[route]).expect("sum");
    assert!((sum - 20.0033).abs() < 1e-9, "{sum}");

    let errors = |kind| {
        find(
            &samples,
            "vestibule_upstream_errors_total",
            &[("backend", "default/shop:80"), ("kind", kind)],
        )
    };
    assert_eq!(errors("connect"), Some(2.0));
    assert_eq!(errors("timeout"), Some(1.0));
    let reloads = |outcome| find(&samples, "vestibule_config_reloads_total", &[("outcome", outcome)]);
    assert_eq!(reloads("success"), Some(1.0));
    assert_eq!(reloads("partial"), Some(2.0));
    assert_eq!(reloads("failure"), Some(0.0));
    assert_eq!(
        find(&samples, "vestibule_rejected_objects", &[("kind", "Ingress")]),
        Some(1.0)
    );
    assert_eq!(find(&samples, "vestibule_config_generation", &[]), Some(7.0));
}

#[test]
fn retries_are_counted_by_route_and_reason() {
    let metrics = Metrics::new();
    metrics.retry("ingress/default/web/rules[0]/paths[0]", "http_503");
    metrics.retry("ingress/default/web/rules[0]/paths[0]", "http_503");
    metrics.retry("httproute/default/\"odd\"/rules[0]", "connect");
    assert_eq!(metrics.retries("ingress/default/web/rules[0]/paths[0]", "http_503"), 2);
    assert_eq!(metrics.retries("ingress/default/web/rules[0]/paths[0]", "timeout"), 0);
    let text = metrics.encode();
    let samples = parse(&text);
    assert_eq!(
        find(
            &samples,
            "vestibule_retries_total",
            &[
                ("route", "ingress/default/web/rules[0]/paths[0]"),
                ("reason", "http_503")
            ]
        ),
        Some(2.0)
    );
    assert!(
        text.contains("vestibule_retries_total{route=\"httproute/default/\\\"odd\\\"/rules[0]\",reason=\"connect\"} 1"),
        "{text}"
    );
}

#[test]
fn empty_metrics_still_declare_every_family() {
    let text = Metrics::new().encode();
    parse(&text);
    for family in [
        "vestibule_requests_total",
        "vestibule_request_duration_seconds",
        "vestibule_upstream_errors_total",
        "vestibule_retries_total",
        "vestibule_config_reloads_total",
        "vestibule_rejected_objects",
        "vestibule_config_generation",
    ] {
        assert!(text.contains(&format!("# TYPE {family} ")), "{family}");
    }
}

#[test]
fn counters_add_up_across_threads() {
    let metrics = Metrics::new();
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let metrics = Arc::clone(&metrics);
            std::thread::spawn(move || {
                // Each thread looks the route up itself, as a reload on another worker would.
                let stats = metrics.route_stats("r");
                for i in 0..10_000u64 {
                    let status = if i % 2 == 0 { 200 } else { 503 };
                    stats.observe(status, Duration::from_micros(i % 2000 + t));
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().expect("thread");
    }
    let stats = metrics.route_stats("r");
    assert_eq!(stats.count(200), 40_000);
    assert_eq!(stats.count(503), 40_000);
    assert_eq!(stats.total(), 80_000);
    let samples = parse(&metrics.encode());
    let count = find(&samples, "vestibule_request_duration_seconds_count", &[("route", "r")]);
    assert_eq!(count, Some(80_000.0));
}

#[test]
fn stats_survive_lookup_by_name() {
    let metrics = Metrics::new();
    metrics.route_stats("a").observe(200, Duration::ZERO);
    let again = metrics.route_stats("a");
    assert_eq!(again.count(200), 1);
    assert_eq!(metrics.route_stats("b").total(), 0);
}

#[test]
fn routes_gone_from_the_table_leave_the_exposition() {
    let metrics = Metrics::new();
    metrics.route_stats("kept").observe(200, Duration::from_millis(1));
    metrics.route_stats("deleted").observe(200, Duration::from_millis(1));
    metrics.retain_routes(["kept", "new"]);
    let samples = parse(&metrics.encode());
    let requests = |route| {
        find(
            &samples,
            "vestibule_requests_total",
            &[("route", route), ("status", "200")],
        )
    };
    assert_eq!(requests("kept"), Some(1.0));
    assert_eq!(requests("deleted"), None);
    let count = find(
        &samples,
        "vestibule_request_duration_seconds_count",
        &[("route", "deleted")],
    );
    assert_eq!(count, None);
    // Kept stats are the same handle; a route that comes back starts from zero.
    assert_eq!(metrics.route_stats("kept").count(200), 1);
    assert_eq!(metrics.route_stats("deleted").total(), 0);
}

#[test]
fn label_values_are_escaped() {
    let metrics = Metrics::new();
    let hostile = "a\"b\\c\nd}e,f=\"g";
    metrics.route_stats(hostile).observe(200, Duration::from_millis(1));
    metrics.set_rejected(hostile, 3);
    let text = metrics.encode();
    assert!(text.contains(r#"route="a\"b\\c\nd}e,f=\"g""#), "{text}");
    let samples = parse(&text);
    let found = find(
        &samples,
        "vestibule_requests_total",
        &[("route", hostile), ("status", "200")],
    );
    assert_eq!(found, Some(1.0));
    assert_eq!(
        find(&samples, "vestibule_rejected_objects", &[("kind", hostile)]),
        Some(3.0)
    );
}
