//! `vestibule migrate -f PATH...`: reads manifests written for ingress-nginx and says, per
//! Ingress and annotation, what moving to Vestibule changes
//! ([`translate::migration`](crate::translate::migration) decides; this module loads and
//! prints). Offline: no listener, no watcher.
//!
//! Two outputs: text for people (the default), and one JSON document for programs
//! (`--output json`), never mixed. Exit status (decided by the binary): 0 when nothing would
//! behave otherwise, 1 when anything would, 2 when the manifests cannot be read.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::config::{Snapshot, SourceId};
use crate::providers::file::ManifestSet;
use crate::translate::migration::configmap::{assess_configmap, is_controller_configmap};
use crate::translate::migration::to_gateway::{GatewayConversion, GatewayOptions, to_gateway_api};
use crate::translate::migration::{Assessment, Category, ConfigMapAssessment, IngressAssessment, assess};

/// Loads `paths` as `vestibule run -f` would and assesses every Ingress, as Vestibule would
/// serve it with `--controller-name controller_name`, and ingress-nginx's controller ConfigMap
/// (`configmap`: `NAMESPACE/NAME`, as ingress-nginx's `--configmap`; else any ConfigMap with
/// its manifests' or Helm chart's name or labels). `Err`: the manifests could not all be read
/// (a path that does not exist, a file that does not parse), each problem one line naming the
/// file, or the named ConfigMap is not among them.
pub fn migrate(paths: Vec<PathBuf>, controller_name: &str, configmap: Option<&str>) -> Result<Assessment, Vec<String>> {
    let (set, snapshot) = load(paths)?;
    let mut assessment = assess(&snapshot, controller_name);
    let mut found = Vec::new();
    for file in set.files() {
        // Read and parsed once already, by the set: a file that fails now changed meanwhile.
        let text = fs::read_to_string(file).map_err(|err| vec![format!("{}: {err}", file.display())])?;
        found.extend(config_maps(file, &text));
    }
    assessment.config_maps = match configmap {
        Some(wanted) => {
            let picked: Vec<ConfigMapAssessment> = found
                .into_iter()
                .map(|cm| cm.assessment)
                .filter(|cm| format!("{}/{}", cm.namespace, cm.name) == wanted)
                .collect();
            if picked.is_empty() {
                return Err(vec![format!(
                    "--configmap {wanted}: no ConfigMap of that namespace and name in the manifests"
                )]);
            }
            picked
        }
        None => found
            .into_iter()
            .filter(|cm| cm.recognised)
            .map(|cm| cm.assessment)
            .collect(),
    };
    Ok(assessment)
}

/// `vestibule migrate --to gateway-api`: the Gateway API objects equivalent to the Ingresses of
/// `paths`, and what has no equivalent. `Err` as for [`migrate`].
pub fn to_gateway(paths: Vec<PathBuf>, options: &GatewayOptions) -> Result<GatewayConversion, Vec<String>> {
    let (_, snapshot) = load(paths)?;
    Ok(to_gateway_api(&snapshot, options))
}

/// Loads `paths` as `vestibule run -f` would. `Err`: every problem, one line each.
fn load(paths: Vec<PathBuf>) -> Result<(ManifestSet, Snapshot), Vec<String>> {
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
    let snapshot = Snapshot::from_objects(update.objects, update.issues);
    Ok((set, snapshot))
}

/// Prints the conversion as multi-document YAML ready for `kubectl apply -f -` (or `vestibule
/// run -f`), what was not carried over first, as comments.
pub fn print_gateway_yaml(conversion: &GatewayConversion, out: &mut impl Write) -> io::Result<()> {
    writeln!(
        out,
        "# Gateway API objects for the Ingresses read, by vestibule migrate --to gateway-api."
    )?;
    if conversion.notes.is_empty() {
        writeln!(out, "# Everything was carried over.")?;
    } else {
        writeln!(out, "# Not carried over, or carried over with a difference:")?;
        for note in &conversion.notes {
            let who = if note.ingress.is_empty() {
                String::new()
            } else {
                format!("Ingress {}: ", note.ingress.escape_debug())
            };
            // One line each: nothing a manifest holds can end the comment.
            let line = format!("{who}{}", note.message).replace(['\n', '\r'], " ");
            writeln!(out, "#   {line}")?;
        }
    }
    for object in &conversion.objects {
        writeln!(out, "---")?;
        let text = serde_yaml_ng::to_string(object).map_err(io::Error::other)?;
        write!(out, "{text}")?;
    }
    Ok(())
}

