//! Ingress paths → route table matches: `pathType` and path validation (as the API server
//! validates them) and the normalised keys the router looks up. Owns no backend logic.

use regex::{Regex, RegexBuilder};

/// How one Ingress path matches requests.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum PathMatch {
    /// The whole path, byte for byte.
    Exact(String),
    /// Element-wise prefix, keyed without a trailing slash (`/` is the empty key).
    Prefix(String),
    /// `ImplementationSpecific` with `nginx.ingress.kubernetes.io/use-regex: "true"`: the
    /// pattern as written, matched case-insensitively and anchored at the start.
    Regex(String),
}

impl PathMatch {
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            PathMatch::Exact(_) => "Exact",
            PathMatch::Prefix(_) => "Prefix",
            PathMatch::Regex(_) => "regex",
        }
    }
}

/// A rejected path: which field of the path (`pathType` or `path`) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PathError {
    pub(crate) field: &'static str,
    pub(crate) message: String,
}

impl PathError {
    fn new(field: &'static str, message: String) -> Self {
        PathError { field, message }
    }
}

/// Sequences the API server rejects in `Exact` and `Prefix` paths.
const INVALID_SEQUENCES: [&str; 6] = ["//", "/./", "/../", "/%2e%2e/", "/%2e./", "/.%2e/"];
const INVALID_SUFFIXES: [&str; 2] = ["/..", "/."];

/// Reads one path. A missing path means `/` for `Prefix` and `ImplementationSpecific`.
/// `ImplementationSpecific` is `Prefix` unless `use_regex` (then a regular expression).
pub(crate) fn parse_path(path: Option<&str>, path_type: Option<&str>, use_regex: bool) -> Result<PathMatch, PathError> {
    let Some(path_type) = path_type else {
        return Err(PathError::new(
            "pathType",
            "pathType is required (Exact, Prefix or ImplementationSpecific)".to_string(),
        ));
    };
    match path_type {
        "Exact" => {
            let path = path.unwrap_or("");
            check_absolute(path)?;
            check_sequences(path)?;
            Ok(PathMatch::Exact(path.to_string()))
        }
        "Prefix" => {
            let path = path.unwrap_or("/");
            check_absolute(path)?;
            check_sequences(path)?;
            Ok(PathMatch::Prefix(prefix_key(path)))
        }
        "ImplementationSpecific" => {
            let path = path.unwrap_or("/");
            check_absolute(path)?;
            if use_regex {
                Ok(PathMatch::Regex(path.to_string()))
            } else {
                Ok(PathMatch::Prefix(prefix_key(path)))
            }
        }
        other => Err(PathError::new(
            "pathType",
            format!("pathType {other:?} is not supported (use Exact, Prefix or ImplementationSpecific)"),
        )),
    }
}

/// `/foo/` and `/foo` are the same prefix; `/` is the empty key.
fn prefix_key(path: &str) -> String {
    path.strip_suffix('/').unwrap_or(path).to_string()
}

fn check_absolute(path: &str) -> Result<(), PathError> {
    if path.starts_with('/') {
        Ok(())
    } else {
        Err(PathError::new(
            "path",
            format!("path {path:?} must be an absolute path (start with \"/\")"),
        ))
    }
}

fn check_sequences(path: &str) -> Result<(), PathError> {
    let bad = INVALID_SEQUENCES
        .iter()
        .find(|seq| path.contains(*seq))
        .or_else(|| INVALID_SUFFIXES.iter().find(|suffix| path.ends_with(*suffix)));
    match bad {
        Some(bad) => Err(PathError::new(
            "path",
            format!("path {path:?} must not contain {bad:?}"),
        )),
        None => Ok(()),
    }
}

/// Compiles an ingress-nginx style regex path (`~* ^pattern`): case-insensitive, anchored at
/// the start only. The error quotes the pattern and says what is wrong with it.
pub(crate) fn compile_regex(pattern: &str) -> Result<Regex, String> {
    const SIZE_LIMIT: usize = 1 << 20;
    // Compile the pattern alone first, so the error shows the user's text, not our wrapping.
    if let Err(err) = RegexBuilder::new(pattern).size_limit(SIZE_LIMIT).build() {
        return Err(format!(
            "invalid regular expression {pattern:?}: {}",
            regex_reason(&err)
        ));
    }
    RegexBuilder::new(&format!("^(?:{pattern})"))
        .case_insensitive(true)
        .size_limit(SIZE_LIMIT)
        .build()
        .map_err(|err| format!("invalid regular expression {pattern:?}: {}", regex_reason(&err)))
}

/// The one-line reason of a regex error (its text spans several lines with a caret diagram).
fn regex_reason(err: &regex::Error) -> String {
    let text = err.to_string();
    text.lines()
        .find_map(|line| line.trim().strip_prefix("error: "))
        .unwrap_or_else(|| text.lines().last().unwrap_or("unknown error").trim())
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_keys_drop_one_trailing_slash() {
        assert_eq!(
            parse_path(Some("/"), Some("Prefix"), false),
            Ok(PathMatch::Prefix(String::new()))
        );
        assert_eq!(
            parse_path(Some("/a/"), Some("Prefix"), false),
            Ok(PathMatch::Prefix("/a".into()))
        );
        assert_eq!(
            parse_path(None, Some("Prefix"), false),
            Ok(PathMatch::Prefix(String::new()))
        );
        assert_eq!(
            parse_path(Some("/a/"), Some("ImplementationSpecific"), false),
            Ok(PathMatch::Prefix("/a".into()))
        );
    }

    #[test]
    fn exact_keeps_the_path_as_written() {
        assert_eq!(
            parse_path(Some("/a/"), Some("Exact"), false),
            Ok(PathMatch::Exact("/a/".into()))
        );
        assert_eq!(parse_path(None, Some("Exact"), false).unwrap_err().field, "path");
    }

    #[test]
    fn rejects_what_the_api_server_rejects() {
        assert_eq!(parse_path(Some("/a"), None, false).unwrap_err().field, "pathType");
        assert_eq!(
            parse_path(Some("/a"), Some("Regex"), false).unwrap_err().field,
            "pathType"
        );
        for bad in ["a", "/a//b", "/a/../b", "/a/.", "/a/.."] {
            let err = parse_path(Some(bad), Some("Prefix"), false).unwrap_err();
            assert_eq!(err.field, "path", "{bad}");
            assert!(err.message.contains(&format!("{bad:?}")), "{}", err.message);
        }
    }

    #[test]
    fn use_regex_turns_implementation_specific_into_a_regex() {
        assert_eq!(
            parse_path(Some("/api/v[0-9]+"), Some("ImplementationSpecific"), true),
            Ok(PathMatch::Regex("/api/v[0-9]+".into()))
        );
        assert_eq!(
            parse_path(Some("/a"), Some("Prefix"), true),
            Ok(PathMatch::Prefix("/a".into()))
        );
    }

    #[test]
    fn regexes_are_anchored_at_the_start_and_case_insensitive() {
        let regex = compile_regex("/api/v[0-9]+").unwrap();
        assert!(regex.is_match("/API/v2/users"));
        assert!(!regex.is_match("/x/api/v2"));
        let err = compile_regex("/foo[").unwrap_err();
        assert!(
            err.starts_with("invalid regular expression \"/foo[\": unclosed character class"),
            "{err}"
        );
    }
}
