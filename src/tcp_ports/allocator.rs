//! The raw TCP port allocator: public ports from `--tcp-ports`, at most `--tcp-quota` per
//! tenant, stable across reloads and (with `--state-dir`) restarts. One allocator serves every
//! kind of claim: Docker `kr.ingress.{port}=tcp://` labels (owned by the Docker aggregator) and
//! Services annotated `vestibule.dev/tcp-ports` (owned by the task of `src/tcp_ports.rs`); they
//! share it (one range, one quota per tenant, one state file).
//!
//! Stateful I/O, so it lives outside `translate`: [`PortAllocator::assign`] takes one kind's
//! requests and answers which claim has which port and which claims are refused (with the
//! reason, reported on the container or Service).
//!
//! - A claim is keyed by [`ClaimKey`]: (kind, tenant, name, port). For a container: its compose
//!   project and service, else its name, and the container port (compose replicas share one
//!   key, so one port; a container stopped, restarted or recreated under the same name gets its
//!   port back). For a Service: its name and the Service port; the tenant is the namespace.
//! - A claim whose requests are all gone releases its port but keeps it *reserved* for the key:
//!   the same key coming back gets it again. A reserved port goes to another claim only when
//!   the range has no never-used port left (the longest-released first). Reserved claims do not
//!   count in the quota.
//! - Live claims keep their ports first; then the others, oldest first. A claim may carry a
//!   *seed*: the port it held before, as the leader wrote it on a Service
//!   (`vestibule.dev/tcp-ports-assigned`). A seed is only a wish: it is granted when it is in the
//!   range and no other claim holds or reserves it, and the quota still applies; a new claim
//!   without one takes another claim's wished port only when no other port is free.
//! - `--state-dir DIR`: the assignments are kept in `DIR/tcp-ports.json`, written (temp file +
//!   rename) whenever they change, read at start. Without it they last as long as the process.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

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

/// Who asks for a port: a Docker container's `tcp://` label, or an annotated Service.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ClaimKind {
    #[default]
    Container,
    Service,
}

impl ClaimKind {
    fn is_container(&self) -> bool {
        *self == ClaimKind::Container
    }
}

/// What a claim is known by.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClaimKey {
    /// Absent in the state file for containers (files written before Services could claim).
    #[serde(default, skip_serializing_if = "ClaimKind::is_container")]
    pub kind: ClaimKind,
    /// The Docker tenant, or the Service's namespace.
    pub tenant: String,
    /// `<project>-<service>` for a compose container (`com.docker.compose.*` labels), else the
    /// container name; or the Service's name.
    pub name: String,
    /// The container port, or the Service port.
    pub container_port: u16,
}

/// One claim asked for in a round of [`PortAllocator::assign`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub key: ClaimKey,
    /// When it was first asked for (the oldest container's creation, the Service's
    /// `creationTimestamp`); `None` (a manifest) counts as newer than any time.
    pub created: Option<String>,
    /// The port it held before, if it says so (see the module documentation).
    pub seed: Option<u16>,
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

    /// Assigns ports to the claims of `kind` in `requests` (every request of that kind: those
    /// of that kind not asked for again release their ports; other kinds' are left alone but
    /// count in the quota), and saves the state when it changed.
    pub fn assign(&mut self, kind: ClaimKind, requests: &[Request]) -> Claims {
        // Live claims, each with its oldest request's time and its seed.
        let mut live: BTreeMap<&ClaimKey, (Option<&str>, Option<u16>)> = BTreeMap::new();
        for request in requests.iter().filter(|r| r.key.kind == kind) {
            let (created, seed) = live.entry(&request.key).or_insert((request.created.as_deref(), None));
            if let Some(time) = request.created.as_deref()
                && created.is_none_or(|c| time < c)
            {
                *created = Some(time);
            }
            *seed = seed.or(request.seed);
        }
        let before = self.entries.clone();
        for (key, entry) in &mut self.entries {
            if key.kind == kind && entry.released.is_none() && !live.contains_key(key) {
                entry.released = Some(self.next_release);
                self.next_release += 1;
            }
        }
        // Claims holding a port keep it first; then the oldest. New claims leave the seeds of
        // others alone while another port is free.
        let range = self.options.range.clone();
        let mut order: Vec<(&ClaimKey, Option<&str>, Option<u16>)> = live
            .iter()
            .map(|(k, (c, s))| (*k, *c, s.filter(|p| range.contains(p))))
            .collect();
        order.sort_by_key(|(key, created, _)| {
            let holding = self.entries.get(*key).is_some_and(|e| e.released.is_none());
            (!holding, created.is_none(), *created, *key)
        });
        let wished: BTreeSet<u16> = order
            .iter()
            .filter(|(key, _, _)| !self.entries.contains_key(*key))
            .filter_map(|(_, _, seed)| *seed)
            .collect();
        let mut claims = Claims::new();
        let mut per_tenant: BTreeMap<String, usize> = BTreeMap::new();
        for entry in self.entries.values() {
            if entry.key.kind != kind && entry.released.is_none() {
                *per_tenant.entry(entry.key.tenant.clone()).or_default() += 1;
            }
        }
        for (key, _, seed) in order {
            let count = per_tenant.entry(key.tenant.clone()).or_default();
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
                        "tenant {} already has {} TCP ports (--tcp-quota {}); {} {} gets none",
                        key.tenant,
                        count,
                        self.options.quota,
                        port_noun(key.kind),
                        key.container_port
                    )),
                );
                continue;
            }
            match self.port_for(key, seed, &wished) {
                Some(port) => {
                    *count += 1;
                    claims.insert(key.clone(), Claim::Assigned(port));
                }
                None => {
                    claims.insert(
                        key.clone(),
                        Claim::Refused(format!(
                            "every port of --tcp-ports {}-{} is taken; {} {} gets none",
                            self.options.range.start(),
                            self.options.range.end(),
                            port_noun(key.kind),
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

    /// The key's port: its own (live or reserved), else its seed when no claim holds or
    /// reserves it, else a never-used one (one no other new claim wishes for, if any), else
    /// the reserved port released longest ago. `None`: the range is exhausted.
    fn port_for(&mut self, key: &ClaimKey, seed: Option<u16>, wished: &BTreeSet<u16>) -> Option<u16> {
        if let Some(entry) = self.entries.get_mut(key) {
            entry.released = None;
            return Some(entry.public_port);
        }
        let used: BTreeSet<u16> = self.entries.values().map(|e| e.public_port).collect();
        let mut free = self.options.range.clone().filter(|p| !used.contains(p));
        let fresh = match seed.filter(|p| self.options.range.contains(p) && !used.contains(p)) {
            Some(seed) => Some(seed),
            None => free.clone().find(|p| !wished.contains(p)).or_else(|| free.next()),
        };
        let port = match fresh {
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

fn port_noun(kind: ClaimKind) -> &'static str {
    match kind {
        ClaimKind::Container => "container port",
        ClaimKind::Service => "port",
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
