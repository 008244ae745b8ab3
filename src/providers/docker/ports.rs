//! Public TCP ports for `kr.ingress.{port}=tcp://` labels: assigned from `--tcp-ports`, at most
//! `--tcp-quota` per tenant, stable across reloads and (with `--state-dir`) restarts.
//!
//! Stateful I/O, so it lives in the provider, never in `translate`: [`PortAllocator::assign`]
//! takes every engine's containers and answers which claim has which port and which claims are
//! refused (with the reason, reported on the container).
//!
//! - A claim is keyed by [`ClaimKey`]: (tenant, compose project and service, else the container
//!   name; container port). Compose replicas share one key, so one port; a container that is
//!   stopped, restarted or recreated under the same name gets its port back.
//! - A claim whose containers are all gone (removed) releases its port but keeps it *reserved*
//!   for the key: the same key coming back gets it again. A reserved port goes to another claim
//!   only when the range has no never-used port left (the longest-released first). Reserved
//!   claims do not count in the quota.
//! - Live claims keep their ports first; new claims are served oldest container first. The
//!   tenant's claims beyond the quota, and claims when the range is exhausted, are refused.
//! - `--state-dir DIR`: the assignments are kept in `DIR/tcp-ports.json`, written (temp file +
//!   rename) whenever they change, read at start. Without it they last as long as the process.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::labels;
use super::objects::Container;

/// The file in `--state-dir`.
pub const STATE_FILE: &str = "tcp-ports.json";

/// `--tcp-ports`, `--tcp-quota`, `--state-dir`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpOptions {
    pub range: RangeInclusive<u16>,
    pub quota: usize,
    pub state_dir: Option<PathBuf>,
}

impl Default for TcpOptions {
    fn default() -> TcpOptions {
        TcpOptions {
            range: 30000..=30999,
            quota: 4,
            state_dir: None,
        }
    }
}

/// `FIRST-LAST` (or one port) → the range; the error names what is wrong.
pub fn parse_range(text: &str) -> Result<RangeInclusive<u16>, String> {
    let (first, last) = text.split_once('-').unwrap_or((text, text));
    let port = |s: &str| {
        s.trim()
            .parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| format!("{s:?} is not a port (1 to 65535)"))
    };
    let (first, last) = (port(first)?, port(last)?);
    if first > last {
        return Err(format!("{text}: the first port is above the last"));
    }
    Ok(first..=last)
}

/// What a tcp:// claim is known by.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClaimKey {
    pub tenant: String,
    /// `<project>-<service>` for a compose container (`com.docker.compose.*` labels), else the
    /// container name.
    pub name: String,
    pub container_port: u16,
}

/// The compose project and service of a container (`web` of project `shop`: `shop-web`), else
/// its name: what its replicas and its later incarnations share.
pub fn claim_name(container: &Container) -> String {
    let label = |key: &str| container.labels.get(key).filter(|v| !v.is_empty());
    match (label("com.docker.compose.project"), label("com.docker.compose.service")) {
        (Some(project), Some(service)) => format!("{project}-{service}"),
        (None, Some(service)) => service.clone(),
        _ => container.name.clone(),
    }
}

/// One claim's fate in this round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    Assigned(u16),
    Refused(String),
}

/// The result of [`PortAllocator::assign`]: every live claim, by key.
pub type Claims = BTreeMap<ClaimKey, Claim>;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Entry {
    #[serde(flatten)]
    key: ClaimKey,
    public_port: u16,
    /// `None` while live; else the release sequence number (lower: released earlier).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    released: Option<u64>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct StateFile {
    version: u32,
    #[serde(default)]
    assignments: Vec<Entry>,
}

/// The assignments, kept across rounds (and in `--state-dir`).
#[derive(Debug)]
pub struct PortAllocator {
    options: TcpOptions,
    entries: BTreeMap<ClaimKey, Entry>,
    next_release: u64,
}

