//! `vestibule migrate`, run as a user runs it: over the corpus of ingress-nginx manifests in
//! `tests/migrate/corpus/` (a golden report, `tests/migrate/report.snap`), its exit statuses
//! and its JSON document.
//!
//! Regenerate the report after a deliberate change, then review the diff:
//!
//!     INSTA_UPDATE=always cargo test --test migrate

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

const CORPUS: &str = "tests/migrate/corpus";

/// Runs `vestibule migrate ARGS` from the repository's root (so paths in the report are relative).
fn migrate(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vestibule"))
        .arg("migrate")
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("vestibule runs")
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).expect("UTF-8 output")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn json(args: &[&str]) -> (Option<i32>, Value) {
    let mut all = vec!["--output", "json"];
    all.extend_from_slice(args);
    let out = migrate(&all);
    let text = stdout(&out);
    let document = serde_json::from_str(&text).unwrap_or_else(|e| panic!("not one JSON document ({e}):\n{text}"));
    (out.status.code(), document)
}

#[test]
fn corpus_report_is_golden() {
    let out = migrate(&["-f", CORPUS]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "the corpus changes behaviour:\n{}",
        stderr(&out)
    );
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path("migrate");
    settings.set_prepend_module_to_snapshot(false);
    settings.set_omit_expression(true);
    settings.bind(|| insta::assert_snapshot!("report", stdout(&out)));
}

#[test]
fn corpus_is_large_and_covers_the_common_patterns() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(CORPUS);
    let files = std::fs::read_dir(&dir).unwrap().count();
    assert!(files >= 30, "{files} files");
    let (_, document) = json(&["-f", CORPUS]);
    let keys: BTreeSet<String> = document["ingresses"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|ingress| ingress["annotations"].as_array().unwrap().iter())
        .map(|annotation| {
            annotation["key"]
                .as_str()
                .unwrap()
                .rsplit('/')
                .next()
                .unwrap()
                .to_string()
        })
        .collect();
    for name in [
        "auth-type",
        "auth-url",
        "auth-signin",
        "rewrite-target",
        "app-root",
        "canary-weight",
        "canary-by-header",
        "enable-cors",
        "limit-rps",
        "backend-protocol",
        "affinity",
        "configuration-snippet",
        "server-snippet",
        "ssl-redirect",
        "force-ssl-redirect",
        "proxy-body-size",
        "proxy-read-timeout",
        "whitelist-source-range",
        "denylist-source-range",
        "default-backend",
        "auth-tls-secret",
    ] {
        assert!(keys.contains(name), "the corpus has no {name}");
    }
    // Every category and every kind of finding appears at least once.
    let categories: BTreeSet<&str> = document["ingresses"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|ingress| ingress["annotations"].as_array().unwrap().iter())
        .map(|annotation| annotation["category"].as_str().unwrap())
        .collect();
    assert_eq!(
        categories,
        BTreeSet::from(["supported", "differs", "no-op", "unsupported", "refused"])
    );
    let findings: BTreeSet<&str> = document["ingresses"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|ingress| ingress["findings"].as_array().unwrap().iter())
        .map(|finding| finding["kind"].as_str().unwrap())
        .collect();
    for kind in [
        "withheld",
        "canary",
        "invalid-value",
        "generic-prefix",
        "no-class",
        "https-redirect",
    ] {
        assert!(findings.contains(kind), "no {kind} finding in {findings:?}");
    }
}

/// The JSON document: its fields and types, and a summary that adds up.
#[test]
fn json_is_one_document_with_stable_fields() {
    let (code, document) = json(&["-f", CORPUS]);
    assert_eq!(code, Some(1));
    let top: BTreeSet<&str> = document.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(top, BTreeSet::from(["ingresses", "takeOver", "summary", "configMaps"]));

    let ingresses = document["ingresses"].as_array().unwrap();
    let mut served = 0;
    let mut changes = 0;
    let mut per_category = std::collections::BTreeMap::<String, u64>::new();
    for ingress in ingresses {
        for field in ["namespace", "name", "origin"] {
            assert!(ingress[field].is_string(), "{field}: {ingress}");
        }
        assert!(ingress["class"].is_string() || ingress["class"].is_null(), "{ingress}");
        assert!(
            ingress["controller"].is_string() || ingress["controller"].is_null(),
            "{ingress}"
        );
        let is_served = ingress["served"].as_bool().unwrap();
        assert_eq!(
            ingress["notServedReason"].is_string(),
            !is_served,
            "a reason exactly when not served: {ingress}"
        );
        served += u64::from(is_served);
        changes += u64::from(ingress["changesBehaviour"].as_bool().unwrap());
        for annotation in ingress["annotations"].as_array().unwrap() {
            let fields: BTreeSet<&str> = annotation.as_object().unwrap().keys().map(String::as_str).collect();
            assert_eq!(
                fields,
                BTreeSet::from(["key", "value", "category", "note", "failsClosed"]),
                "{annotation}"
            );
            *per_category
                .entry(annotation["category"].as_str().unwrap().to_string())
                .or_default() += 1;
        }
        for finding in ingress["findings"].as_array().unwrap() {
            assert!(
                finding["kind"].is_string() && finding["message"].is_string(),
                "{finding}"
            );
            assert!(finding["changesBehaviour"].is_boolean(), "{finding}");
        }
    }
    let summary = &document["summary"];
    assert_eq!(summary["ingresses"], ingresses.len());
    assert_eq!(summary["served"], served);
    assert_eq!(summary["notServed"], ingresses.len() as u64 - served);
    assert_eq!(summary["changesBehaviour"], changes);
    for (category, count) in per_category {
        assert_eq!(summary["annotations"][&category], count, "{category}");
    }

    let take_over = document["takeOver"].as_array().unwrap();
    let classes: Vec<&str> = take_over.iter().map(|t| t["class"].as_str().unwrap()).collect();
    assert_eq!(classes, ["nginx", "nginx-internal"]);
    assert_eq!(
        take_over[0]["flags"],
        serde_json::json!(["--controller-name", "k8s.io/ingress-nginx", "--ingress-class", "nginx"])
    );
    assert_eq!(take_over[0]["classFound"], true);
}

