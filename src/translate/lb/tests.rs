use super::*;
use crate::config::parse::parse_documents;
use crate::config::{LoadBalancerIngress, Severity};

fn snapshot(yaml: &str) -> Snapshot {
    let parsed = parse_documents(yaml, |_| Origin::Api);
    assert!(parsed.issues.is_empty(), "{:?}", parsed.issues);
    Snapshot::from_objects(parsed.objects, Vec::new())
}

fn run(yaml: &str) -> (Vec<LbAddresses>, Vec<Issue>) {
    run_with(yaml, &LbOptions::default())
}

fn run_with(yaml: &str, options: &LbOptions) -> (Vec<LbAddresses>, Vec<Issue>) {
    let snapshot = snapshot(yaml);
    let mut issues = Vec::new();
    let first = allocate(&snapshot, options, &mut issues);
    // Deterministic: the same snapshot gives the same answer.
    let mut again = Vec::new();
    assert_eq!(allocate(&snapshot, options, &mut again), first);
    assert_eq!(again, issues);
    (first, issues)
}

/// `name → addresses` of the result, for the Services that have some.
fn addresses(result: &[LbAddresses]) -> BTreeMap<String, Vec<String>> {
    result
        .iter()
        .filter(|e| !e.addresses.is_empty())
        .map(|e| (e.name.clone(), e.addresses.iter().map(ToString::to_string).collect()))
        .collect()
}

/// Sorted, as `translate` sorts them.
fn texts(issues: &[Issue]) -> Vec<String> {
    let mut sorted = issues.to_vec();
    sorted.sort();
    sorted.iter().map(ToString::to_string).collect()
}

fn pool(name: &str, spec: &str) -> String {
    format!(
        "---\napiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {{name: {name}, namespace: metallb-system}}\nspec: {spec}\n"
    )
}

/// A LoadBalancer Service created at minute `minute`, with extra metadata and spec fields
/// (port 80 unless `spec` has ports).
fn service(name: &str, minute: u32, metadata: &str, spec: &str) -> String {
    let ports = if spec.contains("ports:") {
        ""
    } else {
        ", ports: [{port: 80}]"
    };
    format!(
        "---\napiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: shop, creationTimestamp: \"2026-01-01T00:{minute:02}:00Z\"{metadata}}}\nspec: {{type: LoadBalancer{ports}{spec}}}\n"
    )
}

/// The same, with `status.loadBalancer.ingress` holding `ips`.
fn service_holding(name: &str, minute: u32, ips: &[&str], spec: &str) -> String {
    let ingress: Vec<String> = ips.iter().map(|ip| format!("{{ip: \"{ip}\"}}")).collect();
    format!(
        "{}status: {{loadBalancer: {{ingress: [{}]}}}}\n",
        service(name, minute, "", spec),
        ingress.join(", ")
    )
}

fn map(pairs: &[(&str, &[&str])]) -> BTreeMap<String, Vec<String>> {
    pairs
        .iter()
        .map(|(name, ips)| (name.to_string(), ips.iter().map(|s| s.to_string()).collect()))
        .collect()
}

#[test]
fn ranges_and_cidrs_of_both_families_parse_and_bad_ones_say_why() {
    let v4 = |a: [u8; 4]| u128::from(u32::from(Ipv4Addr::from(a)));
    assert_eq!(
        parse_range("192.0.2.0/30"),
        Ok(Range {
            family: Family::V4,
            first: v4([192, 0, 2, 0]),
            last: v4([192, 0, 2, 3])
        })
    );
    // Host bits are ignored, as Go's net.ParseCIDR does.
    assert_eq!(parse_range("192.0.2.9/30"), parse_range("192.0.2.8/30"));
    assert_eq!(
        parse_range(" 192.0.2.10 - 192.0.2.20 "),
        Ok(Range {
            family: Family::V4,
            first: v4([192, 0, 2, 10]),
            last: v4([192, 0, 2, 20])
        })
    );
    assert_eq!(parse_range("192.0.2.7/32").map(|r| r.last - r.first), Ok(0));
    assert_eq!(parse_range("0.0.0.0/0").map(|r| r.last), Ok(u128::from(u32::MAX)));
    let v6 = parse_range("2001:db8::/126").unwrap();
    assert_eq!((v6.family, v6.last - v6.first), (Family::V6, 3));
    assert_eq!(parse_range("::/0").map(|r| r.last), Ok(u128::MAX));
    assert_eq!(parse_range("2001:db8::1-2001:db8::5").map(|r| r.last - r.first), Ok(4));
    for (bad, says) in [
        ("192.0.2.1", "not a CIDR"),
        ("192.0.2.0/33", "prefix length"),
        ("2001:db8::/129", "prefix length"),
        ("192.0.2.x/24", "not an IP address"),
        ("192.0.2.9-192.0.2.1", "ends before it starts"),
        ("192.0.2.1-2001:db8::1", "mixes IPv4 and IPv6"),
        ("", "not a CIDR"),
    ] {
        let error = parse_range(bad).unwrap_err();
        assert!(error.contains(says), "{bad:?}: {error}");
    }
}

