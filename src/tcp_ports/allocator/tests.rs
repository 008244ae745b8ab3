use std::collections::BTreeMap;

use super::*;

fn request(tenant: &str, name: &str, created: u32, port: u16) -> Request {
    Request {
        key: key(tenant, name, port),
        created: Some(format!("2026-01-01T00:00:{created:02}.000000000Z")),
        seed: None,
    }
}

fn tcp(name: &str, created: u32, port: u16) -> Request {
    request("acme", name, created, port)
}

fn service(name: &str, created: Option<u32>, port: u16, seed: Option<u16>) -> Request {
    Request {
        key: ClaimKey {
            kind: ClaimKind::Service,
            ..key("acme", name, port)
        },
        created: created.map(|c| format!("2026-01-01T00:00:{c:02}Z")),
        seed,
    }
}

fn allocator(range: RangeInclusive<u16>, quota: usize, state_dir: Option<PathBuf>) -> PortAllocator {
    PortAllocator::open(TcpOptions {
        range,
        quota,
        state_dir,
    })
    .unwrap()
}

fn key(tenant: &str, name: &str, port: u16) -> ClaimKey {
    ClaimKey {
        kind: ClaimKind::Container,
        tenant: tenant.into(),
        name: name.into(),
        container_port: port,
    }
}

/// The claims as (name, port) → Ok(public port) / Err(reason).
fn table(claims: &Claims) -> BTreeMap<(String, u16), Result<u16, String>> {
    claims
        .iter()
        .map(|(k, c)| {
            let value = match c {
                Claim::Assigned(port) => Ok(*port),
                Claim::Refused(why) => Err(why.clone()),
            };
            ((k.name.clone(), k.container_port), value)
        })
        .collect()
}

#[test]
fn the_quota_refuses_the_fifth_claim_oldest_first_with_a_reason() {
    let mut ports = allocator(30000..=30999, 4, None);
    let containers: Vec<Request> = (0..5).map(|i| tcp(&format!("db{i}"), 10 - i, 5432)).collect();
    let claims = table(&ports.assign(ClaimKind::Container, &containers));
    // Oldest first: db4 (created :06) … db1 (:09) get ports; db0 (:10) is refused.
    let assigned: Vec<(&str, u16)> = claims
        .iter()
        .filter_map(|((name, _), c)| c.as_ref().ok().map(|p| (name.as_str(), *p)))
        .collect();
    assert_eq!(
        assigned,
        vec![("db1", 30003), ("db2", 30002), ("db3", 30001), ("db4", 30000)]
    );
    let refused = claims[&("db0".to_string(), 5432)].clone().unwrap_err();
    assert!(refused.contains("--tcp-quota 4"), "{refused}");
    assert!(refused.contains("tenant acme already has 4"), "{refused}");

    // Another tenant has a quota of its own.
    let mut more = containers.clone();
    more.push(request("other", "db", 1, 5432));
    let claims = ports.assign(ClaimKind::Container, &more);
    assert_eq!(claims[&key("other", "db", 5432)], Claim::Assigned(30004));
    // A newer claim never takes the port of a live one, even when older.
    let mut older = more.clone();
    older.push(tcp("ancient", 0, 5432));
    let claims = table(&ports.assign(ClaimKind::Container, &older));
    assert!(claims[&("ancient".to_string(), 5432)].is_err(), "{claims:?}");
    assert_eq!(claims[&("db4".to_string(), 5432)], Ok(30000));
}