#[test]
fn exits_0_when_nothing_changes_behaviour() {
    for file in [
        "00-ingressclass.yaml",
        "23-multi-host-tls.yaml",
        "24-tls-no-annotations.yaml",
        "28-nginx-tuning.yaml",
        "36-other-controller.yaml",
    ] {
        let path = format!("{CORPUS}/{file}");
        let out = migrate(&["-f", &path]);
        assert_eq!(out.status.code(), Some(0), "{file}:\n{}{}", stdout(&out), stderr(&out));
        assert!(
            stdout(&out).contains("Result: nothing changes behaviour"),
            "{}",
            stdout(&out)
        );
        let (code, document) = json(&["-f", &path]);
        assert_eq!(code, Some(0));
        assert_eq!(document["summary"]["changesBehaviour"], 0);
    }
}

#[test]
fn exits_1_when_anything_changes_behaviour() {
    for file in [
        "01-basic-auth.yaml",            // withheld
        "07-canary-weight.yaml",         // canary not served
        "04-rewrite-captures.yaml",      // captures (differs)
        "09-cors.yaml",                  // unsupported
        "05-rewrite-fixed.yaml",         // differs
        "14-configuration-snippet.yaml", // refused
        "26-generic-prefix.yaml",        // an older prefix honoured
    ] {
        let path = format!("{CORPUS}/{file}");
        let out = migrate(&["-f", &path]);
        assert_eq!(out.status.code(), Some(1), "{file}:\n{}{}", stdout(&out), stderr(&out));
        assert!(
            stdout(&out).contains("Result: moving changes behaviour"),
            "{}",
            stdout(&out)
        );
    }
    // Several -f, files and directories mixed.
    let out = migrate(&[
        "-f",
        &format!("{CORPUS}/23-multi-host-tls.yaml"),
        "-f",
        &format!("{CORPUS}/09-cors.yaml"),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains("2 Ingress(es)"), "{}", stdout(&out));
}

#[test]
fn exits_2_and_names_a_path_that_cannot_be_read() {
    let out = migrate(&["-f", CORPUS, "-f", "tests/migrate/no-such-file.yaml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stdout(&out).is_empty(), "nothing assessed: {}", stdout(&out));
    assert!(
        stderr(&out).contains("tests/migrate/no-such-file.yaml"),
        "{}",
        stderr(&out)
    );

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("broken.yaml"),
        "kind: Ingress\nmetadata: [not, a, map\n",
    )
    .unwrap();
    let path = dir.path().to_str().unwrap();
    let (out, json_out) = (migrate(&["-f", path]), migrate(&["--output", "json", "-f", path]));
    for out in [out, json_out] {
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        assert!(stdout(&out).is_empty(), "{}", stdout(&out));
        assert!(stderr(&out).contains("broken.yaml"), "{}", stderr(&out));
    }
}

#[test]
fn exits_2_on_usage_errors() {
    for args in [
        &[][..],
        &["--output", "xml", "-f", CORPUS][..],
        &["--to", "istio", "-f", CORPUS][..],
    ] {
        let out = migrate(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stdout(&out).is_empty());
    }
}

#[test]
fn no_ingress_is_nothing_to_change() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("svc.yaml"),
        "apiVersion: v1\nkind: Service\nmetadata: {name: a}\nspec: {ports: [{port: 80}]}\n",
    )
    .unwrap();
    let out = migrate(&["-f", dir.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).starts_with("No Ingress found."), "{}", stdout(&out));
}