#[test]
fn services_get_the_first_free_addresses_oldest_first() {
    let yaml = [
        pool("main", "{addresses: [192.0.2.0/30, 192.0.2.10-192.0.2.10]}"),
        service("newer", 5, "", ""),
        service("older", 1, "", ""),
        service("newest", 9, "", ""),
        service("none-left", 10, "", ""),
        service("last", 11, "", ""),
        service("over", 12, "", ""),
    ]
    .concat();
    let (result, issues) = run(&yaml);
    assert_eq!(
        addresses(&result),
        map(&[
            ("older", &["192.0.2.0"]),
            ("newer", &["192.0.2.1"]),
            ("newest", &["192.0.2.2"]),
            ("none-left", &["192.0.2.3"]),
            ("last", &["192.0.2.10"]),
        ])
    );
    // Not enough: the newest goes without, and says why, on itself.
    assert!(!addresses(&result).contains_key("over"));
    assert_eq!(
        texts(&issues),
        [
            "warning: Service shop/over (Kubernetes API): spec.type: no IPv4 address: no IPv4 address left in pool(s) \"main\""
        ]
    );
    let older = result.iter().find(|e| e.name == "older").unwrap();
    assert_eq!(older.pools, ["main"]);
    assert!(older.changed());
}

#[test]
fn addresses_in_status_are_kept_and_a_restart_changes_nothing() {
    let pools = pool("main", "{addresses: [192.0.2.0/29]}");
    // `b` holds .5 from an earlier allocation; `a` (older) is new.
    let yaml = [
        pools.clone(),
        service_holding("b", 2, &["192.0.2.5"], ""),
        service("a", 1, "", ""),
    ]
    .concat();
    let (result, issues) = run(&yaml);
    assert!(issues.is_empty(), "{issues:?}");
    assert_eq!(addresses(&result), map(&[("a", &["192.0.2.0"]), ("b", &["192.0.2.5"])]));
    assert!(!result.iter().find(|e| e.name == "b").unwrap().changed());

    // The statuses as written; then a newer Service: nobody moves.
    let written = [
        pools.clone(),
        service_holding("b", 2, &["192.0.2.5"], ""),
        service_holding("a", 1, &["192.0.2.0"], ""),
        service("c", 3, "", ""),
    ]
    .concat();
    let (result, _) = run(&written);
    assert_eq!(
        addresses(&result),
        map(&[("a", &["192.0.2.0"]), ("b", &["192.0.2.5"]), ("c", &["192.0.2.1"])])
    );
    assert_eq!(
        result
            .iter()
            .filter(|e| e.changed())
            .map(|e| e.name.as_str())
            .collect::<Vec<_>>(),
        ["c"]
    );
}

#[test]
fn an_address_no_longer_valid_is_replaced_and_a_doubly_held_one_stays_with_the_older() {
    let yaml = [
        pool("main", "{addresses: [192.0.2.0/30]}"),
        // Out of every pool (its pool was deleted).
        service_holding("stray", 1, &["198.51.100.1"], ""),
        // Two Services claim .2 in their status (no sharing key): the older keeps it.
        service_holding("first", 2, &["192.0.2.2"], ""),
        service_holding("second", 3, &["192.0.2.2"], ""),
        // A hostname (another implementation's) is not an address of ours.
        service("named", 4, "", ""),
    ]
    .concat();
    let (result, issues) = run(&yaml);
    assert!(issues.is_empty(), "{issues:?}");
    assert_eq!(
        addresses(&result),
        map(&[
            ("first", &["192.0.2.2"]),
            ("stray", &["192.0.2.0"]),
            ("second", &["192.0.2.1"]),
            ("named", &["192.0.2.3"]),
        ])
    );
}

