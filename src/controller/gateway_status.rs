//! What the controller adds to the Gateway API statuses `translate` computed, because only it
//! knows: listeners whose port the proxy could not bind, and `lastTransitionTime` (the clock).
//!
//! `lastTransitionTime` follows the Kubernetes convention: the time a condition last changed
//! its `status`. The controller remembers, for every condition it published (by object,
//! place in the status, and type), the status and the time; a condition whose status is
//! unchanged keeps its time across reloads, a new or changed one gets the time of this
//! reload. Objects that disappear are forgotten.

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use crate::proxy::ListenerFailure;
use crate::routes::RouteTable;
use crate::translate::ObjectStatus;

/// Marks the listeners of every port in `failures` `Accepted: False, PortUnavailable` and
/// `Programmed: False, Invalid`, with the proxy's message; a Gateway none of whose listeners
/// is programmed any more becomes `Programmed: False`.
pub fn apply_listener_failures(statuses: &mut [ObjectStatus], table: &RouteTable, failures: &[ListenerFailure]) {
    for failure in failures {
        let Some(port) = table.gateway_port(failure.port) else {
            continue;
        };
        for listener in &port.listeners {
            let Some(entry) = statuses
                .iter_mut()
                .find(|s| s.kind == "Gateway" && s.namespace == listener.namespace && s.name == listener.gateway)
            else {
                continue;
            };
            let Some(listeners) = entry.status.get_mut("listeners").and_then(Value::as_array_mut) else {
                continue;
            };
            for status in listeners.iter_mut() {
                if status.get("name").and_then(Value::as_str) != Some(listener.listener.as_str()) {
                    continue;
                }
                if let Some(conditions) = status.get_mut("conditions").and_then(Value::as_array_mut) {
                    set_condition(conditions, "Accepted", "PortUnavailable", &failure.message);
                    set_condition(conditions, "Programmed", "Invalid", &failure.message);
                }
            }
            let any_programmed = listeners.iter().any(|l| condition_is_true(l, "Programmed"));
            if !any_programmed
                && let Some(conditions) = entry.status.get_mut("conditions").and_then(Value::as_array_mut)
            {
                set_condition(conditions, "Programmed", "Invalid", "no listener is served");
            }
        }
    }
}

fn condition_is_true(object: &Value, type_: &str) -> bool {
    object
        .get("conditions")
        .and_then(Value::as_array)
        .is_some_and(|conditions| {
            conditions.iter().any(|c| {
                c.get("type").and_then(Value::as_str) == Some(type_)
                    && c.get("status").and_then(Value::as_str) == Some("True")
            })
        })
}

/// Sets condition `type_` to `False` with `reason` and `message`, keeping its generation.
fn set_condition(conditions: &mut [Value], type_: &str, reason: &str, message: &str) {
    for condition in conditions.iter_mut() {
        if condition.get("type").and_then(Value::as_str) != Some(type_) {
            continue;
        }
        if let Some(map) = condition.as_object_mut() {
            map.insert("status".into(), json!("False"));
            map.insert("reason".into(), json!(reason));
            map.insert("message".into(), json!(message));
        }
    }
}

/// (kind, namespace, name, JSON pointer of the conditions array, type) → (status, time).
type ConditionKey = (String, String, String, String, String);

/// The controller's memory of condition transitions.
#[derive(Debug, Default)]
pub struct Transitions {
    seen: HashMap<ConditionKey, (String, String)>,
}

impl Transitions {
    /// Adds `lastTransitionTime` to every condition of `statuses` (see the module documentation).
    pub fn stamp(&mut self, statuses: &mut [ObjectStatus], now: SystemTime) {
        let now = rfc3339(now);
        let mut current = HashMap::new();
        for entry in statuses.iter_mut() {
            let object = (entry.kind.clone(), entry.namespace.clone(), entry.name.clone());
            visit(&mut entry.status, String::new(), &mut |pointer, conditions| {
                for condition in conditions.iter_mut() {
                    let Some(map) = condition.as_object_mut() else { continue };
                    let type_ = map.get("type").and_then(Value::as_str).unwrap_or("").to_string();
                    let status = map.get("status").and_then(Value::as_str).unwrap_or("").to_string();
                    let key = (
                        object.0.clone(),
                        object.1.clone(),
                        object.2.clone(),
                        pointer.to_string(),
                        type_,
                    );
                    let time = match self.seen.get(&key) {
                        Some((before, time)) if *before == status => time.clone(),
                        _ => now.clone(),
                    };
                    map.insert("lastTransitionTime".into(), json!(time));
                    current.insert(key, (status, time));
                }
            });
        }
        self.seen = current;
    }
}