#[test]
fn a_removed_claims_port_is_reserved_for_it_until_the_range_runs_out() {
    let mut ports = allocator(30000..=30002, 4, None);
    ports.assign(ClaimKind::Container, &[tcp("a", 1, 80), tcp("b", 2, 80)]);
    // a is removed: its port is not handed to a new claim while others are free.
    let claims = ports.assign(ClaimKind::Container, &[tcp("b", 2, 80), tcp("c", 3, 80)]);
    assert_eq!(claims[&key("acme", "b", 80)], Claim::Assigned(30001));
    assert_eq!(claims[&key("acme", "c", 80)], Claim::Assigned(30002));
    // a comes back (recreated: a new container, same name): its old port.
    let claims = ports.assign(
        ClaimKind::Container,
        &[tcp("a", 9, 80), tcp("b", 2, 80), tcp("c", 3, 80)],
    );
    assert_eq!(claims[&key("acme", "a", 80)], Claim::Assigned(30000));
    // a gone again, and the range full: d takes the reserved port.
    let claims = ports.assign(
        ClaimKind::Container,
        &[tcp("b", 2, 80), tcp("c", 3, 80), tcp("d", 4, 80)],
    );
    assert_eq!(claims[&key("acme", "d", 80)], Claim::Assigned(30000));
    // Now a finds the range exhausted.
    let claims = ports.assign(
        ClaimKind::Container,
        &[tcp("a", 9, 80), tcp("b", 2, 80), tcp("c", 3, 80), tcp("d", 4, 80)],
    );
    match &claims[&key("acme", "a", 80)] {
        Claim::Refused(why) => assert!(why.contains("every port of --tcp-ports 30000-30002 is taken"), "{why}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_state_dir_keeps_assignments_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let mut ports = allocator(30000..=30999, 4, Some(state.clone()));
    ports.assign(ClaimKind::Container, &[tcp("a", 1, 80), tcp("b", 2, 80)]);
    // b is removed while running; a restart later, b comes back first and a second.
    ports.assign(ClaimKind::Container, &[tcp("a", 1, 80)]);
    drop(ports);
    let text = std::fs::read_to_string(state.join(STATE_FILE)).unwrap();
    assert!(text.contains("\"publicPort\": 30001"), "{text}");
    assert!(!state.join("tcp-ports.json.tmp").exists());

    let mut restarted = allocator(30000..=30999, 4, Some(state.clone()));
    let claims = restarted.assign(
        ClaimKind::Container,
        &[tcp("new", 0, 80), tcp("b", 5, 80), tcp("a", 6, 80)],
    );
    assert_eq!(claims[&key("acme", "a", 80)], Claim::Assigned(30000));
    assert_eq!(claims[&key("acme", "b", 80)], Claim::Assigned(30001));
    assert_eq!(claims[&key("acme", "new", 80)], Claim::Assigned(30002));

    // A narrower range drops what is outside it.
    let mut narrow = allocator(30001..=30001, 4, Some(state.clone()));
    let claims = narrow.assign(ClaimKind::Container, &[tcp("a", 6, 80), tcp("b", 5, 80)]);
    assert_eq!(claims[&key("acme", "b", 80)], Claim::Assigned(30001));
    assert!(matches!(claims[&key("acme", "a", 80)], Claim::Refused(_)));
}

#[test]
fn a_corrupt_state_file_fails_the_start_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(STATE_FILE), "{not json").unwrap();
    let error = PortAllocator::open(TcpOptions {
        state_dir: Some(dir.path().to_path_buf()),
        ..TcpOptions::default()
    })
    .unwrap_err();
    assert!(error.contains("tcp-ports.json is not a TCP port state file"), "{error}");
}

#[test]
fn ranges_parse_with_clear_errors() {
    assert_eq!(parse_range("30000-30999"), Ok(30000..=30999));
    assert_eq!(parse_range("4000"), Ok(4000..=4000));
    assert!(parse_range("0-10").unwrap_err().contains("not a port"));
    assert!(parse_range("30999-30000").unwrap_err().contains("above the last"));
    assert!(parse_range("a-b").unwrap_err().contains("\"a\" is not a port"));
}

#[test]
fn assignments_are_stable_across_rounds() {
    let mut ports = allocator(30000..=30999, 4, None);
    let first = ports.assign(ClaimKind::Container, &[tcp("cache", 1, 6379), tcp("shop-db", 2, 5432)]);
    assert_eq!(first[&key("acme", "cache", 6379)], Claim::Assigned(30000));
    assert_eq!(first[&key("acme", "shop-db", 5432)], Claim::Assigned(30001));
    // Listed in another order, the same claim twice (replicas): the same ports.
    let again = ports.assign(
        ClaimKind::Container,
        &[tcp("shop-db", 3, 5432), tcp("shop-db", 2, 5432), tcp("cache", 1, 6379)],
    );
    assert_eq!(again, first);
}