#[test]
fn auto_assign_false_pools_serve_only_services_that_ask_for_them() {
    let yaml = [
        pool("reserved", "{addresses: [192.0.2.0/30], autoAssign: false}"),
        pool("public", "{addresses: [198.51.100.0/30]}"),
        service("plain", 1, "", ""),
        service(
            "pinned",
            2,
            ", annotations: {metallb.universe.tf/address-pool: reserved}",
            "",
        ),
        service(
            "new-spelling",
            3,
            ", annotations: {metallb.io/address-pool: reserved}",
            "",
        ),
        service("asked", 4, "", ", loadBalancerIP: 192.0.2.3"),
    ]
    .concat();
    let (result, issues) = run(&yaml);
    assert!(issues.is_empty(), "{issues:?}");
    assert_eq!(
        addresses(&result),
        map(&[
            ("plain", &["198.51.100.0"]),
            ("pinned", &["192.0.2.0"]),
            ("new-spelling", &["192.0.2.1"]),
            ("asked", &["192.0.2.3"]),
        ])
    );
    // Once held, an address of an autoAssign: false pool stays only while asked for.
    let later = [
        pool("reserved", "{addresses: [192.0.2.0/30], autoAssign: false}"),
        pool("public", "{addresses: [198.51.100.0/30]}"),
        service_holding("plain", 1, &["192.0.2.0"], ""),
    ]
    .concat();
    assert_eq!(addresses(&run(&later).0), map(&[("plain", &["198.51.100.0"])]));
}

#[test]
fn avoid_buggy_ips_skips_dot_zero_and_dot_255() {
    let yaml = [
        pool("buggy", "{addresses: [192.0.2.255-192.0.3.1], avoidBuggyIPs: true}"),
        service("a", 1, "", ""),
        service("b", 2, "", ""),
        service("asks-zero", 3, "", ", loadBalancerIP: 192.0.3.0"),
    ]
    .concat();
    let (result, issues) = run(&yaml);
    assert_eq!(addresses(&result), map(&[("a", &["192.0.3.1"])]));
    assert_eq!(
        texts(&issues),
        [
            "warning: Service shop/asks-zero (Kubernetes API): spec.loadBalancerIP: 192.0.3.0 ends in .0 or .255, which pool \"buggy\" avoids",
            "warning: Service shop/b (Kubernetes API): spec.type: no IPv4 address: no IPv4 address left in pool(s) \"buggy\"",
        ]
    );
}

#[test]
fn requested_addresses_are_given_when_free_and_refusals_name_the_holder() {
    let yaml = [
        pool("main", "{addresses: [192.0.2.0/29]}"),
        service_holding("holder", 1, &["192.0.2.4"], ""),
        service("wants-held", 2, "", ", loadBalancerIP: 192.0.2.4"),
        service("wants-outside", 3, "", ", loadBalancerIP: 203.0.113.1"),
        service("wants-garbage", 4, "", ", loadBalancerIP: not-an-ip"),
        service(
            "by-annotation",
            5,
            ", annotations: {metallb.universe.tf/loadBalancerIPs: \"192.0.2.6\"}",
            ", loadBalancerIP: 192.0.2.7",
        ),
        service("wants-free", 6, "", ", loadBalancerIP: 192.0.2.5"),
        service(
            "wrong-pool",
            7,
            ", annotations: {metallb.universe.tf/address-pool: other}",
            ", loadBalancerIP: 192.0.2.3",
        ),
    ]
    .concat();
    let (result, issues) = run(&yaml);
    assert_eq!(
        addresses(&result),
        map(&[
            ("holder", &["192.0.2.4"]),
            ("by-annotation", &["192.0.2.6"]),
            ("wants-free", &["192.0.2.5"]),
        ])
    );
    assert_eq!(
        texts(&issues),
        [
            "warning: Service shop/by-annotation (Kubernetes API): spec.loadBalancerIP: ignored: the metallb.universe.tf/loadBalancerIPs annotation is used instead (set one of them)",
            "warning: Service shop/wants-garbage (Kubernetes API): spec.loadBalancerIP: \"not-an-ip\" is not an IP address",
            "warning: Service shop/wants-held (Kubernetes API): spec.loadBalancerIP: 192.0.2.4 is held by Service shop/holder, and both need the same allow-shared-ip key to share it",
            "warning: Service shop/wants-outside (Kubernetes API): spec.loadBalancerIP: 203.0.113.1 is in no address pool",
            "warning: Service shop/wrong-pool (Kubernetes API): spec.loadBalancerIP: 192.0.2.3 is in pool \"main\", not in the pool asked for (\"other\")",
        ]
    );
    // The holder keeps its address: the Service that asks for it is the one refused.
    assert!(issues.iter().all(|i| i.severity == Severity::Warning));
}

