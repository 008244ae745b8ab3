//! Pure helpers of the status writer: carry `lastTransitionTime` over from the status an object
//! has (so an unchanged condition never flaps), and compute the JSON merge patch (RFC 7386)
//! from the status an object has to the one we want, or `None` when they already agree.

use serde_json::{Map, Value};

/// `desired` with each condition's `lastTransitionTime` settled against `current`: kept from
/// the current condition of the same `type` when its `status` is unchanged, else `now`
/// (RFC 3339) unless the translation set one. Conditions are found under any `conditions` key
/// (Gateway API nests them in `listeners[]` and `parents[]`, matched by position).
pub fn settle_transition_times(desired: &Value, current: &Value, now: &str) -> Value {
    match desired {
        Value::Object(fields) => {
            let mut settled = Map::new();
            for (key, value) in fields {
                let current_value = current.get(key).unwrap_or(&Value::Null);
                let value = if key == "conditions" {
                    settle_conditions(value, current_value, now)
                } else {
                    settle_transition_times(value, current_value, now)
                };
                settled.insert(key.clone(), value);
            }
            Value::Object(settled)
        }
        Value::Array(items) => Value::Array(
            items
                .iter()
                .enumerate()
                .map(|(index, item)| settle_transition_times(item, current.get(index).unwrap_or(&Value::Null), now))
                .collect(),
        ),
        other => other.clone(),
    }
}

fn settle_conditions(desired: &Value, current: &Value, now: &str) -> Value {
    let Value::Array(conditions) = desired else {
        return desired.clone();
    };
    let current: &[Value] = current.as_array().map(Vec::as_slice).unwrap_or(&[]);
    Value::Array(
        conditions
            .iter()
            .map(|condition| {
                let Value::Object(fields) = condition else {
                    return condition.clone();
                };
                let mut fields = fields.clone();
                let previous = current
                    .iter()
                    .find(|previous| previous.get("type").is_some() && previous.get("type") == fields.get("type"));
                let time = match previous {
                    Some(previous) if previous.get("status") == fields.get("status") => {
                        previous.get("lastTransitionTime").cloned()
                    }
                    _ => None,
                };
                match time {
                    Some(time) => {
                        fields.insert("lastTransitionTime".into(), time);
                    }
                    None => {
                        fields
                            .entry("lastTransitionTime")
                            .or_insert_with(|| Value::String(now.to_string()));
                    }
                }
                Value::Object(fields)
            })
            .collect(),
    )
}

/// The merge patch turning `current` into `desired`, `None` when nothing differs. Keys of
/// `current` missing from `desired` are removed (`null`): we own the whole status of the
/// objects we serve. A key absent from `current` whose desired value is an empty object
/// (`loadBalancer: {}`) is no difference.
pub fn merge_patch(current: &Value, desired: &Value) -> Option<Value> {
    match (current, desired) {
        (Value::Object(current), Value::Object(desired)) => {
            let mut patch = Map::new();
            for (key, want) in desired {
                match current.get(key) {
                    Some(have) => {
                        if let Some(change) = merge_patch(have, want) {
                            patch.insert(key.clone(), change);
                        }
                    }
                    None if is_empty(want) => {}
                    None => {
                        patch.insert(key.clone(), want.clone());
                    }
                }
            }
            for (key, have) in current {
                if !desired.contains_key(key) && !is_empty(have) {
                    patch.insert(key.clone(), Value::Null);
                }
            }
            (!patch.is_empty()).then_some(Value::Object(patch))
        }
        (Value::Null, want) if is_empty(want) => None,
        (have, want) if have == want => None,
        (_, want) => Some(want.clone()),
    }
}

fn is_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Object(fields) => fields.values().all(is_empty),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const NOW: &str = "2026-01-02T03:04:05Z";

    #[test]
    fn an_unchanged_condition_keeps_its_transition_time() {
        let current = json!({"conditions": [
            {"type": "Accepted", "status": "True", "reason": "Accepted", "lastTransitionTime": "2025-01-01T00:00:00Z"},
            {"type": "Programmed", "status": "False", "lastTransitionTime": "2025-01-01T00:00:00Z"},
        ]});
        let desired = json!({"conditions": [
            {"type": "Accepted", "status": "True", "reason": "Accepted", "message": "new words"},
            {"type": "Programmed", "status": "True"},
            {"type": "ResolvedRefs", "status": "True"},
        ]});
        let settled = settle_transition_times(&desired, &current, NOW);
        assert_eq!(
            settled,
            json!({"conditions": [
                {"type": "Accepted", "status": "True", "reason": "Accepted", "message": "new words", "lastTransitionTime": "2025-01-01T00:00:00Z"},
                {"type": "Programmed", "status": "True", "lastTransitionTime": NOW},
                {"type": "ResolvedRefs", "status": "True", "lastTransitionTime": NOW},
            ]})
        );
        // Settled again against what was written: nothing to write.
        assert_eq!(
            merge_patch(&settled, &settle_transition_times(&desired, &settled, "later")),
            None
        );
    }

    #[test]
    fn nested_conditions_are_settled_by_position() {
        let current = json!({"listeners": [{"name": "http", "conditions": [{"type": "Accepted", "status": "True", "lastTransitionTime": "old"}]}]});
        let desired = json!({"listeners": [{"name": "http", "conditions": [{"type": "Accepted", "status": "True"}]}]});
        assert_eq!(settle_transition_times(&desired, &current, NOW), current);
    }

    #[test]
    fn merge_patch_is_minimal_and_removes_what_we_no_longer_want() {
        let with_ip = json!({"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}]}});
        let empty = json!({"loadBalancer": {}});
        assert_eq!(merge_patch(&with_ip, &with_ip), None);
        assert_eq!(merge_patch(&empty, &with_ip), Some(with_ip.clone()));
        assert_eq!(
            merge_patch(&with_ip, &empty),
            Some(json!({"loadBalancer": {"ingress": null}}))
        );
        // A fresh object (no status yet, or an empty one) already has an empty load balancer.
        assert_eq!(merge_patch(&Value::Null, &empty), None);
        assert_eq!(merge_patch(&json!({}), &empty), None);
        assert_eq!(
            merge_patch(
                &json!({"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}]}}),
                &json!({"loadBalancer": {"ingress": [{"ip": "192.0.2.2"}]}})
            ),
            Some(json!({"loadBalancer": {"ingress": [{"ip": "192.0.2.2"}]}}))
        );
    }
}