/// Calls `found` with every `conditions` array in `value` and its JSON pointer.
fn visit(value: &mut Value, pointer: String, found: &mut dyn FnMut(&str, &mut Vec<Value>)) {
    match value {
        Value::Object(map) => {
            for (key, child) in map.iter_mut() {
                let path = format!("{pointer}/{key}");
                match child {
                    Value::Array(conditions) if key == "conditions" => found(&path, conditions),
                    _ => visit(child, path, found),
                }
            }
        }
        Value::Array(items) => {
            for (index, child) in items.iter_mut().enumerate() {
                visit(child, format!("{pointer}/{index}"), found);
            }
        }
        _ => {}
    }
}

/// `2026-12-04T18:07:24Z` (UTC, whole seconds, as Kubernetes writes times).
pub fn rfc3339(time: SystemTime) -> String {
    let seconds = time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let days = (seconds / 86_400) as i64;
    let rest = seconds % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn status(accepted: &str) -> Vec<ObjectStatus> {
        vec![ObjectStatus {
            api_version: "gateway.networking.k8s.io/v1".into(),
            kind: "Gateway".into(),
            namespace: "infra".into(),
            name: "edge".into(),
            status: json!({
                "conditions": [{"type": "Accepted", "status": accepted}],
                "listeners": [{"name": "http", "conditions": [{"type": "Programmed", "status": "True"}]}],
            }),
        }]
    }

    fn time_of(statuses: &[ObjectStatus], pointer: &str) -> String {
        statuses[0]
            .status
            .pointer(pointer)
            .unwrap()
            .as_str()
            .unwrap()
            .to_string()
    }

    #[test]
    fn a_port_that_could_not_be_bound_fails_its_listeners_only() {
        use crate::routes::{GatewayPort, ListenerName};
        let table = RouteTable {
            gateway: std::sync::Arc::new(vec![GatewayPort {
                port: 80,
                listeners: vec![ListenerName {
                    namespace: "infra".into(),
                    gateway: "edge".into(),
                    listener: "http".into(),
                }],
                ..GatewayPort::default()
            }]),
            ..RouteTable::default()
        };
        let mut statuses = vec![ObjectStatus {
            api_version: "gateway.networking.k8s.io/v1".into(),
            kind: "Gateway".into(),
            namespace: "infra".into(),
            name: "edge".into(),
            status: json!({
                "conditions": [{"type": "Programmed", "status": "True", "reason": "Programmed", "message": ""}],
                "listeners": [
                    {"name": "http", "conditions": [
                        {"type": "Accepted", "status": "True", "reason": "Accepted", "message": "", "observedGeneration": 2},
                        {"type": "Programmed", "status": "True", "reason": "Programmed", "message": ""},
                    ]},
                    {"name": "other", "conditions": [{"type": "Programmed", "status": "True", "reason": "Programmed", "message": ""}]},
                ],
            }),
        }];
        let failure = ListenerFailure {
            port: 80,
            message: "cannot bind 0.0.0.0:80: address in use".into(),
        };
        apply_listener_failures(&mut statuses, &table, &[failure]);
        let status = &statuses[0].status;
        let accepted = &status["listeners"][0]["conditions"][0];
        assert_eq!(accepted["status"], "False");
        assert_eq!(accepted["reason"], "PortUnavailable");
        assert_eq!(accepted["observedGeneration"], 2);
        assert_eq!(status["listeners"][0]["conditions"][1]["reason"], "Invalid");
        assert_eq!(
            status["listeners"][0]["conditions"][1]["message"],
            "cannot bind 0.0.0.0:80: address in use"
        );
        // The other listener still serves, so the Gateway stays Programmed.
        assert_eq!(status["listeners"][1]["conditions"][0]["status"], "True");
        assert_eq!(status["conditions"][0]["status"], "True");
    }

    #[test]
    fn formats_utc_times() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "2000-02-29T00:00:00Z"
        );
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_secs(1_796_407_644)),
            "2026-12-04T18:07:24Z"
        );
    }

    #[test]
    fn a_time_changes_only_with_its_status() {
        let mut transitions = Transitions::default();
        let t0 = UNIX_EPOCH + Duration::from_secs(1_000);
        let t1 = t0 + Duration::from_secs(60);
        let t2 = t1 + Duration::from_secs(60);
        let mut first = status("True");
        transitions.stamp(&mut first, t0);
        assert_eq!(time_of(&first, "/conditions/0/lastTransitionTime"), rfc3339(t0));
        let mut same = status("True");
        transitions.stamp(&mut same, t1);
        assert_eq!(time_of(&same, "/conditions/0/lastTransitionTime"), rfc3339(t0));
        assert_eq!(
            time_of(&same, "/listeners/0/conditions/0/lastTransitionTime"),
            rfc3339(t0)
        );
        let mut changed = status("False");
        transitions.stamp(&mut changed, t2);
        assert_eq!(time_of(&changed, "/conditions/0/lastTransitionTime"), rfc3339(t2));
        assert_eq!(
            time_of(&changed, "/listeners/0/conditions/0/lastTransitionTime"),
            rfc3339(t0)
        );
    }
}
