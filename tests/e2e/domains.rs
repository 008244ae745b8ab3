//! Tenants and custom domains (issue 14, "Tenants and domains"): `vestibule run --tenancy
//! namespace` on manifests, custom domains verified against a real DNS server (`dnsmasq` on a
//! loopback port, its records rewritten by the test and dnsmasq restarted), real HTTP requests.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::dns::Dnsmasq;
use crate::support::{CLASS, Vestibule, echo_backend, echo_name, get, service_in, write_manifest};

/// The `--publish-address` `Vestibule::start` passes: apex domains must resolve to it.
const INGRESS_IP: &str = "203.0.113.7";

/// The tenants' default domains, and `ready.test` (for [`Dnsmasq::wait_answering`]); names
/// under `example` and `test` that are not listed answer NXDOMAIN, as a real zone's would.
fn records(extra: &str) -> String {
    format!(
        "local=/example/\nlocal=/test/\nhost-record=ready.test,127.0.0.9\nhost-record=t1.apps.test,{INGRESS_IP}\nhost-record=t2.apps.test,{INGRESS_IP}\n\
         host-record=other.apps.test,198.51.100.1\n{extra}"
    )
}

/// An Ingress `name` in `namespace`, created at `created`, routing each of `hosts` `/` to `service`.
fn ingress(namespace: &str, name: &str, created: &str, hosts: &[&str], service: &str) -> String {
    let rules: String = hosts
        .iter()
        .map(|host| {
            format!(
                "  - host: \"{host}\"\n    http: {{paths: [{{path: /, pathType: Prefix, backend: {{service: {{name: {service}, port: {{number: 80}}}}}}}}]}}\n"
            )
        })
        .collect();
    format!(
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {{name: {name}, namespace: {namespace}, creationTimestamp: \"{created}\"}}\nspec:\n  rules:\n{rules}"
    )
}

async fn start(dir: &Path, dns: &Dnsmasq, recheck: &str, grace: &str) -> Vestibule {
    Vestibule::start(
        dir,
        &[
            "--tenancy",
            "namespace",
            "--tenant-domain-suffix",
            "apps.test",
            "--dns-server",
            &dns.server(),
            "--domain-recheck",
            recheck,
            "--domain-grace",
            grace,
        ],
    )
    .await
}

/// The issue messages `/api/status` shows for Ingress `namespace/name`.
async fn status_issues(vestibule: &Vestibule, namespace: &str, name: &str) -> Vec<String> {
    let statuses = vestibule.admin_json("/api/status").await;
    statuses
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "Ingress" && e["namespace"] == namespace && e["name"] == name)
        .flat_map(|e| e["issues"].as_array().cloned().unwrap_or_default())
        .map(|i| i.as_str().unwrap_or_default().to_string())
        .collect()
}

/// Polls `/api/status` until an issue of the Ingress contains `text` (bounded); returns it.
async fn wait_issue(vestibule: &Vestibule, namespace: &str, name: &str, text: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let issues = status_issues(vestibule, namespace, name).await;
        if let Some(found) = issues.iter().find(|i| i.contains(text)) {
            return found.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no issue of Ingress {namespace}/{name} contains {text:?}; issues: {issues:#?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Pending (wrong CNAME: 404 and the reason in /api/status) → verified (CNAME to the tenant's
/// default domain: routed) → record removed (still routed within --domain-grace) → unbound
/// (404) after it. The tenant's own default domain routes from the start, unverified.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_domain_pending_then_verified_then_unbound_after_grace() {
    let Some(mut dns) = Dnsmasq::start(&records("cname=shop.example,other.apps.test\n")).await else {
        return;
    };
    let backend = echo_backend("t1-shop").await;
    let dir = tempfile::tempdir().unwrap();
    write_manifest(dir.path(), "class.yaml", CLASS);
    write_manifest(dir.path(), "svc.yaml", &service_in("t1", "shop", backend));
    write_manifest(
        dir.path(),
        "ing.yaml",
        &ingress(
            "t1",
            "shop",
            "2026-01-01T00:00:00Z",
            &["shop.example", "web.t1.apps.test"],
            "shop",
        ),
    );
    let vestibule = start(dir.path(), &dns, "200ms", "2s").await;

    assert_eq!(
        echo_name(&vestibule.wait_for("web.t1.apps.test", "/", 200).await),
        "t1-shop"
    );
    let pending = wait_issue(
        &vestibule,
        "t1",
        "shop",
        "CNAME of shop.example is other.apps.test, expected t1.apps.test",
    )
    .await;
    assert!(pending.contains("pending verification"), "{pending}");
    assert!(pending.contains("spec.rules[0].host"), "{pending}");
    assert_eq!(get(vestibule.http, "shop.example", "/").await.unwrap().0, 404);

    let changed = Instant::now();
    dns.set(&records("cname=shop.example,t1.apps.test\n")).await;
    assert_eq!(
        echo_name(&vestibule.wait_for("shop.example", "/", 200).await),
        "t1-shop"
    );
    eprintln!(
        "record set (dnsmasq restarted) → custom domain routed: {:?}",
        changed.elapsed()
    );
    assert!(
        !status_issues(&vestibule, "t1", "shop")
            .await
            .iter()
            .any(|i| i.contains("pending")),
        "verified: no pending issue left"
    );

    let removed = Instant::now();
    dns.set(&records("")).await;
    // Within the grace period the domain keeps routing…
    assert_eq!(get(vestibule.http, "shop.example", "/").await.unwrap().0, 200);
    // …and after it, it is unbound.
    vestibule.wait_for("shop.example", "/", 404).await;
    let after = removed.elapsed();
    eprintln!("record removed → custom domain unbound (--domain-grace 2s): {after:?}");
    assert!(
        after >= Duration::from_millis(1200),
        "unbound after {after:?}, before the 2 s grace period"
    );
    wait_issue(&vestibule, "t1", "shop", "shop.example has no CNAME, A or AAAA record").await;
    // The default domain never depended on DNS.
    assert_eq!(get(vestibule.http, "web.t1.apps.test", "/").await.unwrap().0, 200);
}

/// A second tenant cannot take a host the first owns (not a verified custom domain, not a name
/// in the first's default domain, not a domain whose CNAME points at the FIRST tenant); a
/// wildcard custom domain is verified once through its record; an apex by its A record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn takeover_refused_wildcard_and_apex_verified() {
    let config = records(&format!(
        "cname=shop.example,t1.apps.test\ncname=mine.example,t1.apps.test\ncname=*.wild.example,t1.apps.test\n\
         address=/wild2.example/{INGRESS_IP}\nhost-record=apex.example,{INGRESS_IP}\nhost-record=badapex.example,198.51.100.9\n"
    ));
    let Some(_dns) = Dnsmasq::start(&config).await else {
        return;
    };
    let (one, two) = (echo_backend("t1").await, echo_backend("t2").await);
    let dir = tempfile::tempdir().unwrap();
    write_manifest(dir.path(), "class.yaml", CLASS);
    write_manifest(
        dir.path(),
        "t1.yaml",
        &format!(
            "{}---\n{}",
            service_in("t1", "app", one),
            ingress(
                "t1",
                "app",
                "2026-01-01T00:00:00Z",
                &["shop.example", "*.wild.example", "*.wild2.example", "web.t1.apps.test"],
                "app"
            )
        ),
    );
    // t2's Ingress is the NEWER one, though it sorts first by name.
    write_manifest(
        dir.path(),
        "t2.yaml",
        &format!(
            "{}---\n{}",
            service_in("t2", "app", two),
            ingress(
                "t2",
                "a-takeover",
                "2026-02-01T00:00:00Z",
                &[
                    "shop.example",
                    "mine.example",
                    "web.t1.apps.test",
                    "apex.example",
                    "badapex.example"
                ],
                "app"
            )
        ),
    );
    let vestibule = start(dir.path(), &_dns, "1s", "10s").await;

    // Verified for t1 (CNAME), then t2's later claim is refused: t1 keeps it.
    assert_eq!(echo_name(&vestibule.wait_for("shop.example", "/", 200).await), "t1");
    wait_issue(
        &vestibule,
        "t2",
        "a-takeover",
        "host \"shop.example\" belongs to tenant t1 (Ingress t1/app claimed it first)",
    )
    .await;
    // A CNAME to the first tenant's domain proves nothing for the second.
    wait_issue(
        &vestibule,
        "t2",
        "a-takeover",
        "CNAME of mine.example is t1.apps.test, expected t2.apps.test",
    )
    .await;
    assert_eq!(get(vestibule.http, "mine.example", "/").await.unwrap().0, 404);
    // The first tenant's default domain is its alone.
    wait_issue(&vestibule, "t2", "a-takeover", "is in the default domain of tenant t1").await;
    assert_eq!(
        echo_name(&get(vestibule.http, "web.t1.apps.test", "/").await.unwrap().1),
        "t1"
    );

    // Wildcards: through the wildcard's CNAME, and through a wildcard A record.
    assert_eq!(echo_name(&vestibule.wait_for("any.wild.example", "/", 200).await), "t1");
    assert_eq!(
        echo_name(&vestibule.wait_for("other.wild.example", "/", 200).await),
        "t1"
    );
    assert_eq!(echo_name(&vestibule.wait_for("x.wild2.example", "/", 200).await), "t1");

    // Apex by A record equal to --publish-address; a wrong one stays pending, with why.
    assert_eq!(echo_name(&vestibule.wait_for("apex.example", "/", 200).await), "t2");
    let bad = wait_issue(&vestibule, "t2", "a-takeover", "badapex.example has no CNAME").await;
    assert!(bad.contains("198.51.100.9") && bad.contains(INGRESS_IP), "{bad}");
    assert_eq!(get(vestibule.http, "badapex.example", "/").await.unwrap().0, 404);
}
