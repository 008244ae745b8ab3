//! `vestibule demo`: the embedded default. Starts three echo backends in-process, makes a
//! throw-away CA and a certificate for the TLS example, fills them into the bundled manifests
//! (`src/demo/manifests.yaml`) and serves those exactly as `vestibule run -f` would.
//!
//! The CA certificate is written to a temporary directory (for `curl --cacert`), removed when
//! the demo ends: on Ctrl-C or SIGTERM, and on a start-up error.

use std::io::{self, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::app::{self, RunOptions};
use crate::config::SourceId;
use crate::config::parse::parse_documents;
use crate::config::{Origin, Severity};
use crate::providers::SourceUpdate;

pub mod docker;

/// The bundled manifests, with `{{placeholders}}`.
pub const MANIFESTS: &str = include_str!("demo/manifests.yaml");

/// The TLS example's host.
pub const TLS_HOST: &str = "secure.cheese.example";

/// A CA and a certificate signed by it.
pub struct DemoCertificate {
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
}

/// Makes a fresh CA and a certificate for `hosts`, signed by it.
pub fn make_certificate(hosts: &[&str]) -> Result<DemoCertificate, rcgen::Error> {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose};
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "Vestibule demo CA");
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate()?)?;
    let mut leaf_params = CertificateParams::new(hosts.iter().map(|h| h.to_string()).collect::<Vec<_>>())?;
    leaf_params
        .distinguished_name
        .push(DnType::CommonName, hosts.first().copied().unwrap_or("vestibule"));
    let leaf_key = KeyPair::generate()?;
    let leaf = leaf_params.signed_by(&leaf_key, &ca)?;
    Ok(DemoCertificate {
        ca_pem: ca.pem(),
        cert_pem: leaf.pem(),
        key_pem: leaf_key.serialize_pem(),
    })
}

/// Fills the placeholders of [`MANIFESTS`]; `gateway_port` is the demo Gateway's listener port.
pub fn render(backends: &[(&str, SocketAddr)], certificate: &DemoCertificate, gateway_port: u16) -> String {
    let mut text = MANIFESTS.replace("{{gateway_port}}", &gateway_port.to_string());
    for (name, addr) in backends {
        text = text.replace(&format!("{{{{{name}_port}}}}"), &addr.port().to_string());
    }
    // JSON strings are valid YAML double-quoted scalars.
    let quote = |s: &str| serde_json::to_string(s).unwrap_or_default();
    text.replace("{{tls_crt}}", &quote(&certificate.cert_pem))
        .replace("{{tls_key}}", &quote(&certificate.key_pem))
}

/// Runs the demo until SIGINT/SIGTERM; its Gateway listens on `options.proxy.gateway_bind`,
/// port `gateway_port`.
pub async fn run(options: RunOptions, gateway_port: u16) -> Result<(), Box<dyn std::error::Error>> {
    // Caught from here on, so Ctrl-C at any moment still removes the scratch directory.
    let mut signals = app::ShutdownSignals::listen()?;
    let mut backends = Vec::new();
    for name in ["cheddar", "stilton", "wensleydale"] {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        tokio::spawn(crate::echo::serve(listener, name.to_string()));
        backends.push((name, addr));
    }
    let certificate = make_certificate(&[TLS_HOST])?;
    // Removed when this function returns, whichever way.
    let scratch = ScratchDir::create()?;
    let ca_path = scratch.write("ca.pem", &certificate.ca_pem)?;
    let text = render(&backends, &certificate, gateway_port);
    let parsed = parse_documents(&text, |document| Origin::Builtin {
        name: "demo".into(),
        document,
    });
    if let Some(issue) = parsed.issues.iter().find(|i| i.severity == Severity::Error) {
        return Err(format!("bundled demo manifests are invalid: {issue}").into());
    }

    let source = SourceId::new("builtin");
    let running = app::start(options.clone(), Some(source.clone())).await?;
    if let Some(tx) = &running.builtin {
        tx.send(SourceUpdate {
            source,
            objects: parsed.objects,
            issues: parsed.issues,
        })
        .await?;
    }
    if !running.wait_ready(std::time::Duration::from_secs(10)).await {
        return Err("the demo configuration was not applied within 10 s".into());
    }
    let addrs = running.proxy.local_addrs();
    let http = addrs.http.ok_or("the demo needs --http")?;
    let https = addrs.https.ok_or("the demo needs --https")?;
    let gateway = SocketAddr::new(options.proxy.gateway_bind, gateway_port);
    print_tour(http, https, gateway, running.admin_addr, &ca_path)?;
    signals.recv().await;
    running.shutdown().await;
    Ok(())
}

/// The demo's directory under the system temporary directory (`$TMPDIR`, else `/tmp`),
/// removed with everything in it when dropped.
struct ScratchDir {
    path: PathBuf,
}

impl ScratchDir {
    fn create() -> io::Result<Self> {
        let path = std::env::temp_dir().join(format!("vestibule-demo-{}", std::process::id()));
        std::fs::create_dir_all(&path)?;
        Ok(ScratchDir { path })
    }

