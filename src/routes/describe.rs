//! A plain, sorted JSON description of a route table, for `/api/routes`, `vestibule check`
//! and golden tests. Holds no key material.

use serde_json::{Value, json};

use super::RouteTable;

impl RouteTable {
    /// Describes the table; deterministic (sorted) for equal tables.
    pub fn describe(&self) -> Value {
        json!({})
    }
}
