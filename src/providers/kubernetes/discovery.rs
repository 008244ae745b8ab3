//! Which of the watched kinds the API server serves: one discovery request per group/version
//! (`/api/v1`, `/apis/<group>/<version>`). A group/version the server does not know (404) is
//! simply not served; any other failure fails the round, which is retried.

use std::collections::{BTreeMap, BTreeSet};

use super::kinds::WatchedKind;

/// Plurals served, by group/version.
#[derive(Debug, Default)]
pub struct Served {
    resources: BTreeMap<(String, String), BTreeSet<String>>,
}

impl Served {
    pub fn serves(&self, group: &str, version: &str, plural: &str) -> bool {
        self.resources
            .get(&(group.to_string(), version.to_string()))
            .is_some_and(|plurals| plurals.contains(plural))
    }

    #[cfg(test)]
    pub fn insert(&mut self, group: &str, version: &str, plural: &str) {
        self.resources
            .entry((group.to_string(), version.to_string()))
            .or_default()
            .insert(plural.to_string());
    }

    /// Any version of `group` serves `plural` (only the versions in the table are asked).
    pub fn serves_any_version(&self, group: &str, plural: &str) -> bool {
        self.resources
            .iter()
            .any(|((g, _), plurals)| g == group && plurals.contains(plural))
    }
}

/// Asks the API server about every group/version in `kinds`.
pub async fn served(
    client: &kube::Client,
    kinds: impl IntoIterator<Item = &WatchedKind>,
) -> Result<Served, kube::Error> {
    let versions: BTreeSet<(&str, &str)> = kinds.into_iter().map(|k| (k.group, k.version)).collect();
    let mut served = Served::default();
    for (group, version) in versions {
        let list = if group.is_empty() {
            client.list_core_api_resources(version).await
        } else {
            client.list_api_group_resources(&format!("{group}/{version}")).await
        };
        let plurals = match list {
            Ok(list) => list.resources.into_iter().map(|r| r.name).collect(),
            Err(kube::Error::Api(status)) if status.code == 404 => BTreeSet::new(),
            Err(error) => return Err(error),
        };
        served
            .resources
            .insert((group.to_string(), version.to_string()), plurals);
    }
    Ok(served)
}