#[test]
fn kinds_share_the_range_and_the_quota_and_release_only_their_own() {
    let mut ports = allocator(30000..=30999, 3, None);
    ports.assign(ClaimKind::Container, &[tcp("db", 1, 5432), tcp("cache", 2, 6379)]);
    let services = [
        service("pg", Some(1), 5432, None),
        service("redis", Some(2), 6379, None),
    ];
    let claims = ports.assign(ClaimKind::Service, &services);
    let pg = ClaimKey {
        kind: ClaimKind::Service,
        ..key("acme", "pg", 5432)
    };
    let redis = ClaimKey {
        kind: ClaimKind::Service,
        ..key("acme", "redis", 6379)
    };
    assert_eq!(claims[&pg], Claim::Assigned(30002), "not a container's port");
    match &claims[&redis] {
        Claim::Refused(why) => assert!(
            why.contains("tenant acme already has 3 TCP ports (--tcp-quota 3); port 6379 gets none"),
            "{why}"
        ),
        other => panic!("{other:?}"),
    }
    // A round of containers leaves the Services' ports alone.
    let claims = ports.assign(ClaimKind::Container, &[tcp("db", 1, 5432), tcp("cache", 2, 6379)]);
    assert_eq!(claims.len(), 2);
    assert_eq!(ports.assign(ClaimKind::Service, &services)[&pg], Claim::Assigned(30002));
}

#[test]
fn a_seed_is_taken_only_when_free_and_before_new_claims() {
    let mut ports = allocator(30000..=30009, 4, None);
    // Restarted without state: the newer Service's seed is honoured before the older new one.
    let claims = ports.assign(
        ClaimKind::Service,
        &[
            service("old", Some(1), 80, None),
            service("seeded", Some(5), 80, Some(30000)),
        ],
    );
    let id = |name: &str| ClaimKey {
        kind: ClaimKind::Service,
        ..key("acme", name, 80)
    };
    assert_eq!(claims[&id("seeded")], Claim::Assigned(30000));
    assert_eq!(claims[&id("old")], Claim::Assigned(30001));
    // A seed naming a held port, or one outside the range, is only a wish: not granted.
    let claims = ports.assign(
        ClaimKind::Service,
        &[
            service("old", Some(1), 80, None),
            service("seeded", Some(5), 80, Some(30000)),
            service("thief", Some(0), 80, Some(30001)),
            service("outside", Some(1), 81, Some(40000)),
        ],
    );
    assert_eq!(claims[&id("old")], Claim::Assigned(30001));
    assert_eq!(claims[&id("thief")], Claim::Assigned(30002));
    let outside = ClaimKey {
        kind: ClaimKind::Service,
        ..key("acme", "outside", 81)
    };
    assert_eq!(claims[&outside], Claim::Assigned(30003));
    // Nor does a seed take a port reserved for a removed claim.
    let claims = ports.assign(
        ClaimKind::Service,
        &[
            service("seeded", Some(5), 80, None),
            service("late", Some(9), 80, Some(30001)),
        ],
    );
    assert_eq!(claims[&id("late")], Claim::Assigned(30004));
    // Over the quota, a seed does not help.
    let mut small = allocator(30000..=30009, 1, None);
    let claims = small.assign(
        ClaimKind::Service,
        &[service("a", Some(1), 80, None), service("b", Some(2), 80, Some(30005))],
    );
    assert!(matches!(claims[&id("b")], Claim::Refused(_)), "{claims:?}");
}

#[test]
fn state_files_without_kinds_are_containers_and_service_entries_say_so() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join(STATE_FILE),
        r#"{"version": 1, "assignments": [{"tenant": "acme", "name": "db", "containerPort": 5432, "publicPort": 30007}]}"#,
    )
    .unwrap();
    let mut ports = allocator(30000..=30999, 4, Some(dir.path().to_path_buf()));
    let claims = ports.assign(ClaimKind::Container, &[tcp("db", 1, 5432)]);
    assert_eq!(claims[&key("acme", "db", 5432)], Claim::Assigned(30007));
    ports.assign(ClaimKind::Service, &[service("pg", None, 5432, None)]);
    let text = std::fs::read_to_string(dir.path().join(STATE_FILE)).unwrap();
    assert!(text.contains("\"kind\": \"service\""), "{text}");
    assert_eq!(text.matches("\"kind\"").count(), 1, "{text}");
}