    fn write(&self, name: &str, contents: &str) -> io::Result<PathBuf> {
        let path = self.path.join(name);
        std::fs::write(&path, contents)?;
        Ok(path)
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        if let Err(err) = std::fs::remove_dir_all(&self.path) {
            tracing::warn!(dir = %self.path.display(), "could not remove the demo's temporary directory: {err}");
        }
    }
}

fn print_tour(
    http: SocketAddr,
    https: SocketAddr,
    gateway: SocketAddr,
    admin: SocketAddr,
    ca: &Path,
) -> io::Result<()> {
    let (port, ip, ca) = (https.port(), https.ip(), ca.display());
    let tls = format!("--cacert {ca} --resolve {TLS_HOST}:{port}:{ip} https://{TLS_HOST}:{port}/");
    let sections: [(&str, Vec<(String, String)>); 5] = [
        (
            "Host-based routing:",
            ["cheddar", "stilton", "wensleydale"]
                .iter()
                .map(|c| {
                    (
                        format!("curl -H 'Host: {c}.example' http://{http}/"),
                        format!("200, answered by {c}"),
                    )
                })
                .collect(),
        ),
        (
            "Path-based routing on one host:",
            vec![
                (
                    format!("curl -H 'Host: cheese.example' http://{http}/stilton/blue"),
                    "200, Prefix /stilton → stilton".into(),
                ),
                (
                    format!("curl -H 'Host: cheese.example' http://{http}/wensleydale"),
                    "200, Exact /wensleydale".into(),
                ),
                (
                    format!("curl -H 'Host: cheese.example' http://{http}/wensleydale/x"),
                    "404, Exact does not match".into(),
                ),
                (
                    format!("curl -H 'Host: unknown.example' http://{http}/"),
                    "404, no route for this host".into(),
                ),
            ],
        ),
        (
            "TLS (certificate by SNI, signed by a CA made for this run):",
            vec![
                (format!("curl {tls}"), "200 over TLS".into()),
                (format!("curl --http2 {tls}"), "200 over h2".into()),
                (
                    format!("curl -i -H 'Host: {TLS_HOST}' http://{http}/"),
                    format!("308, plain HTTP to a TLS host: Location https://{TLS_HOST}:{port}/"),
                ),
            ],
        ),
        (
            "Gateway API (the Gateway's own listener; HTTPRoute with a header match and a 90/10 split):",
            vec![
                (
                    format!("curl -H 'Host: tasting.example' -H 'x-cheese: blue' http://{gateway}/"),
                    "200, header match → stilton".into(),
                ),
                (
                    format!("curl -H 'Host: tasting.example' http://{gateway}/"),
                    "200, cheddar 9 times in 10, wensleydale once".into(),
                ),
            ],
        ),
        (
            "Admin:",
            vec![
                (
                    format!("curl http://{admin}/api/routes"),
                    "200, the live routing table".into(),
                ),
                (
                    format!("curl http://{admin}/api/status"),
                    "200, Ingress and Gateway API status".into(),
                ),
            ],
        ),
    ];
    print_sections(
        "Vestibule demo is running. Three echo backends (cheddar, stilton, wensleydale) answer with JSON.",
        &sections,
        &format!("  dashboard: http://{admin}/"),
    )
}

/// Prints a tour: `intro`, then each section's title and its commands, aligned, each followed by
/// `# what it answers`, then `footer` and "Press Ctrl-C to stop." (the line tests wait for).
pub(crate) fn print_sections<T: AsRef<str>>(
    intro: &str,
    sections: &[(T, Vec<(String, String)>)],
    footer: &str,
) -> io::Result<()> {
    let mut out = io::stdout().lock();
    writeln!(out, "{intro}")?;
    for (title, lines) in sections {
        writeln!(out)?;
        writeln!(out, "{}", title.as_ref())?;
        let width = lines
            .iter()
            .map(|(command, _)| command.chars().count())
            .max()
            .unwrap_or(0);
        for (command, comment) in lines {
            writeln!(out, "  {command:<width$}   # {comment}")?;
        }
    }
    writeln!(out, "{footer}")?;
    writeln!(out)?;
    writeln!(out, "Press Ctrl-C to stop.")?;
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rendered_manifests_parse_without_issues() {
        let certificate = make_certificate(&[TLS_HOST]).unwrap();
        let addr: SocketAddr = "127.0.0.1:1234".parse().unwrap();
        let text = render(
            &[("cheddar", addr), ("stilton", addr), ("wensleydale", addr)],
            &certificate,
            8088,
        );
        assert!(!text.contains("{{"), "placeholder left: {text}");
        let parsed = parse_documents(&text, |document| Origin::Builtin {
            name: "demo".into(),
            document,
        });
        assert!(parsed.issues.is_empty(), "{:?}", parsed.issues);
        assert_eq!(parsed.objects.len(), 14);
    }
}