#[test]
fn a_sharing_key_shares_an_address_between_services_whose_ports_differ() {
    let share = |key: &str| format!(", annotations: {{metallb.universe.tf/allow-shared-ip: {key}}}");
    let yaml = [
        pool("main", "{addresses: [192.0.2.0/29]}"),
        service("web", 1, &share("edge"), ""),
        // Same key, other port: shares web's address.
        service("ssh", 2, &share("edge"), ", ports: [{port: 22}]"),
        // Same key, same port: an address of its own.
        service("web2", 3, &share("edge"), ""),
        // Another key: its own.
        service("dns", 4, &share("other"), ", ports: [{port: 53, protocol: UDP}]"),
        // The new spelling, asking for web's address by name.
        service(
            "mail",
            5,
            ", annotations: {metallb.io/allow-shared-ip: edge}",
            ", ports: [{port: 25}], loadBalancerIP: 192.0.2.0",
        ),
        // Asking for it without the key: refused.
        service("intruder", 6, "", ", ports: [{port: 443}], loadBalancerIP: 192.0.2.0"),
        // Same key, same port number, other protocol: shares.
        service("web-udp", 7, &share("edge"), ", ports: [{port: 80, protocol: UDP}]"),
    ]
    .concat();
    let (result, issues) = run(&yaml);
    assert_eq!(
        addresses(&result),
        map(&[
            ("web", &["192.0.2.0"]),
            ("ssh", &["192.0.2.0"]),
            ("web2", &["192.0.2.1"]),
            ("dns", &["192.0.2.2"]),
            ("mail", &["192.0.2.0"]),
            ("web-udp", &["192.0.2.0"]),
        ])
    );
    assert_eq!(
        texts(&issues),
        [
            "warning: Service shop/intruder (Kubernetes API): spec.loadBalancerIP: 192.0.2.0 is held by Service shop/mail, and both need the same allow-shared-ip key to share it"
        ]
    );
    // externalTrafficPolicy: Local shares only with the same selector.
    let local = [
        pool("main", "{addresses: [192.0.2.0/29]}"),
        service(
            "a",
            1,
            &share("k"),
            ", externalTrafficPolicy: Local, selector: {app: a}",
        ),
        service(
            "b",
            2,
            &share("k"),
            ", ports: [{port: 81}], externalTrafficPolicy: Local, selector: {app: b}",
        ),
        service(
            "c",
            3,
            &share("k"),
            ", ports: [{port: 82}], externalTrafficPolicy: Local, selector: {app: a}",
        ),
    ]
    .concat();
    assert_eq!(
        addresses(&run(&local).0),
        map(&[("a", &["192.0.2.0"]), ("b", &["192.0.2.1"]), ("c", &["192.0.2.0"])])
    );
}