/// An Ingress on a class not named `nginx`, with TLS and no ingress-nginx annotation, loses the
/// default HTTPS redirect — unless Vestibule takes ingress-nginx's classes over in place
/// (`--controller-name k8s.io/ingress-nginx`), which keeps ingress-nginx's defaults.
#[test]
fn the_https_redirect_finding_follows_the_controller_name_vestibule_will_run_with() {
    let path = format!("{CORPUS}/39-tls-internal-class.yaml");
    let out = migrate(&["-f", &path]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(stdout(&out).contains("plain HTTP is served here"), "{}", stdout(&out));

    let out = migrate(&["--controller-name", "k8s.io/ingress-nginx", "-f", &path]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(!stdout(&out).contains("plain HTTP"), "{}", stdout(&out));
}

/// README's sample ("Migrating from ingress-nginx") is this command's real output.
#[test]
fn readme_sample_is_the_real_output() {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let start = readme
        .find("$ vestibule migrate -f tests/migrate/corpus/04-rewrite-captures.yaml")
        .expect("README has the sample");
    let sample = &readme[start..];
    let sample = &sample[..sample.find("$ echo $?").expect("the sample ends with the exit status")];
    // Two lines of command, then what it printed.
    let printed = sample.splitn(3, '\n').nth(2).expect("two command lines");
    let out = migrate(&[
        "-f",
        "tests/migrate/corpus/04-rewrite-captures.yaml",
        "-f",
        "tests/migrate/corpus/14-configuration-snippet.yaml",
        "-f",
        "tests/migrate/corpus/28-nginx-tuning.yaml",
        "-f",
        "tests/migrate/corpus/00-ingressclass.yaml",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        printed,
        stdout(&out),
        "README's sample is stale: paste the output above"
    );
}

/// ingress-nginx's controller ConfigMap among the manifests: its keys become `vestibule run`
/// flags where one does the same, the rest is classed like the annotations; the chart's other
/// ConfigMaps (tcp-services) are not read as the controller's.
#[test]
fn the_controller_configmap_becomes_flags() {
    let path = format!("{CORPUS}/41-controller-configmap.yaml");
    let (code, document) = json(&["-f", &path]);
    assert_eq!(
        code,
        Some(1),
        "hsts, gzip and the snippet change behaviour: {document:#}"
    );
    let config_maps = document["configMaps"].as_array().expect("configMaps");
    assert_eq!(config_maps.len(), 1, "{config_maps:#?}");
    let cm = &config_maps[0];
    assert_eq!(cm["name"], "edge-ingress-nginx-controller");
    assert_eq!(cm["namespace"], "ingress-nginx");
    let flags: Vec<&str> = cm["flags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    assert_eq!(
        flags,
        [
            "--header-read-timeout 30",
            "--max-header-size 65536",
            "--limit-req-status-code 429",
            "--connect-timeout 10",
            "--response-header-timeout 120",
            "--response-body-timeout 120",
            "--trusted-proxy 10.0.0.0/8",
            "--trusted-proxy 172.16.0.0/12",
            "--drain-timeout 240",
        ]
    );
    let category = |key: &str| {
        cm["keys"]
            .as_array()
            .unwrap()
            .iter()
            .find(|finding| finding["key"] == key)
            .map(|finding| finding["category"].as_str().unwrap().to_string())
            .unwrap_or_else(|| panic!("{key}: {cm:#}"))
    };
    assert_eq!(category("http-snippet"), "refused");
    assert_eq!(category("allow-snippet-annotations"), "supported");
    assert_eq!(category("hsts"), "unsupported");
    assert_eq!(category("proxy-body-size"), "unsupported");

    // The flags it prints are flags `vestibule run` takes, with values it accepts: clap reads
    // every argument before the trailing --help, and refuses an unknown one or a bad value.
    let out = Command::new(env!("CARGO_BIN_EXE_vestibule"))
        .arg("run")
        .args(flags.iter().flat_map(|flag| flag.split(' ')))
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    // The text report lists it and the line to run with.
    let text = stdout(&migrate(&["-f", &path]));
    assert!(
        text.contains("ConfigMap ingress-nginx/edge-ingress-nginx-controller"),
        "{text}"
    );
    assert!(
        text.contains("Carried over by: vestibule run --header-read-timeout 30"),
        "{text}"
    );
}

#[test]
fn an_explicit_configmap_is_picked_by_name_or_refused_when_missing() {
    let path = format!("{CORPUS}/41-controller-configmap.yaml");
    // Named explicitly, a ConfigMap without ingress-nginx's names is read too.
    let (_, document) = json(&["-f", &path, "--configmap", "ingress-nginx/edge-ingress-nginx-tcp"]);
    let config_maps = document["configMaps"].as_array().expect("configMaps");
    assert_eq!(config_maps.len(), 1);
    assert_eq!(config_maps[0]["name"], "edge-ingress-nginx-tcp");

    let out = migrate(&["-f", &path, "--configmap", "ingress-nginx/missing"]);
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    assert!(stdout(&out).is_empty());
    assert!(
        stderr(&out).contains("--configmap ingress-nginx/missing"),
        "{}",
        stderr(&out)
    );

    // Without a ConfigMap the JSON document has no configMaps field.
    let (_, document) = json(&["-f", &format!("{CORPUS}/23-multi-host-tls.yaml")]);
    assert!(document.get("configMaps").is_none(), "{document:#}");
}
