//! `vestibule migrate -f PATH...`: reads manifests written for ingress-nginx and says, per
//! Ingress and annotation, what moving to Vestibule changes
//! ([`translate::migration`](crate::translate::migration) decides; this module loads and
//! prints). Offline: no listener, no watcher.
//!
//! Two outputs: text for people (the default), and one JSON document for programs
//! (`--output json`), never mixed. Exit status (decided by the binary): 0 when nothing would
//! behave otherwise, 1 when anything would, 2 when the manifests cannot be read.

use std::io::{self, Write};
use std::path::PathBuf;

use crate::config::{Snapshot, SourceId};
use crate::providers::file::ManifestSet;
use crate::translate::migration::{Assessment, Category, IngressAssessment, assess};

/// Loads `paths` as `vestibule run -f` would and assesses every Ingress, as Vestibule would
/// serve it with `--controller-name controller_name`. `Err`: the manifests
/// could not all be read (a path that does not exist, a file that does not parse), each
/// problem one line naming the file.
pub fn migrate(paths: Vec<PathBuf>, controller_name: &str) -> Result<Assessment, Vec<String>> {
    let mut set = ManifestSet::new(paths);
    set.rescan();
    let update = set.update(&SourceId::new("file"));
    let errors: Vec<String> = update
        .issues
        .iter()
        .filter(|issue| issue.is_error())
        .map(ToString::to_string)
        .collect();
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(assess(
        &Snapshot::from_objects(update.objects, update.issues),
        controller_name,
    ))
}

/// Prints the report for people: each Ingress with its annotations and findings, then the
/// summary, the Ingresses that would not be served, and how to take ingress-nginx's class over.
pub fn print(assessment: &Assessment, out: &mut impl Write) -> io::Result<()> {
    if assessment.ingresses.is_empty() {
        writeln!(out, "No Ingress found.")?;
    }
    for ingress in &assessment.ingresses {
        print_ingress(ingress, out)?;
    }
    let summary = &assessment.summary;
    writeln!(out, "Summary:")?;
    writeln!(
        out,
        "  {} Ingress(es): {} would be served, {} would not; {} would behave otherwise than under ingress-nginx",
        summary.ingresses, summary.served, summary.not_served, summary.changes_behaviour
    )?;
    let counts: Vec<String> = Category::ALL
        .iter()
        .map(|category| {
            let count = summary.annotations.get(category).copied().unwrap_or_default();
            format!("{count} {}", category.label())
        })
        .collect();
    writeln!(out, "  annotations: {}", counts.join(", "))?;
    let not_served: Vec<&IngressAssessment> = assessment.ingresses.iter().filter(|i| !i.served).collect();
    if !not_served.is_empty() {
        writeln!(out, "Not served by Vestibule:")?;
        for ingress in not_served {
            writeln!(
                out,
                "  {}/{}: {}",
                ingress.namespace,
                ingress.name,
                ingress.not_served_reason.as_deref().unwrap_or("?")
            )?;
        }
    }
    for take_over in &assessment.take_over {
        let found = if take_over.class_found {
            String::new()
        } else {
            ", assumed: no IngressClass of that name was read".to_string()
        };
        writeln!(
            out,
            "Taking over in place: IngressClass {:?} is ingress-nginx's (spec.controller {}{found}), named by {} \
             Ingress(es). Vestibule serves it unchanged with:",
            take_over.class, take_over.controller, take_over.ingresses
        )?;
        writeln!(out, "  vestibule run {} ...", take_over.flags.join(" "))?;
        writeln!(
            out,
            "  (this report as that would serve: vestibule migrate --controller-name {} -f ...; the steps: README \
             \"Migrating from ingress-nginx\")",
            take_over.controller
        )?;
    }
    if assessment.changes_behaviour() {
        writeln!(out, "Result: moving changes behaviour (exit status 1).")
    } else {
        writeln!(out, "Result: nothing changes behaviour (exit status 0).")
    }
}

fn print_ingress(ingress: &IngressAssessment, out: &mut impl Write) -> io::Result<()> {
    let class = match (&ingress.class, &ingress.controller) {
        (Some(class), Some(controller)) => format!("class {class} ({controller})"),
        (Some(class), None) => format!("class {class}"),
        (None, _) => "no class".to_string(),
    };
    writeln!(
        out,
        "Ingress {}/{} ({}; {class})",
        ingress.namespace, ingress.name, ingress.origin
    )?;
    match &ingress.not_served_reason {
        Some(reason) => writeln!(out, "  NOT SERVED: {reason}")?,
        None => writeln!(out, "  served")?,
    }
    for annotation in &ingress.annotations {
        let mut line = format!("  {:<28}{}", annotation.category.label(), annotation.key.escape_debug());
        if annotation.fails_closed {
            line.push_str(" (the Ingress is not served)");
        }
        if !annotation.note.is_empty() {
            line.push_str(": ");
            line.push_str(&annotation.note);
        }
        writeln!(out, "{line}")?;
    }
    for finding in &ingress.findings {
        let mark = if finding.changes_behaviour { "!" } else { "i" };
        writeln!(out, "  {mark} {}", finding.message)?;
    }
    writeln!(out)
}

/// Prints the report as one JSON document (see README "Migrating from ingress-nginx" for its
/// fields), pretty, followed by a newline.
pub fn print_json(assessment: &Assessment, out: &mut impl Write) -> io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, assessment)?;
    writeln!(out)
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::config::Origin;
    use crate::config::parse::parse_documents;

    /// A key is not validated in a manifest file: the text report escapes it, so it cannot add
    /// lines of its own (here, a forged "Result" line).
    #[test]
    fn keys_with_control_characters_cannot_forge_report_lines() {
        let yaml = r#"
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: forged
  annotations:
    "nginx.ingress.kubernetes.io/x\nResult: nothing changes behaviour": "1"
    "ingress.kubernetes.io/ssl-redirect": "true"
    "nginx.ingress.kubernetes.io/canary": "true"
spec:
  ingressClassName: nginx
  rules:
  - host: app.example
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: a, port: {number: 80}}}}
"#;
        let parsed = parse_documents(yaml, |document| Origin::File {
            path: PathBuf::from("in.yaml"),
            document,
        });
        let assessment = assess(
            &Snapshot::from_objects(parsed.objects, parsed.issues),
            crate::translate::INGRESS_CONTROLLER,
        );
        let mut out = Vec::new();
        print(&assessment, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let results: Vec<&str> = text.lines().filter(|line| line.starts_with("Result:")).collect();
        assert_eq!(results, ["Result: moving changes behaviour (exit status 1)."], "{text}");
        assert!(text.contains("x\\nResult"), "{text}");
    }
}