#[test]
fn dual_stack_services_get_one_address_of_each_family_when_pools_allow() {
    let yaml = [
        pool("dual", "{addresses: [192.0.2.0/31, \"2001:db8::/127\"]}"),
        pool("v6only", "{addresses: [\"2001:db8:1::/127\"]}"),
        service(
            "both",
            1,
            "",
            ", ipFamilies: [IPv6, IPv4], ipFamilyPolicy: RequireDualStack",
        ),
        service("v6", 2, "", ", ipFamilies: [IPv6], clusterIP: \"fd00::1\""),
        service("inferred-v6", 3, "", ", clusterIP: \"fd00::2\""),
        service(
            "prefer",
            4,
            "",
            ", ipFamilies: [IPv4, IPv6], ipFamilyPolicy: PreferDualStack",
        ),
        service(
            "require",
            5,
            "",
            ", ipFamilies: [IPv4, IPv6], ipFamilyPolicy: RequireDualStack",
        ),
        service(
            "asks-both",
            6,
            ", annotations: {metallb.universe.tf/loadBalancerIPs: \"2001:db8:1::1, 192.0.2.1\"}",
            ", ipFamilies: [IPv4, IPv6], ipFamilyPolicy: RequireDualStack",
        ),
    ]
    .concat();
    let (result, issues) = run(&yaml);
    assert_eq!(
        addresses(&result),
        map(&[
            // Primary family first.
            ("both", &["2001:db8::", "192.0.2.0"]),
            // The first pool with IPv6 (by name): dual.
            ("v6", &["2001:db8::1"]),
            ("inferred-v6", &["2001:db8:1::"]),
            // Asked for: given before any address is picked for a Service that did not ask.
            ("asks-both", &["192.0.2.1", "2001:db8:1::1"]),
        ])
    );
    assert_eq!(
        texts(&issues),
        [
            // PreferDualStack: no issue for the second family, but the first is missing.
            "warning: Service shop/prefer (Kubernetes API): spec.type: no IPv4 address: no IPv4 address left in pool(s) \"dual\"",
            "warning: Service shop/require (Kubernetes API): spec.type: no IPv4 address: no IPv4 address left in pool(s) \"dual\"",
            "warning: Service shop/require (Kubernetes API): spec.type: no IPv6 address: no IPv6 address left in pool(s) \"dual\", \"v6only\"",
        ]
    );
    // A v6-only pool and a PreferDualStack Service: what there is, without an issue.
    let prefer = [
        pool("v6only", "{addresses: [\"2001:db8:1::/127\"]}"),
        service(
            "prefer",
            1,
            "",
            ", ipFamilies: [IPv6, IPv4], ipFamilyPolicy: PreferDualStack",
        ),
    ]
    .concat();
    let (result, issues) = run(&prefer);
    assert!(issues.is_empty(), "{issues:?}");
    assert_eq!(addresses(&result), map(&[("prefer", &["2001:db8:1::"])]));
}

#[test]
fn service_allocation_selects_namespaces_and_labels_and_orders_by_priority() {
    let yaml = [
        "---\napiVersion: v1\nkind: Namespace\nmetadata: {name: shop, labels: {tier: gold}}\n".to_string(),
        pool("general", "{addresses: [192.0.2.0/30]}"),
        pool(
            "gold",
            "{addresses: [198.51.100.0/30], serviceAllocation: {priority: 10, namespaceSelectors: [{matchLabels: {tier: gold}}]}}",
        ),
        pool(
            "gold-first",
            "{addresses: [203.0.113.0/30], serviceAllocation: {priority: 5, namespaces: [shop], serviceSelectors: [{matchExpressions: [{key: app, operator: In, values: [db]}]}]}}",
        ),
        pool(
            "elsewhere",
            "{addresses: [198.51.100.64/30], serviceAllocation: {priority: 1, namespaces: [other]}}",
        ),
        service("web", 1, "", ""),
        service("db", 2, ", labels: {app: db}", ""),
        service(
            "not-allowed",
            3,
            "",
            ", loadBalancerIP: 198.51.100.65",
        ),
    ]
    .concat();
    let (result, issues) = run(&yaml);
    assert_eq!(
        addresses(&result),
        map(&[("web", &["198.51.100.0"]), ("db", &["203.0.113.0"])])
    );
    assert_eq!(
        texts(&issues),
        [
            "warning: Service shop/not-allowed (Kubernetes API): spec.loadBalancerIP: 198.51.100.65 is in pool \"elsewhere\", whose serviceAllocation does not select this Service"
        ]
    );
}

#[test]
fn only_our_class_is_served_and_former_load_balancers_are_cleared() {
    let yaml = [
        pool("main", "{addresses: [192.0.2.0/29]}"),
        service("unset", 1, "", ""),
        service("ours", 2, "", ", loadBalancerClass: vestibule.dev/lb"),
        service("theirs", 3, "", ", loadBalancerClass: example.com/other"),
        // Status from the other implementation: left alone.
        service_holding("theirs-held", 4, &["203.0.113.9"], ", loadBalancerClass: example.com/other"),
        "---\napiVersion: v1\nkind: Service\nmetadata: {name: was-lb, namespace: shop}\nspec: {type: ClusterIP}\nstatus: {loadBalancer: {ingress: [{ip: 192.0.2.7}]}}\n".to_string(),
        "---\napiVersion: v1\nkind: Service\nmetadata: {name: plain, namespace: shop}\nspec: {type: ClusterIP}\n".to_string(),
    ]
    .concat();
    let (result, issues) = run(&yaml);
    assert!(issues.is_empty(), "{issues:?}");
    assert_eq!(
        addresses(&result),
        map(&[("unset", &["192.0.2.0"]), ("ours", &["192.0.2.1"])])
    );
    let names: Vec<&str> = result.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["ours", "unset", "was-lb"]);
    let cleared = result.iter().find(|e| e.name == "was-lb").unwrap();
    assert!(cleared.addresses.is_empty() && cleared.changed());
    assert_eq!(cleared.status(), serde_json::json!({"loadBalancer": {}}));

    // --lb-default=false and another class: only the class asked for.
    let options = LbOptions {
        class: "example.com/other".into(),
        default_class: false,
        ..LbOptions::default()
    };
    let (result, _) = run_with(&yaml, &options);
    assert_eq!(
        addresses(&result),
        map(&[("theirs", &["192.0.2.0"]), ("theirs-held", &["192.0.2.1"])])
    );
}

