use super::*;
use crate::config::Kind;

fn container(tenant: &str, name: &str, created: &str, labels: &[(&str, &str)], ip: &str) -> Container {
    Container {
        tenant: tenant.into(),
        id: format!("{name}0123456789abcdef"),
        name: name.into(),
        created: format!("2026-01-01T00:00:{created}.000000000Z"),
        labels: labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        running: true,
        paused: false,
        health: None,
        address: Ok(ip.parse().unwrap()),
    }
}

fn tenants() -> Vec<Tenant> {
    vec![
        Tenant {
            name: "t1".into(),
            default_domain: Some("t1.example.test".into()),
        },
        Tenant {
            name: "t2".into(),
            default_domain: Some("t2.example.test".into()),
        },
    ]
}

fn of_kind(objects: &[Arc<StoredObject>], kind: Kind) -> Vec<&Object> {
    objects.iter().map(|o| &o.object).filter(|o| o.kind() == kind).collect()
}

fn slice_addresses(objects: &[Arc<StoredObject>]) -> Vec<(String, Vec<String>)> {
    of_kind(objects, Kind::EndpointSlice)
        .into_iter()
        .map(|o| match o {
            Object::EndpointSlice(s) => (
                s.metadata.name.clone(),
                s.endpoints.iter().flat_map(|e| e.addresses.clone()).collect(),
            ),
            _ => unreachable!(),
        })
        .collect()
}

#[test]
fn replicas_share_one_service_and_only_ready_ones_are_endpoints() {
    let web = [("kr.ingress.80", "https://web.*")];
    let mut paused = container("t1", "web-2", "02", &web, "172.17.0.3");
    paused.paused = true;
    let mut unhealthy = container("t1", "web-3", "03", &web, "172.17.0.4");
    unhealthy.health = Some("unhealthy".into());
    let mut healthy = container("t1", "web-4", "04", &web, "172.17.0.5");
    healthy.health = Some("healthy".into());
    let mut stopped = container("t1", "web-5", "05", &web, "172.17.0.6");
    stopped.running = false;
    let containers = vec![
        container("t1", "web-1", "01", &web, "172.17.0.2"),
        paused,
        unhealthy,
        healthy,
        stopped,
    ];
    let (objects, issues) = build(&tenants(), &containers, "vestibule.dev/ingress-controller");
    assert_eq!(issues, vec![]);
    assert_eq!(of_kind(&objects, Kind::Service).len(), 1);
    assert_eq!(
        slice_addresses(&objects),
        vec![(
            format!("{}-ipv4", service_name(80, "web.t1.example.test", "/")),
            vec!["172.17.0.2".to_string(), "172.17.0.5".to_string()]
        )]
    );
    let ingresses = of_kind(&objects, Kind::Ingress);
    let [Object::Ingress(ingress)] = ingresses.as_slice() else {
        panic!("{ingresses:#?}")
    };
    assert_eq!(ingress.metadata.namespace.as_deref(), Some("t1"));
    assert_eq!(ingress.spec.tls[0].hosts, vec!["web.t1.example.test".to_string()]);
    assert_eq!(
        ingress
            .metadata
            .annotations
            .get("nginx.ingress.kubernetes.io/force-ssl-redirect")
            .map(String::as_str),
        Some("true")
    );
    assert_eq!(
        ingress.metadata.creation_timestamp.as_deref(),
        Some("2026-01-01T00:00:01Z")
    );
}

