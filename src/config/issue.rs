//! Problems found in user input: each names its object, origin and field.

use std::fmt;

use serde::Serialize;

use super::{ObjectKey, Origin};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The object (or the part of it named by `field`) is not served.
    Error,
    /// Served, but probably not as the user meant.
    Warning,
}

/// What an issue is about: an object when one could be identified, otherwise only its origin
/// (a file that does not parse has no object).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct Subject {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object: Option<ObjectKey>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub origin: Option<Origin>,
}

/// One problem in user input, e.g.
/// `error: Ingress default/shop (shop.yaml, document 1): spec.rules[1].http.paths[0].backend.service.port: no port "web" on Service default/shop`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct Issue {
    pub severity: Severity,
    pub subject: Subject,
    /// Field path inside the object (`spec.rules[0].host`), empty when the whole object or file is meant.
    pub field: String,
    pub message: String,
}

impl Issue {
    pub fn error(
        object: Option<ObjectKey>,
        origin: Option<Origin>,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Issue {
            severity: Severity::Error,
            subject: Subject { object, origin },
            field: field.into(),
            message: message.into(),
        }
    }

    pub fn warning(
        object: Option<ObjectKey>,
        origin: Option<Origin>,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Issue {
            severity: Severity::Warning,
            ..Issue::error(object, origin, field, message)
        }
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Issue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let severity = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(f, "{severity}: ")?;
        match (&self.subject.object, &self.subject.origin) {
            (Some(object), Some(origin)) => write!(f, "{object} ({origin})")?,
            (Some(object), None) => write!(f, "{object}")?,
            (None, Some(origin)) => write!(f, "{origin}")?,
            (None, None) => f.write_str("configuration")?,
        }
        if !self.field.is_empty() {
            write!(f, ": {}", self.field)?;
        }
        write!(f, ": {}", self.message)
    }
}