#[test]
fn bad_pools_are_errors_on_their_field_and_the_good_parts_still_serve() {
    let yaml = [
        pool("a-first", "{addresses: [192.0.2.0/30]}"),
        pool("b-bad", "{addresses: [192.0.2.2/31, nonsense, 198.51.100.0/31]}"),
        "---\napiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: stray, namespace: default}\nspec: {addresses: [203.0.113.0/24]}\n".to_string(),
        service_holding("kept", 1, &["198.51.100.1"], ""),
        service("new", 2, "", ""),
    ]
    .concat();
    let (result, issues) = run(&yaml);
    assert_eq!(
        addresses(&result),
        map(&[("kept", &["198.51.100.1"]), ("new", &["192.0.2.0"])])
    );
    assert_eq!(
        texts(&issues),
        [
            "error: IPAddressPool metallb-system/b-bad (Kubernetes API): spec.addresses: 192.0.2.2-192.0.2.3 overlaps pool \"a-first\"; an address belongs to one pool, so this range is not used",
            "error: IPAddressPool metallb-system/b-bad (Kubernetes API): spec.addresses[1]: \"nonsense\" is not a CIDR (192.0.2.0/24) or a range (192.0.2.10-192.0.2.20); one address is written 192.0.2.1/32",
            "warning: IPAddressPool default/stray (Kubernetes API): metadata.namespace: not read: address pools are read only in \"metallb-system\" (--lb-config-namespace), as MetalLB does",
        ]
    );
}

#[test]
fn the_legacy_config_map_gives_pools_and_its_errors_name_the_field() {
    let config_map = |config: &str| {
        format!(
            "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: config, namespace: metallb-system}}\ndata:\n  config: |\n{}\n",
            config
                .lines()
                .map(|l| format!("    {l}"))
                .collect::<Vec<_>>()
                .join("\n")
        )
    };
    let legacy = "address-pools:\n- name: legacy\n  protocol: layer2\n  addresses: [192.0.2.0/31]\n- name: manual\n  protocol: bgp\n  auto-assign: false\n  addresses: [198.51.100.0-198.51.100.3, bad]\n- name: buggy\n  avoid-buggy-ips: true\n  addresses: [203.0.113.0/30]\n- name: crd\n  addresses: [10.0.0.0/8]\npeers:\n- peer-address: 10.0.0.1\n  peer-asn: 64501\n  my-asn: 64500";
    let yaml = [
        config_map(legacy),
        pool("crd", "{addresses: [172.16.0.0/30]}"),
        // Another ConfigMap of the namespace is not MetalLB's.
        "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: other, namespace: metallb-system}\ndata: {config: \"address-pools: 5\"}\n".to_string(),
        service("a", 1, "", ""),
        service("b", 2, ", annotations: {metallb.universe.tf/address-pool: manual}", ""),
        service("c", 3, ", annotations: {metallb.universe.tf/address-pool: buggy}", ""),
        service("d", 4, ", annotations: {metallb.universe.tf/address-pool: crd}", ""),
        service("e", 5, ", annotations: {metallb.universe.tf/address-pool: missing}", ""),
    ]
    .concat();
    let (result, issues) = run(&yaml);
    assert_eq!(
        addresses(&result),
        map(&[
            // Pools by name: "buggy" comes first, without its .0.
            ("a", &["203.0.113.1"]),
            ("b", &["198.51.100.0"]),
            ("c", &["203.0.113.2"]),
            ("d", &["172.16.0.0"]),
        ])
    );
    assert_eq!(
        texts(&issues),
        [
            "error: ConfigMap metallb-system/config (Kubernetes API): data.config: address-pools[1].addresses[1]: \"bad\" is not a CIDR (192.0.2.0/24) or a range (192.0.2.10-192.0.2.20); one address is written 192.0.2.1/32",
            "warning: Service shop/e (Kubernetes API): metadata.annotations[metallb.universe.tf/address-pool]: no IPv4 address: pool \"missing\" does not exist",
            "warning: ConfigMap metallb-system/config (Kubernetes API): data.config: address-pools[3].name: pool \"crd\" is defined twice; the IPAddressPool (or the first) is used",
        ]
    );
    let (_, issues) = run(&config_map("address-pools: [this is not: a list"));
    assert_eq!(issues.len(), 1, "{issues:?}");
    assert!(
        issues[0]
            .to_string()
            .starts_with("error: ConfigMap metallb-system/config (Kubernetes API): data.config: MetalLB's configuration does not parse:"),
        "{}",
        issues[0]
    );
}