impl PortAllocator {
    /// An allocator with the assignments of `--state-dir` (created if missing). Errors name the
    /// file and what is wrong; entries outside the range are dropped (the range changed).
    pub fn open(options: TcpOptions) -> Result<PortAllocator, String> {
        let mut allocator = PortAllocator {
            options,
            entries: BTreeMap::new(),
            next_release: 0,
        };
        let Some(path) = allocator.state_path() else {
            return Ok(allocator);
        };
        if let Some(dir) = &allocator.options.state_dir {
            std::fs::create_dir_all(dir)
                .map_err(|error| format!("--state-dir: cannot create {}: {error}", dir.display()))?;
        }
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(allocator),
            Err(error) => return Err(format!("--state-dir: cannot read {}: {error}", path.display())),
        };
        let state: StateFile = serde_json::from_str(&text).map_err(|error| {
            format!(
                "--state-dir: {} is not a TCP port state file ({error}); fix or remove it",
                path.display()
            )
        })?;
        let mut used = BTreeSet::new();
        for entry in state.assignments {
            if !allocator.options.range.contains(&entry.public_port) || !used.insert(entry.public_port) {
                tracing::warn!(
                    port = entry.public_port,
                    tenant = %entry.key.tenant,
                    name = %entry.key.name,
                    "{}: assignment outside --tcp-ports or repeated: dropped",
                    path.display()
                );
                continue;
            }
            allocator.next_release = allocator.next_release.max(entry.released.unwrap_or(0) + 1);
            allocator.entries.insert(entry.key.clone(), entry);
        }
        Ok(allocator)
    }

    fn state_path(&self) -> Option<PathBuf> {
        self.options.state_dir.as_ref().map(|dir| dir.join(STATE_FILE))
    }

    /// Assigns ports to the tcp:// claims of `containers` (every engine's), releases the ports
    /// of claims with no container left, and saves the state when it changed.
    pub fn assign(&mut self, containers: &[Container]) -> Claims {
        // Live claims, each with its oldest container's creation time.
        let mut live: BTreeMap<ClaimKey, &str> = BTreeMap::new();
        for container in containers {
            let name = claim_name(container);
            for container_port in labels::tcp_ports(&container.labels) {
                let key = ClaimKey {
                    tenant: container.tenant.clone(),
                    name: name.clone(),
                    container_port,
                };
                let created = live.entry(key).or_insert(container.created.as_str());
                if container.created.as_str() < *created {
                    *created = container.created.as_str();
                }
            }
        }
        let before = self.entries.clone();
        for (key, entry) in &mut self.entries {
            if entry.released.is_none() && !live.contains_key(key) {
                entry.released = Some(self.next_release);
                self.next_release += 1;
            }
        }
        // Claims holding a port keep it first; then the oldest.
        let mut order: Vec<(&ClaimKey, &str)> = live.iter().map(|(k, c)| (k, *c)).collect();
        order.sort_by_key(|(key, created)| {
            let holding = self.entries.get(*key).is_some_and(|e| e.released.is_none());
            (!holding, *created, *key)
        });
        let mut claims = Claims::new();
        let mut per_tenant: BTreeMap<&str, usize> = BTreeMap::new();
        for (key, _) in order {
            let count = per_tenant.entry(key.tenant.as_str()).or_default();
            if *count >= self.options.quota {
                if let Some(entry) = self.entries.get_mut(key)
                    && entry.released.is_none()
                {
                    entry.released = Some(self.next_release);
                    self.next_release += 1;
                }
                claims.insert(
                    key.clone(),
                    Claim::Refused(format!(
                        "tenant {} already has {} TCP ports (--tcp-quota {}); container port {} gets none",
                        key.tenant, count, self.options.quota, key.container_port
                    )),
                );
                continue;
            }
            match self.port_for(key) {
                Some(port) => {
                    *count += 1;
                    claims.insert(key.clone(), Claim::Assigned(port));
                }
                None => {
                    claims.insert(
                        key.clone(),
                        Claim::Refused(format!(
                            "every port of --tcp-ports {}-{} is taken; container port {} gets none",
                            self.options.range.start(),
                            self.options.range.end(),
                            key.container_port
                        )),
                    );
                }
            }
        }
        if self.entries != before {
            self.save();
        }
        claims
    }

    /// The key's port: its own (live or reserved), else a never-used one, else the reserved
    /// port released longest ago. `None`: the range is exhausted.
    fn port_for(&mut self, key: &ClaimKey) -> Option<u16> {
        if let Some(entry) = self.entries.get_mut(key) {
            entry.released = None;
            return Some(entry.public_port);
        }
        let used: BTreeSet<u16> = self.entries.values().map(|e| e.public_port).collect();
        let port = match self.options.range.clone().find(|p| !used.contains(p)) {
            Some(port) => port,
            None => {
                let (oldest, port) = self
                    .entries
                    .values()
                    .filter_map(|e| e.released.map(|at| (at, e.key.clone(), e.public_port)))
                    .min()
                    .map(|(_, key, port)| (key, port))?;
                self.entries.remove(&oldest);
                port
            }
        };
        self.entries.insert(
            key.clone(),
            Entry {
                key: key.clone(),
                public_port: port,
                released: None,
            },
        );
        Some(port)
    }

    fn save(&self) {
        let Some(path) = self.state_path() else { return };
        let state = StateFile {
            version: 1,
            assignments: self.entries.values().cloned().collect(),
        };
        if let Err(error) = write_atomically(&path, &state) {
            tracing::warn!(
                "--state-dir: cannot write {}: {error}; the TCP port assignments hold until Vestibule stops",
                path.display()
            );
        }
    }
}

/// Writes `DIR/tcp-ports.json.tmp`, syncs it, renames it over the file: a crash leaves the old
/// state or the new one, never half of one.
fn write_atomically(path: &Path, state: &StateFile) -> std::io::Result<()> {
    use std::io::Write;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let temp = path.with_extension("json.tmp");
    let mut file = std::fs::File::create(&temp)?;
    let text = serde_json::to_string_pretty(state).map_err(std::io::Error::other)?;
    file.write_all(text.as_bytes())?;
    file.write_all(b"\n")?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&temp, path)
}

#[cfg(test)]
mod tests;
