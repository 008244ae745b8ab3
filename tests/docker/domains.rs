//! A custom domain in a label (issue 14, "Tenants and domains"), against the real engine and a
//! real DNS server (`dnsmasq` on a loopback port): not routed while its CNAME does not point at
//! the tenant's default domain, routed once it does, unbound again after the grace period when
//! the record goes away.

use std::time::{Duration, Instant};

use crate::dns::Dnsmasq;
use crate::engine::{Containers, available};
use crate::start;
use crate::support::{Vestibule, echo_name, get};

/// The tenant's default domain (a CNAME target must exist for dnsmasq to answer with it), the
/// readiness name, and `extra`; other names under `example` and `test` answer NXDOMAIN.
fn records(tenant_domain: &str, extra: &str) -> String {
    format!(
        "local=/example/\nlocal=/test/\nhost-record=ready.test,127.0.0.9\nhost-record={tenant_domain},203.0.113.7\n\
         host-record=elsewhere.test,198.51.100.1\n{extra}"
    )
}

/// Polls `/api/issues` until one contains every piece of `text` (bounded).
async fn wait_issue(vestibule: &Vestibule, text: &[&str]) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let issues = vestibule.admin_json("/api/issues").await;
        if let Some(found) = issues
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|i| i["text"].as_str())
            .find(|t| text.iter().all(|piece| t.contains(piece)))
        {
            return found.to_string();
        }
        assert!(Instant::now() < deadline, "no issue with {text:?} in {issues:#}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_custom_domain_label_is_routed_only_while_its_cname_points_at_the_tenant() {
    if !available("a_custom_domain_label_is_routed_only_while_its_cname_points_at_the_tenant") {
        return;
    }
    let tenant = Containers::new();
    let own = tenant.domain();
    let Some(mut dns) = Dnsmasq::start(&records(&own, "cname=shop.example,elsewhere.test")).await else {
        return;
    };
    let server = dns.server();
    let (vestibule, _dir) = start(
        &[&tenant.tenant],
        &[
            "--dns-server",
            &server,
            "--domain-recheck",
            "200ms",
            "--domain-grace",
            "1s",
        ],
    )
    .await;
    tenant.run(
        "shop",
        &[("kr.ingress.8080", "http://shop.example/, http://www.*/")],
        &[],
    );
    // The label's own-domain route answers: the container is routed…
    let body = vestibule.wait_for(&format!("www.{own}"), "/", 200).await;
    assert_eq!(echo_name(&body), "shop");
    // …but the custom domain, whose CNAME points elsewhere, is pending and answers 404.
    let why = wait_issue(&vestibule, &["shop.example", "pending verification", "elsewhere.test"]).await;
    assert!(why.contains(&own), "the reason names the expected target: {why}");
    for _ in 0..5 {
        let (status, _) = get(vestibule.http, "shop.example", "/").await.unwrap();
        assert_eq!(status, 404, "shop.example answered before its CNAME pointed at {own}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The owner points the CNAME at the tenant: routed.
    dns.set(&records(&own, &format!("cname=shop.example,{own}"))).await;
    let body = vestibule.wait_for("shop.example", "/", 200).await;
    assert_eq!(echo_name(&body), "shop");

    // The record goes away (a dangling domain): unbound after the grace period.
    dns.set(&records(&own, "")).await;
    vestibule.wait_for("shop.example", "/", 404).await;
    let body = vestibule.wait_for(&format!("www.{own}"), "/", 200).await;
    assert_eq!(echo_name(&body), "shop", "the tenant's own domain is untouched");
}
