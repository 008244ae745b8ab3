use super::*;
use crate::config::Snapshot;
use crate::tcp_ports::allocator::TcpOptions;
use crate::translate::{TranslateOptions, translate};

fn claim(service: &str, port: u16, created: Option<&str>) -> TcpClaim {
    TcpClaim {
        namespace: "shop".into(),
        service: service.into(),
        port,
        created: created.map(str::to_string),
        seed: None,
        assigned: None,
        annotated: None,
        origin: Origin::Api,
    }
}

fn kinds(objects: &[Arc<StoredObject>]) -> Vec<String> {
    objects
        .iter()
        .map(|o| format!("{} {}", o.object.kind(), o.key().name))
        .collect()
}

#[test]
fn assigned_claims_are_served_by_a_gateway_and_refused_ones_are_errors_on_their_service() {
    let allocator = shared(
        PortAllocator::open(TcpOptions {
            range: 30000..=30009,
            quota: 1,
            state_dir: None,
        })
        .unwrap(),
    );
    let claims = vec![
        claim("db", 5432, Some("2026-01-01T00:00:00Z")),
        claim("cache", 6379, Some("2026-01-02T00:00:00Z")),
    ];
    let assigned = assign(&allocator, ClaimKind::Service, &requests(&claims));
    let (objects, issues) = build(&claims, &assigned);
    assert_eq!(
        kinds(&objects),
        vec![
            "TCPRoute tcp-db-5432",
            "GatewayClass vestibule-tcp",
            "Gateway vestibule-tcp",
            "Secret assignments"
        ]
    );
    assert!(objects.iter().all(|o| o.origin == Origin::TcpAllocator));
    assert_eq!(issues.len(), 1, "{issues:?}");
    let issue = issues[0].to_string();
    assert!(issue.starts_with("error: Service shop/cache"), "{issue}");
    assert!(
        issue.contains(
            "metadata.annotations[vestibule.dev/tcp-ports]: public TCP port refused: tenant shop already has 1 TCP \
             ports (--tcp-quota 1); port 6379 gets none"
        ),
        "{issue}"
    );

    // Translated with the Service and its EndpointSlice: port 30000 serves the Service's port,
    // and the claim reads its assignment back.
    let yaml = "apiVersion: v1\nkind: Service\nmetadata: {name: db, namespace: shop, annotations: \
                {vestibule.dev/tcp-ports: \"5432\"}}\nspec: {ports: [{port: 5432, targetPort: 5433}]}\n---\n\
                apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: db-1, namespace: shop, \
                labels: {kubernetes.io/service-name: db}}\naddressType: IPv4\nports: [{port: 5433}]\n\
                endpoints: [{addresses: [10.0.0.1], conditions: {ready: true}}]\n";
    let parsed = crate::config::parse::parse_documents(yaml, |document| Origin::File {
        path: "in.yaml".into(),
        document,
    });
    let mut all = parsed.objects;
    all.extend(objects);
    let translation = translate(&Snapshot::from_objects(all, Vec::new()), &TranslateOptions::default());
    assert_eq!(translation.tcp_claims[0].assigned, Some(30000));
    let routes = translation.table.describe();
    let text = routes.to_string();
    assert!(text.contains("\"port\":30000"), "{text}");
    assert!(text.contains("\"protocol\":\"TCP\""), "{text}");
    assert!(text.contains("10.0.0.1:5433"), "{text}");
    assert!(
        !translation.issues.iter().any(|i| i.is_error()),
        "{:?}",
        translation.issues
    );
}

#[test]
fn no_claims_no_objects_so_the_start_answer_stands() {
    let (objects, issues) = build(&[], &Claims::new());
    assert!(objects.is_empty(), "{:?}", kinds(&objects));
    assert!(issues.is_empty());
}
