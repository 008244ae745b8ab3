//! Every crash the fuzz targets (fuzz/, README "Fuzzing") found, kept as a test: the input the
//! fuzzer saved, under `fuzz/regressions/<target>/`, goes through the target's checks again
//! (`vestibule::fuzzing`), and the behaviour it broke is asserted here in plain terms.

use std::path::{Path, PathBuf};

use vestibule::config::Origin;
use vestibule::config::parse::parse_documents;
use vestibule::fuzzing;
use vestibule::routes::normalize_path;

/// The saved inputs of one target, sorted; at least one (a moved directory must not pass).
fn inputs(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/regressions")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|err| panic!("{}: {err}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no saved inputs in {}", dir.display());
    files
        .into_iter()
        .map(|path| {
            let data = std::fs::read(&path).expect("readable input");
            (path, data)
        })
        .collect()
}

#[test]
fn path_normalize_inputs_pass_the_target() {
    for (path, data) in inputs("path_normalize") {
        eprintln!("{}", path.display());
        fuzzing::path_normalize(&data);
    }
}

#[test]
fn manifest_inputs_pass_the_target() {
    for (path, data) in inputs("manifest") {
        eprintln!("{}", path.display());
        fuzzing::manifest(&data);
    }
}

/// Found by `path_normalize`: decoding `%41` after a `%` that began no escape made a new
/// escape (`%4` + `A`), so normalising again changed the path. Worse, `%%32e` became `%2e`:
/// routing saw `/public/%2e%2e/admin` (under `/public`) while an upstream that decodes once
/// would serve `/admin`.
#[test]
fn normalising_makes_no_new_escapes_out_of_a_stray_percent() {
    for (path, expected) in [
        ("/%41%42%4%413", "/AB%4%413"),
        ("/public/%%32e%%32e/admin", "/public/%%32e%%32e/admin"),
        ("/%%34%41", "/%%34A"),
        ("/x%%2F%41", "/x%%2FA"),
    ] {
        let once = normalize_path(path);
        assert_eq!(once, expected, "{path}");
        assert_eq!(normalize_path(&once), once, "{path}: not idempotent");
    }
    // Ordinary escapes of unreserved characters are still decoded.
    assert_eq!(normalize_path("/public/%2e%2e/admin"), "/admin");
    assert_eq!(normalize_path("/%7Euser/%41"), "/~user/A");
}

/// Found by `manifest`: a second top-level node in a document without `---` was reported as
/// "document 2" of a file that has one document.
#[test]
fn content_after_a_document_without_a_separator_is_an_error_of_that_document() {
    let origin = |document| Origin::File {
        path: PathBuf::from("m.yaml"),
        document,
    };
    let parsed = parse_documents("just a scalar # and a comment\nkind: Service\n", origin);
    assert_eq!(parsed.issues.len(), 2, "{:?}", parsed.issues);
    for issue in &parsed.issues {
        assert_eq!(issue.subject.origin, Some(origin(1)), "{issue}");
    }
    assert!(parsed.issues.iter().any(|i| i.message.contains("invalid YAML")));
    // A syntax error inside a later document still names that document.
    let parsed = parse_documents("kind: Service\n---\nkind: [unclosed\n", origin);
    let invalid: Vec<_> = parsed
        .issues
        .iter()
        .filter(|i| i.message.contains("invalid YAML"))
        .collect();
    assert_eq!(invalid.len(), 1, "{:?}", parsed.issues);
    assert_eq!(invalid[0].subject.origin, Some(origin(2)));
}