#[test]
fn a_host_belongs_to_the_tenant_of_its_oldest_container() {
    let containers = vec![
        container(
            "t2",
            "late",
            "09",
            &[("kr.ingress.80", "http://shared.example.com")],
            "172.17.0.9",
        ),
        container(
            "t1",
            "early",
            "01",
            &[("kr.ingress.80", "http://shared.example.com")],
            "172.17.0.2",
        ),
    ];
    let (objects, issues) = build(&tenants(), &containers, "c");
    let ingresses = of_kind(&objects, Kind::Ingress);
    assert_eq!(ingresses.len(), 1);
    assert_eq!(ingresses[0].metadata().namespace.as_deref(), Some("t1"));
    let refused: Vec<&Issue> = issues.iter().filter(|i| i.is_error()).collect();
    assert_eq!(refused.len(), 1, "{issues:#?}");
    assert!(
        refused[0]
            .message
            .contains("belongs to another tenant (t1: claimed first by its container early)")
    );
    assert_eq!(refused[0].subject.origin, Some(containers[0].origin()));
    // Every endpoint of t1 is t1's own container.
    assert_eq!(slice_addresses(&objects)[0].1, vec!["172.17.0.2".to_string()]);
}

#[test]
fn bad_labels_and_unreachable_containers_are_reported_per_container() {
    let mut unreachable = container(
        "t1",
        "lonely",
        "02",
        &[("kr.ingress.80", "http://lonely.*")],
        "172.17.0.3",
    );
    unreachable.address = Err("not on network \"front\"".into());
    let containers = vec![
        container(
            "t1",
            "mixed",
            "01",
            &[("kr.ingress.80", "http://good.*"), ("kr.ingress.x", "http://bad.*")],
            "172.17.0.2",
        ),
        unreachable,
    ];
    let (objects, issues) = build(&tenants(), &containers, "c");
    let texts: Vec<String> = issues.iter().map(ToString::to_string).collect();
    assert_eq!(texts.len(), 2, "{texts:#?}");
    assert!(
        texts
            .iter()
            .any(|t| t.contains("container t1/mixed") && t.contains("kr.ingress.x"))
    );
    assert!(
        texts
            .iter()
            .any(|t| t.contains("container t1/lonely") && t.contains("no reachable address"))
    );
    // The good label routes; the unreachable container's route exists with no endpoints (503).
    let hosts: Vec<String> = of_kind(&objects, Kind::Ingress)
        .iter()
        .map(|o| match o {
            Object::Ingress(i) => i.spec.rules[0].host.clone().unwrap_or_default(),
            _ => unreachable!(),
        })
        .collect();
    assert_eq!(
        hosts,
        vec!["good.t1.example.test".to_string(), "lonely.t1.example.test".to_string()]
    );
    let slices = slice_addresses(&objects);
    assert_eq!(slices.iter().filter(|(_, a)| a.is_empty()).count(), 1);
}

#[test]
fn output_is_deterministic_and_names_are_valid() {
    let long = format!("https://{}.example.com/a, http://x.example.com/b", "a".repeat(60));
    let containers = vec![
        container("t1", "b", "02", &[("kr.ingress.8080", &long)], "172.17.0.3"),
        container(
            "t1",
            "a",
            "01",
            &[("kr.ingress.80", "http://x.example.com/c")],
            "172.17.0.2",
        ),
    ];
    let (first, _) = build(&tenants(), &containers, "c");
    let reversed: Vec<Container> = containers.iter().rev().cloned().collect();
    let (second, _) = build(&tenants(), &reversed, "c");
    assert_eq!(first, second);
    for object in &first {
        // Service names are DNS labels (63 at most); the others DNS subdomains.
        let name = &object.object.metadata().name;
        assert!(labels::check_dns_name(name).is_ok(), "{name}");
        if object.object.kind() == Kind::Service {
            assert!(name.len() <= 63 && !name.contains('.'), "{name}");
        }
    }
    // x.example.com: one Ingress (http), two paths to two Services.
    let x: Vec<&Object> = of_kind(&first, Kind::Ingress)
        .into_iter()
        .filter(|o| matches!(o, Object::Ingress(i) if i.spec.rules[0].host.as_deref() == Some("x.example.com")))
        .collect();
    let [Object::Ingress(x)] = x.as_slice() else { panic!() };
    assert_eq!(x.spec.rules[0].http.as_ref().map(|h| h.paths.len()), Some(2));
}