#[test]
fn another_service_being_bad_never_costs_an_address() {
    // Every Service with an address keeps it while a newer one asks for taken addresses, a
    // pool is exhausted, and a pool entry is broken.
    let yaml = [
        pool("main", "{addresses: [192.0.2.0/31, broken]}"),
        service_holding("one", 1, &["192.0.2.1"], ""),
        service_holding("two", 2, &["192.0.2.0"], ""),
        service("greedy", 0, "", ", loadBalancerIP: 192.0.2.1"),
        service("late", 3, "", ""),
    ]
    .concat();
    let (result, issues) = run(&yaml);
    assert_eq!(
        addresses(&result),
        map(&[("one", &["192.0.2.1"]), ("two", &["192.0.2.0"])])
    );
    assert!(result.iter().all(|e| !e.changed()), "{result:?}");
    assert_eq!(issues.len(), 3, "{issues:?}");
}

#[test]
fn an_empty_ingress_entry_or_hostname_is_not_an_address() {
    let mut snapshot = snapshot(&[pool("main", "{addresses: [192.0.2.0/31]}"), service("a", 1, "", "")].concat());
    let key = ObjectKey::new(Kind::Service, "shop", "a");
    let stored = snapshot.objects.get(&key).unwrap().clone();
    let Object::Service(mut svc) = stored.object.clone() else {
        unreachable!()
    };
    svc.status.load_balancer.ingress = vec![LoadBalancerIngress {
        ip: None,
        hostname: Some("lb.example.com".into()),
    }];
    snapshot = snapshot.with_object(StoredObject::new(Origin::Api, Object::Service(svc)));
    let mut issues = Vec::new();
    let result = allocate(&snapshot, &LbOptions::default(), &mut issues);
    assert_eq!(addresses(&result), map(&[("a", &["192.0.2.0"])]));
    assert!(result[0].changed());
}

/// 1,000 Services from one /22, half of them already holding addresses: the time it takes
/// (the README's figure). `cargo test --lib allocation_of_1000 -- --ignored --nocapture`
#[test]
#[ignore = "a figure, not a check; run with --ignored --nocapture"]
fn allocation_of_1000_services() {
    let mut yaml = pool("main", "{addresses: [10.0.0.0/22], avoidBuggyIPs: true}");
    for i in 0..1000u32 {
        let minute = i % 60;
        if i % 2 == 0 {
            let ip = Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 0, 0, 1)) + i / 2 * 2);
            yaml.push_str(&service_holding(&format!("svc-{i:04}"), minute, &[&ip.to_string()], ""));
        } else {
            yaml.push_str(&service(&format!("svc-{i:04}"), minute, "", ""));
        }
    }
    let snapshot = snapshot(&yaml);
    let rounds = 20;
    let started = std::time::Instant::now();
    let mut result = Vec::new();
    for _ in 0..rounds {
        let mut issues = Vec::new();
        result = allocate(&snapshot, &LbOptions::default(), &mut issues);
        assert!(issues.is_empty(), "{issues:?}");
    }
    let each = started.elapsed() / rounds;
    assert_eq!(result.iter().filter(|e| e.addresses.len() == 1).count(), 1000);
    eprintln!("allocation of 1000 Services (500 held, 500 new): {each:?} per run");
}