/// Prints the conversion as one JSON document: `{objects, notes}`.
pub fn print_gateway_json(conversion: &GatewayConversion, out: &mut impl Write) -> io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, conversion)?;
    writeln!(out)
}

/// A ConfigMap document, as much of it as `migrate` reads.
#[derive(Deserialize)]
struct ConfigMapDocument {
    #[serde(default)]
    metadata: ConfigMapMeta,
    #[serde(default)]
    data: BTreeMap<String, serde_yaml_ng::Value>,
}

#[derive(Deserialize, Default)]
struct ConfigMapMeta {
    #[serde(default)]
    name: String,
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

/// Every ConfigMap of `text` (documents, and items of `kind: List`), assessed, with or without
/// an ingress-nginx name: which to keep is the caller's choice. Documents that do not parse
/// were reported by the manifest loader already; here they are skipped.
fn config_maps(path: &Path, text: &str) -> Vec<FoundConfigMap> {
    let mut found = Vec::new();
    for (index, document) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
        let Ok(value) = serde_yaml_ng::Value::deserialize(document) else {
            break;
        };
        let origin = format!("{}, document {}", path.display(), index + 1);
        collect_config_maps(value, &origin, &mut found);
    }
    found
}

fn collect_config_maps(value: serde_yaml_ng::Value, origin: &str, found: &mut Vec<FoundConfigMap>) {
    let text = |key: &str| value.get(key).and_then(serde_yaml_ng::Value::as_str).unwrap_or("");
    if text("kind").ends_with("List") {
        if let Some(items) = value.get("items").and_then(serde_yaml_ng::Value::as_sequence) {
            for item in items.clone() {
                collect_config_maps(item, origin, found);
            }
        }
        return;
    }
    if text("kind") != "ConfigMap" || text("apiVersion") != "v1" {
        return;
    }
    let Ok(document) = serde_yaml_ng::from_value::<ConfigMapDocument>(value) else {
        return;
    };
    let meta = document.metadata;
    // Values are strings in the API; a YAML number or boolean is read as its text.
    let data: BTreeMap<String, String> = document
        .data
        .into_iter()
        .filter_map(|(key, value)| {
            let text = match value {
                serde_yaml_ng::Value::String(text) => text,
                serde_yaml_ng::Value::Number(number) => number.to_string(),
                serde_yaml_ng::Value::Bool(flag) => flag.to_string(),
                _ => return None,
            };
            Some((key, text))
        })
        .collect();
    let namespace = meta.namespace.unwrap_or_else(|| "default".to_string());
    found.push(FoundConfigMap {
        recognised: is_controller_configmap(&meta.name, &meta.labels),
        assessment: assess_configmap(&namespace, &meta.name, origin, &data),
    });
}

/// A ConfigMap of the manifests: `recognised` when its name or labels are ingress-nginx's.
struct FoundConfigMap {
    recognised: bool,
    assessment: ConfigMapAssessment,
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
    for config_map in &assessment.config_maps {
        print_config_map(config_map, out)?;
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

fn print_config_map(config_map: &ConfigMapAssessment, out: &mut impl Write) -> io::Result<()> {
    writeln!(
        out,
        "ConfigMap {}/{} ({}): ingress-nginx's global settings",
        config_map.namespace.escape_debug(),
        config_map.name.escape_debug(),
        config_map.origin
    )?;
    for finding in &config_map.keys {
        let mut line = format!(
            "  {:<28}{}: {}",
            finding.category.label(),
            finding.key,
            shorten(&finding.value, 60)
        );
        if !finding.flags.is_empty() {
            line.push_str(" -> ");
            line.push_str(&finding.flags.join(" "));
        }
        if !finding.note.is_empty() {
            line.push_str(" (");
            line.push_str(&finding.note);
            line.push(')');
        }
        writeln!(out, "{line}")?;
    }
    for finding in &config_map.defaults {
        writeln!(
            out,
            "  {:<28}{} (ingress-nginx's default {}, not set here): {}",
            finding.category.label(),
            finding.key,
            finding.value,
            finding.note
        )?;
    }
    if config_map.flags.is_empty() {
        writeln!(out, "  No flag carries these settings over.")?;
    } else {
        writeln!(
            out,
            "  Carried over by: vestibule run {} ...",
            config_map.flags.join(" ")
        )?;
    }
    writeln!(out)
}

/// At most `max` characters of `text`, with `…` when cut.
fn shorten(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
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
