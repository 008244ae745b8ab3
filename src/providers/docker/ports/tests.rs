use std::collections::BTreeMap;

use super::*;

fn container(tenant: &str, name: &str, created: u32, labels: &[(&str, &str)]) -> Container {
    Container {
        tenant: tenant.into(),
        id: format!("{tenant}-{name}-id"),
        name: name.into(),
        created: format!("2026-01-01T00:00:{created:02}.000000000Z"),
        labels: labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        running: true,
        paused: false,
        health: None,
        address: Ok("10.0.0.2".parse().unwrap()),
    }
}

fn tcp(name: &str, created: u32, port: &str) -> Container {
    container("acme", name, created, &[(&format!("kr.ingress.{port}"), "tcp://")])
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
    let containers: Vec<Container> = (0..5).map(|i| tcp(&format!("db{i}"), 10 - i, "5432")).collect();
    let claims = table(&ports.assign(&containers));
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
    more.push(container("other", "db", 1, &[("kr.ingress.5432", "tcp://")]));
    let claims = ports.assign(&more);
    assert_eq!(claims[&key("other", "db", 5432)], Claim::Assigned(30004));
    // A newer claim never takes the port of a live one, even when older.
    let mut older = more.clone();
    older.push(tcp("ancient", 0, "5432"));
    let claims = table(&ports.assign(&older));
    assert!(claims[&("ancient".to_string(), 5432)].is_err(), "{claims:?}");
    assert_eq!(claims[&("db4".to_string(), 5432)], Ok(30000));
}

#[test]
fn assignments_are_stable_across_rounds_and_replicas_share_one() {
    let mut ports = allocator(30000..=30999, 4, None);
    let compose = |replica: u32| {
        container(
            "acme",
            &format!("shop-db-{replica}"),
            replica,
            &[
                ("kr.ingress.5432", "tcp://"),
                ("com.docker.compose.project", "shop"),
                ("com.docker.compose.service", "db"),
            ],
        )
    };
    let first = ports.assign(&[tcp("cache", 1, "6379"), compose(1)]);
    assert_eq!(first[&key("acme", "cache", 6379)], Claim::Assigned(30000));
    assert_eq!(first[&key("acme", "shop-db", 5432)], Claim::Assigned(30001));
    // Scaled to three replicas, listed in another order: one claim, same ports.
    let again = ports.assign(&[compose(3), compose(2), compose(1), tcp("cache", 1, "6379")]);
    assert_eq!(again, first);
}

#[test]
fn a_removed_claims_port_is_reserved_for_it_until_the_range_runs_out() {
    let mut ports = allocator(30000..=30002, 4, None);
    ports.assign(&[tcp("a", 1, "80"), tcp("b", 2, "80")]);
    // a is removed: its port is not handed to a new claim while others are free.
    let claims = ports.assign(&[tcp("b", 2, "80"), tcp("c", 3, "80")]);
    assert_eq!(claims[&key("acme", "b", 80)], Claim::Assigned(30001));
    assert_eq!(claims[&key("acme", "c", 80)], Claim::Assigned(30002));
    // a comes back (recreated: a new container, same name): its old port.
    let claims = ports.assign(&[tcp("a", 9, "80"), tcp("b", 2, "80"), tcp("c", 3, "80")]);
    assert_eq!(claims[&key("acme", "a", 80)], Claim::Assigned(30000));
    // a gone again, and the range full: d takes the reserved port.
    let claims = ports.assign(&[tcp("b", 2, "80"), tcp("c", 3, "80"), tcp("d", 4, "80")]);
    assert_eq!(claims[&key("acme", "d", 80)], Claim::Assigned(30000));
    // Now a finds the range exhausted.
    let claims = ports.assign(&[
        tcp("a", 9, "80"),
        tcp("b", 2, "80"),
        tcp("c", 3, "80"),
        tcp("d", 4, "80"),
    ]);
    match &claims[&key("acme", "a", 80)] {
        Claim::Refused(why) => assert!(why.contains("every port of --tcp-ports 30000-30002 is taken"), "{why}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_stopped_container_keeps_its_port() {
    let mut ports = allocator(30000..=30999, 4, None);
    let mut db = tcp("db", 1, "5432");
    ports.assign(&[tcp("web", 0, "80"), db.clone()]);
    db.running = false;
    db.address = Err("stopped".into());
    let claims = ports.assign(&[db.clone()]);
    assert_eq!(claims[&key("acme", "db", 5432)], Claim::Assigned(30001));
}

#[test]
fn the_state_dir_keeps_assignments_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let mut ports = allocator(30000..=30999, 4, Some(state.clone()));
    ports.assign(&[tcp("a", 1, "80"), tcp("b", 2, "80")]);
    // b is removed while running; a restart later, b comes back first and a second.
    ports.assign(&[tcp("a", 1, "80")]);
    drop(ports);
    let text = std::fs::read_to_string(state.join(STATE_FILE)).unwrap();
    assert!(text.contains("\"publicPort\": 30001"), "{text}");
    assert!(!state.join("tcp-ports.json.tmp").exists());

    let mut restarted = allocator(30000..=30999, 4, Some(state.clone()));
    let claims = restarted.assign(&[tcp("new", 0, "80"), tcp("b", 5, "80"), tcp("a", 6, "80")]);
    assert_eq!(claims[&key("acme", "a", 80)], Claim::Assigned(30000));
    assert_eq!(claims[&key("acme", "b", 80)], Claim::Assigned(30001));
    assert_eq!(claims[&key("acme", "new", 80)], Claim::Assigned(30002));

    // A narrower range drops what is outside it.
    let mut narrow = allocator(30001..=30001, 4, Some(state.clone()));
    let claims = narrow.assign(&[tcp("a", 6, "80"), tcp("b", 5, "80")]);
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
