//! One status condition as the Gateway API writes it: `type`, `status`, `reason`, `message`,
//! `observedGeneration` (when the object has a generation). `lastTransitionTime` is stamped
//! by the controller, which has a clock.

use serde_json::{Map, Value, json};

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Condition {
    pub(crate) type_: &'static str,
    pub(crate) status: bool,
    pub(crate) reason: &'static str,
    pub(crate) message: String,
}

impl Condition {
    pub(crate) fn ok(type_: &'static str, reason: &'static str, message: impl Into<String>) -> Self {
        Condition {
            type_,
            status: true,
            reason,
            message: message.into(),
        }
    }

    pub(crate) fn not(type_: &'static str, reason: &'static str, message: impl Into<String>) -> Self {
        Condition {
            type_,
            status: false,
            reason,
            message: message.into(),
        }
    }

    pub(crate) fn json(&self, generation: Option<i64>) -> Value {
        let mut out = Map::new();
        out.insert("type".into(), json!(self.type_));
        out.insert("status".into(), json!(if self.status { "True" } else { "False" }));
        out.insert("reason".into(), json!(self.reason));
        out.insert("message".into(), json!(self.message));
        if let Some(generation) = generation {
            out.insert("observedGeneration".into(), json!(generation));
        }
        Value::Object(out)
    }
}
