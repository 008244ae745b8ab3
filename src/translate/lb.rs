//! LoadBalancer addresses (`--lb`): `type: LoadBalancer` Services of ours get addresses from
//! MetalLB-compatible pools. Pure: the snapshot in, each Service's addresses and the issues out;
//! the leader writes them to `status.loadBalancer.ingress` (`cluster/lb_status.rs`).
//!
//! Pools: `metallb.io/v1beta1` IPAddressPools and the `address-pools` of MetalLB's legacy
//! ConfigMap (`config`, YAML in `data.config`), both only in `--lb-config-namespace` as MetalLB
//! reads them. Entries are CIDRs or `first-last` ranges, IPv4 or IPv6; `autoAssign: false`
//! pools serve only Services that ask for them; `avoidBuggyIPs` skips addresses ending in `.0`
//! and `.255`; `serviceAllocation` restricts a pool to namespaces and Service labels, and
//! orders the pools that match by `priority` (lower first; without one, after, by name).
//!
//! Deterministic and derived from what the Services' status already says, so that restarts and
//! leader changes never reshuffle addresses. Services are taken oldest first (creation time,
//! then namespace and name), in three passes:
//! 1. each Service keeps the addresses its status holds while they are still valid (in a pool
//!    that serves it, of a family it wants, what it asked for, not held by an older Service it
//!    cannot share with);
//! 2. Services asking for addresses (`spec.loadBalancerIP`, `metallb.universe.tf/loadBalancerIPs`)
//!    get them when free or shareable;
//! 3. the others get the first free address of the first pool that serves them, or share one
//!    with a Service of the same `allow-shared-ip` key whose ports do not overlap.
//!
//! So a Service that holds an address never loses it to another Service, and a bad pool or
//! Service only costs itself: problems are issues (errors on pools and the ConfigMap, so the
//! controller keeps their last good version; warnings on Services), never a panic.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::{Deserialize, Serialize};

use super::annotations::field as annotation_field;
use crate::config::gateway::LabelSelector;
use crate::config::{Issue, Kind, Object, ObjectKey, Origin, Service, ServiceAllocation, Snapshot, StoredObject};

/// The `spec.loadBalancerClass` served by default (`--lb-class`).
pub const LB_CLASS: &str = "vestibule.dev/lb";
/// The namespace of MetalLB's configuration by default (`--lb-config-namespace`).
pub const CONFIG_NAMESPACE: &str = "metallb-system";
/// The name of MetalLB's legacy ConfigMap.
pub const LEGACY_CONFIG_MAP: &str = "config";

/// The pool a Service asks for (both spellings MetalLB reads; the first wins).
pub const POOL_ANNOTATIONS: [&str; 2] = ["metallb.universe.tf/address-pool", "metallb.io/address-pool"];
/// The addresses a Service asks for, comma-separated, at most one per family.
pub const IPS_ANNOTATIONS: [&str; 2] = ["metallb.universe.tf/loadBalancerIPs", "metallb.io/loadBalancerIPs"];
/// The sharing key: Services with the same key and no common port may share an address.
pub const SHARING_ANNOTATIONS: [&str; 2] = ["metallb.universe.tf/allow-shared-ip", "metallb.io/allow-shared-ip"];

/// `--lb` and its flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LbOptions {
    /// `--lb-class`: the `spec.loadBalancerClass` that is ours.
    pub class: String,
    /// `--lb-default`: Services without a `loadBalancerClass` are ours too.
    pub default_class: bool,
    /// `--lb-config-namespace`: where pools and the legacy ConfigMap are read.
    pub config_namespace: String,
}

impl Default for LbOptions {
    fn default() -> Self {
        LbOptions {
            class: LB_CLASS.to_string(),
            default_class: true,
            config_namespace: CONFIG_NAMESPACE.to_string(),
        }
    }
}

/// The addresses one Service should have, beside what its status says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LbAddresses {
    pub namespace: String,
    pub name: String,
    /// Primary family first; empty: none (a status that holds some is cleared).
    pub addresses: Vec<IpAddr>,
    /// The pool of each address.
    pub pools: Vec<String>,
    /// The IPs of its `status.loadBalancer.ingress`, as read.
    pub current: Vec<String>,
    /// The Service's `resourceVersion`, as read (the write's precondition).
    #[serde(skip)]
    pub resource_version: Option<String>,
    #[serde(skip)]
    pub origin: Origin,
}

impl LbAddresses {
    /// The status differs from what it should be.
    pub fn changed(&self) -> bool {
        self.current.len() != self.addresses.len()
            || self
                .current
                .iter()
                .zip(&self.addresses)
                .any(|(have, want)| have.parse::<IpAddr>().ok() != Some(*want))
    }

    /// The Service's `status` as it should be (what `/api/status` shows).
    pub fn status(&self) -> serde_json::Value {
        let ingress: Vec<serde_json::Value> = self
            .addresses
            .iter()
            .map(|ip| serde_json::json!({ "ip": ip.to_string() }))
            .collect();
        if ingress.is_empty() {
            serde_json::json!({ "loadBalancer": {} })
        } else {
            serde_json::json!({ "loadBalancer": { "ingress": ingress } })
        }
    }
}

/// Allocates addresses to every Service of ours (see the module documentation), and lists the
/// Services that are not `LoadBalancer` but whose status still holds addresses (to clear).
/// Sorted by namespace and name.
pub fn allocate(snapshot: &Snapshot, options: &LbOptions, issues: &mut Vec<Issue>) -> Vec<LbAddresses> {
    let pools = Pools::read(snapshot, options, issues);
    let namespaces = namespace_labels(snapshot);
    let mut services: Vec<Claimant<'_>> = Vec::new();
    let mut cleared = Vec::new();
    for stored in snapshot.of_kind(Kind::Service) {
        let Object::Service(service) = &stored.object else {
            continue;
        };
        let current: Vec<String> = service
            .status
            .load_balancer
            .ingress
            .iter()
            .filter_map(|ingress| ingress.ip.clone())
            .collect();
        if service.spec.type_.as_deref() != Some("LoadBalancer") {
            if !current.is_empty() {
                cleared.push(entry(stored, service, Vec::new(), Vec::new(), current));
            }
            continue;
        }
        let ours = match service.spec.load_balancer_class.as_deref() {
            Some(class) => class == options.class,
            None => options.default_class,
        };
        if ours {
            services.push(Claimant::new(stored, service, current, &namespaces, issues));
        }
    }
    // Oldest first; objects without a creation time (manifests) after, then by key.
    services.sort_by(|a, b| (a.created.is_none(), a.created, &a.key).cmp(&(b.created.is_none(), b.created, &b.key)));

    let mut book = Book::default();
    // 1. What the status holds, while valid.
    for (index, claimant) in services.iter_mut().enumerate() {
        let held: Vec<IpAddr> = claimant.current.iter().filter_map(|ip| ip.parse().ok()).collect();
        for ip in held {
            if claimant.has_family(ip) || !claimant.families.contains(&Family::of(ip)) {
                continue;
            }
            let Some(pool) = pools.containing(ip) else { continue };
            let asked = match &claimant.requested {
                Some(requested) => requested.contains(&ip),
                None => match &claimant.pinned {
                    Some(name) => &pool.name == name,
                    None => pool.auto_assign,
                },
            };
            if asked && pool.serves(claimant) && pool.usable(ip) && book.can_take(ip, claimant) {
                book.take(ip, index, claimant);
                claimant.assigned.push((ip, pool.name.clone()));
            }
        }
    }
    // 2. What is asked for.
    for index in 0..services.len() {
        let Some(claimant) = services.get(index) else { continue };
        let Some(requested) = claimant.requested.clone() else {
            continue;
        };
        for ip in requested {
            let Some(claimant) = services.get(index) else { break };
            if claimant.assigned.iter().any(|(held, _)| *held == ip) {
                continue;
            }
            let refused = refuse_request(ip, claimant, &pools, &book, &services);
            let Some(claimant) = services.get_mut(index) else { break };
            match refused {
                Err(message) => {
                    let field = claimant.requested_field.clone();
                    claimant.warn(field, message);
                }
                Ok(pool) => {
                    book.take(ip, index, claimant);
                    claimant.assigned.push((ip, pool));
                }
            }
        }
    }
    // 3. The others, from the pools.
    let mut cursors = Cursors::default();
    for (index, claimant) in services.iter_mut().enumerate() {
        if claimant.requested.is_some() {
            continue;
        }
        let missing: Vec<Family> = claimant
            .families
            .iter()
            .copied()
            .filter(|family| !claimant.assigned.iter().any(|(ip, _)| Family::of(*ip) == *family))
            .collect();
        if missing.is_empty() {
            continue;
        }
        let held_pool = claimant.assigned.first().map(|(_, pool)| pool.clone());
        let mut candidates: Vec<&Pool> = pools
            .list
            .iter()
            .filter(|pool| match &claimant.pinned {
                Some(name) => &pool.name == name,
                None => pool.auto_assign,
            })
            .filter(|pool| pool.serves(claimant))
            .collect();
        // The pool already used first (MetalLB gives both families from one pool), then pools
        // with every missing family, then by priority and name.
        candidates.sort_by_key(|pool| {
            (
                Some(&pool.name) != held_pool.as_ref(),
                !missing.iter().all(|family| pool.has_family(*family)),
                pool.priority.is_none(),
                pool.priority,
                pool.name.clone(),
            )
        });
        for family in missing {
            let shared = claimant.sharing.as_ref().and_then(|_| {
                book.shareable(family, claimant).find_map(|ip| {
                    candidates
                        .iter()
                        .find(|pool| pool.contains(ip) && pool.usable(ip))
                        .map(|pool| (ip, *pool))
                })
            });
            let found = shared.or_else(|| {
                candidates
                    .iter()
                    .find_map(|pool| pool.first_free(family, &book, &mut cursors).map(|ip| (ip, *pool)))
            });
            match found {
                Some((ip, pool)) => {
                    book.take(ip, index, claimant);
                    claimant.assigned.push((ip, pool.name.clone()));
                }
                None if claimant.families.first() == Some(&family) || claimant.require_dual => {
                    let message = if candidates.iter().any(|pool| pool.has_family(family)) {
                        format!(
                            "no {} address left in pool(s) {}",
                            family.name(),
                            candidates
                                .iter()
                                .filter(|pool| pool.has_family(family))
                                .map(|pool| format!("{:?}", pool.name))
                                .collect::<Vec<_>>()
                                .join(", ")
                        )
                    } else if let Some(name) = &claimant.pinned {
                        if pools.by_name(name).is_none() {
                            format!("pool {name:?} does not exist")
                        } else {
                            format!(
                                "pool {name:?} has no {} address that may serve this Service",
                                family.name()
                            )
                        }
                    } else {
                        format!(
                            "no address pool gives {} addresses to this Service (autoAssign, serviceAllocation)",
                            family.name()
                        )
                    };
                    let field = claimant.pool_field.clone().unwrap_or_else(|| "spec.type".to_string());
                    claimant.warn(field, format!("no {} address: {message}", family.name()));
                }
                // PreferDualStack: the second family only when a pool allows.
                None => {}
            }
        }
    }

    let mut result: Vec<LbAddresses> = cleared;
    for claimant in services {
        let mut assigned = claimant.assigned;
        // Primary family first, as the Service lists them.
        assigned.sort_by_key(|(ip, _)| claimant.families.iter().position(|f| *f == Family::of(*ip)));
        issues.extend(claimant.issues);
        let (addresses, pools): (Vec<IpAddr>, Vec<String>) = assigned.into_iter().unzip();
        result.push(entry(
            claimant.stored,
            claimant.service,
            addresses,
            pools,
            claimant.current,
        ));
    }
    result.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    result
}

/// The pool of an address a Service asks for, or why it cannot have it.
fn refuse_request(
    ip: IpAddr,
    claimant: &Claimant<'_>,
    pools: &Pools<'_>,
    book: &Book,
    services: &[Claimant<'_>],
) -> Result<String, String> {
    if !claimant.families.contains(&Family::of(ip)) {
        return Err(format!(
            "{ip} is {}, which the Service's ipFamilies ({}) do not include",
            Family::of(ip).name(),
            claimant.family_names()
        ));
    }
    if claimant.has_family(ip) {
        return Err(format!("{ip}: only one address per family is taken"));
    }
    let Some(pool) = pools.containing(ip) else {
        return Err(format!("{ip} is in no address pool"));
    };
    if let Some(pinned) = &claimant.pinned
        && &pool.name != pinned
    {
        return Err(format!(
            "{ip} is in pool {:?}, not in the pool asked for ({pinned:?})",
            pool.name
        ));
    }
    if !pool.serves(claimant) {
        return Err(format!(
            "{ip} is in pool {:?}, whose serviceAllocation does not select this Service",
            pool.name
        ));
    }
    if !pool.usable(ip) {
        return Err(format!("{ip} ends in .0 or .255, which pool {:?} avoids", pool.name));
    }
    if let Some(holder) = book.refusal(ip, claimant) {
        let holders = holder
            .services
            .iter()
            .filter_map(|i| services_key(services, *i))
            .collect::<Vec<_>>()
            .join(", ");
        return Err(format!(
            "{ip} is held by Service {holders}, {}",
            book.why_not(ip, claimant)
        ));
    }
    Ok(pool.name.clone())
}

fn services_key(services: &[Claimant<'_>], index: usize) -> Option<String> {
    services
        .get(index)
        .map(|c| format!("{}/{}", c.key.namespace, c.key.name))
}

fn entry(
    stored: &StoredObject,
    service: &Service,
    addresses: Vec<IpAddr>,
    pools: Vec<String>,
    current: Vec<String>,
) -> LbAddresses {
    let key = stored.key();
    LbAddresses {
        namespace: key.namespace,
        name: key.name,
        addresses,
        pools,
        current,
        resource_version: service.metadata.resource_version.clone(),
        origin: stored.origin.clone(),
    }
}

// ---------------------------------------------------------------------------------------------
// Families and ranges

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Family {
    V4,
    V6,
}

impl Family {
    fn of(ip: IpAddr) -> Family {
        match ip {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        }
    }

    fn address(self, value: u128) -> IpAddr {
        match self {
            Family::V4 => IpAddr::V4(Ipv4Addr::from(value as u32)),
            Family::V6 => IpAddr::V6(Ipv6Addr::from(value)),
        }
    }
}

fn value(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

/// `first..=last` of one family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Range {
    family: Family,
    first: u128,
    last: u128,
}

impl Range {
    fn contains(&self, ip: IpAddr) -> bool {
        Family::of(ip) == self.family && (self.first..=self.last).contains(&value(ip))
    }
}

/// One entry of a pool's `addresses`: a CIDR (host bits ignored, as MetalLB's Go parser does)
/// or `first-last`.
fn parse_range(text: &str) -> Result<Range, String> {
    let text = text.trim();
    if let Some((address, bits)) = text.split_once('/') {
        let ip: IpAddr = address
            .trim()
            .parse()
            .map_err(|_| format!("{text:?}: {address:?} is not an IP address"))?;
        let family = Family::of(ip);
        let width: u32 = match family {
            Family::V4 => 32,
            Family::V6 => 128,
        };
        let bits: u32 = bits
            .trim()
            .parse()
            .ok()
            .filter(|bits| *bits <= width)
            .ok_or_else(|| format!("{text:?}: the prefix length is not 0-{width}"))?;
        let host_bits = width - bits;
        let host_mask = if host_bits == 0 {
            0
        } else {
            u128::MAX >> (128 - host_bits)
        };
        let first = value(ip) & !host_mask;
        return Ok(Range {
            family,
            first,
            last: first | host_mask,
        });
    }
    if let Some((first, last)) = text.split_once('-') {
        let parse = |part: &str| -> Result<IpAddr, String> {
            part.trim()
                .parse()
                .map_err(|_| format!("{text:?}: {:?} is not an IP address", part.trim()))
        };
        let (first, last) = (parse(first)?, parse(last)?);
        if Family::of(first) != Family::of(last) {
            return Err(format!("{text:?}: the range mixes IPv4 and IPv6"));
        }
        if value(first) > value(last) {
            return Err(format!("{text:?}: the range ends before it starts"));
        }
        return Ok(Range {
            family: Family::of(first),
            first: value(first),
            last: value(last),
        });
    }
    Err(format!(
        "{text:?} is not a CIDR (192.0.2.0/24) or a range (192.0.2.10-192.0.2.20); one address is written 192.0.2.1/32"
    ))
}

// ---------------------------------------------------------------------------------------------
// Pools

#[derive(Debug)]
struct Pool<'s> {
    name: String,
    /// Its object's creation time (a legacy pool: its ConfigMap's).
    created: Option<&'s str>,
    ranges: Vec<Range>,
    auto_assign: bool,
    avoid_buggy_ips: bool,
    priority: Option<i32>,
    allocation: Option<&'s ServiceAllocation>,
}

impl Pool<'_> {
    fn contains(&self, ip: IpAddr) -> bool {
        self.ranges.iter().any(|range| range.contains(ip))
    }

    fn has_family(&self, family: Family) -> bool {
        self.ranges.iter().any(|range| range.family == family)
    }

    /// Not an address `avoidBuggyIPs` skips.
    fn usable(&self, ip: IpAddr) -> bool {
        match ip {
            IpAddr::V4(v4) if self.avoid_buggy_ips => !matches!(v4.octets()[3], 0 | 255),
            _ => true,
        }
    }

    /// Its `serviceAllocation` selects the Service (no `serviceAllocation`: every Service).
    fn serves(&self, claimant: &Claimant<'_>) -> bool {
        let Some(allocation) = self.allocation else { return true };
        let namespace = &claimant.key.namespace;
        let namespace_ok = (allocation.namespaces.is_empty() && allocation.namespace_selectors.is_empty())
            || allocation.namespaces.iter().any(|n| n == namespace)
            || allocation
                .namespace_selectors
                .iter()
                .any(|selector| selects(selector, |key| claimant.namespace_label(key)));
        let service_ok = allocation.service_selectors.is_empty()
            || allocation.service_selectors.iter().any(|selector| {
                selects(selector, |key| {
                    claimant.service.metadata.labels.get(key).map(String::as_str)
                })
            });
        namespace_ok && service_ok
    }

    /// The first address of `family` nobody holds.
    fn first_free(&self, family: Family, book: &Book, cursors: &mut Cursors) -> Option<IpAddr> {
        for (index, range) in self.ranges.iter().enumerate().filter(|(_, r)| r.family == family) {
            // Nothing is released while pass 3 runs: below the cursor every address is taken.
            let cursor = cursors.entry((self.name.clone(), index)).or_insert(range.first);
            let mut candidate = *cursor;
            while candidate <= range.last {
                let ip = family.address(candidate);
                if self.usable(ip) && !book.holders.contains_key(&ip) {
                    *cursor = candidate;
                    return Some(ip);
                }
                if candidate == range.last {
                    break;
                }
                candidate += 1;
            }
            *cursor = range.last;
        }
        None
    }
}

type Cursors = HashMap<(String, usize), u128>;

/// A label selector against a lookup (`matchLabels` and `matchExpressions` all hold).
fn selects<'a>(selector: &LabelSelector, label: impl Fn(&str) -> Option<&'a str>) -> bool {
    selector.match_labels.iter().all(|(k, v)| label(k) == Some(v.as_str()))
        && selector.match_expressions.iter().all(|e| {
            let value = label(&e.key);
            match e.operator.as_str() {
                "In" => value.is_some_and(|v| e.values.iter().any(|x| x == v)),
                "NotIn" => value.is_none_or(|v| !e.values.iter().any(|x| x == v)),
                "Exists" => value.is_some(),
                "DoesNotExist" => value.is_none(),
                _ => false,
            }
        })
}

/// MetalLB's legacy ConfigMap, as much as allocation reads.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case", default)]
struct LegacyConfig {
    address_pools: Vec<LegacyPool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case", default)]
struct LegacyPool {
    name: String,
    addresses: Vec<String>,
    auto_assign: Option<bool>,
    avoid_buggy_ips: Option<bool>,
}

#[derive(Debug, Default)]
struct Pools<'s> {
    /// Sorted by name.
    list: Vec<Pool<'s>>,
}

impl<'s> Pools<'s> {
    fn read(snapshot: &'s Snapshot, options: &LbOptions, issues: &mut Vec<Issue>) -> Pools<'s> {
        // (pool, the object and field prefix to name in issues).
        let mut found: Vec<(Pool<'s>, ObjectKey, Origin, String)> = Vec::new();
        let mut names = BTreeSet::new();
        for stored in snapshot.of_kind(Kind::IPAddressPool) {
            let Object::IpAddressPool(pool) = &stored.object else {
                continue;
            };
            let key = stored.key();
            if key.namespace != options.config_namespace {
                issues.push(Issue::warning(
                    Some(key.clone()),
                    Some(stored.origin.clone()),
                    "metadata.namespace",
                    format!(
                        "not read: address pools are read only in {:?} (--lb-config-namespace), as MetalLB does",
                        options.config_namespace
                    ),
                ));
                continue;
            }
            let mut ranges = Vec::new();
            for (i, text) in pool.spec.addresses.iter().enumerate() {
                match parse_range(text) {
                    Ok(range) => ranges.push(range),
                    Err(message) => issues.push(Issue::error(
                        Some(key.clone()),
                        Some(stored.origin.clone()),
                        format!("spec.addresses[{i}]"),
                        message,
                    )),
                }
            }
            names.insert(key.name.clone());
            let allocation = pool.spec.service_allocation.as_ref();
            found.push((
                Pool {
                    name: key.name.clone(),
                    created: pool.metadata.creation_timestamp.as_deref(),
                    ranges,
                    auto_assign: pool.spec.auto_assign.unwrap_or(true),
                    avoid_buggy_ips: pool.spec.avoid_buggy_ips.unwrap_or(false),
                    priority: allocation.and_then(|a| a.priority),
                    allocation,
                },
                key,
                stored.origin.clone(),
                "spec.addresses".to_string(),
            ));
        }
        let legacy_key = ObjectKey::new(Kind::ConfigMap, options.config_namespace.clone(), LEGACY_CONFIG_MAP);
        if let Some(stored) = snapshot.objects.get(&legacy_key)
            && let Object::ConfigMap(map) = &stored.object
            && let Some(text) = map.data.get("config")
        {
            let error = |field: String, message: String| {
                Issue::error(Some(legacy_key.clone()), Some(stored.origin.clone()), field, message)
            };
            match serde_yaml_ng::from_str::<LegacyConfig>(text) {
                Err(err) => issues.push(error(
                    "data.config".into(),
                    format!("MetalLB's configuration does not parse: {err}"),
                )),
                Ok(config) => {
                    for (p, legacy) in config.address_pools.into_iter().enumerate() {
                        let prefix = format!("data.config: address-pools[{p}]");
                        if legacy.name.is_empty() {
                            issues.push(error(format!("{prefix}.name"), "the pool has no name".into()));
                            continue;
                        }
                        if !names.insert(legacy.name.clone()) {
                            issues.push(Issue::warning(
                                Some(legacy_key.clone()),
                                Some(stored.origin.clone()),
                                format!("{prefix}.name"),
                                format!(
                                    "pool {:?} is defined twice; the IPAddressPool (or the first) is used",
                                    legacy.name
                                ),
                            ));
                            continue;
                        }
                        let mut ranges = Vec::new();
                        for (i, text) in legacy.addresses.iter().enumerate() {
                            match parse_range(text) {
                                Ok(range) => ranges.push(range),
                                Err(message) => issues.push(error(format!("{prefix}.addresses[{i}]"), message)),
                            }
                        }
                        found.push((
                            Pool {
                                name: legacy.name,
                                created: map.metadata.creation_timestamp.as_deref(),
                                ranges,
                                auto_assign: legacy.auto_assign.unwrap_or(true),
                                avoid_buggy_ips: legacy.avoid_buggy_ips.unwrap_or(false),
                                priority: None,
                                allocation: None,
                            },
                            legacy_key.clone(),
                            stored.origin.clone(),
                            format!("{prefix}.addresses"),
                        ));
                    }
                }
            }
        }
        // Overlapping ranges: an address belongs to one pool. The oldest pool keeps it (then by
        // name), so a new pool can never take addresses in use; the other's range is dropped
        // and reported, and the controller keeps the last good version of that pool.
        found.sort_by(|a, b| {
            (a.0.created.is_none(), a.0.created, &a.0.name).cmp(&(b.0.created.is_none(), b.0.created, &b.0.name))
        });
        let mut seen: Vec<(Range, String)> = Vec::new();
        let mut list = Vec::new();
        for (mut pool, key, origin, field) in found {
            pool.ranges.retain(|range| {
                let clash = seen.iter().find(|(other, _)| {
                    other.family == range.family && other.first <= range.last && range.first <= other.last
                });
                if let Some((_, owner)) = clash {
                    issues.push(Issue::error(
                        Some(key.clone()),
                        Some(origin.clone()),
                        field.clone(),
                        format!(
                            "{} overlaps pool {owner:?}; an address belongs to one pool, so this range is not used",
                            show(range)
                        ),
                    ));
                    return false;
                }
                true
            });
            seen.extend(pool.ranges.iter().map(|range| (*range, pool.name.clone())));
            list.push(pool);
        }
        list.sort_by(|a, b| a.name.cmp(&b.name));
        Pools { list }
    }

    fn containing(&self, ip: IpAddr) -> Option<&Pool<'s>> {
        self.list.iter().find(|pool| pool.contains(ip))
    }

    fn by_name(&self, name: &str) -> Option<&Pool<'s>> {
        self.list.iter().find(|pool| pool.name == name)
    }
}

fn show(range: &Range) -> String {
    format!(
        "{}-{}",
        range.family.address(range.first),
        range.family.address(range.last)
    )
}

fn namespace_labels(snapshot: &Snapshot) -> HashMap<&str, &BTreeMap<String, String>> {
    snapshot
        .of_kind(Kind::Namespace)
        .filter_map(|stored| match &stored.object {
            Object::Namespace(ns) => Some((ns.metadata.name.as_str(), &ns.metadata.labels)),
            _ => None,
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Services

/// A Service of ours, as allocation reads it.
struct Claimant<'s> {
    stored: &'s StoredObject,
    service: &'s Service,
    key: ObjectKey,
    created: Option<&'s str>,
    namespace_labels: Option<&'s BTreeMap<String, String>>,
    /// Wanted, primary first.
    families: Vec<Family>,
    require_dual: bool,
    /// The pool asked for, and the annotation naming it.
    pinned: Option<String>,
    pool_field: Option<String>,
    /// The addresses asked for (`None`: none asked), and the field naming them.
    requested: Option<Vec<IpAddr>>,
    requested_field: String,
    sharing: Option<String>,
    /// (port, protocol).
    ports: BTreeSet<(i32, String)>,
    /// With `externalTrafficPolicy: Local`, only Services of the same selector may share.
    backend: Option<String>,
    current: Vec<String>,
    assigned: Vec<(IpAddr, String)>,
    issues: Vec<Issue>,
}

impl<'s> Claimant<'s> {
    fn new(
        stored: &'s StoredObject,
        service: &'s Service,
        current: Vec<String>,
        namespaces: &HashMap<&str, &'s BTreeMap<String, String>>,
        issues: &mut Vec<Issue>,
    ) -> Claimant<'s> {
        let key = stored.key();
        let annotations = &service.metadata.annotations;
        let annotation = |keys: &[&'static str]| keys.iter().find_map(|k| annotations.get(*k).map(|v| (*k, v.trim())));
        let mut claimant = Claimant {
            stored,
            service,
            created: service.metadata.creation_timestamp.as_deref(),
            namespace_labels: namespaces.get(key.namespace.as_str()).copied(),
            key,
            families: Vec::new(),
            require_dual: service.spec.ip_family_policy.as_deref() == Some("RequireDualStack"),
            pinned: None,
            pool_field: None,
            requested: None,
            requested_field: "spec.loadBalancerIP".to_string(),
            sharing: annotation(&SHARING_ANNOTATIONS)
                .map(|(_, v)| v.to_string())
                .filter(|v| !v.is_empty()),
            ports: service
                .spec
                .ports
                .iter()
                .map(|p| (p.port, p.protocol.clone().unwrap_or_else(|| "TCP".into())))
                .collect(),
            backend: (service.spec.external_traffic_policy.as_deref() == Some("Local"))
                .then(|| format!("{:?}", service.spec.selector)),
            current,
            assigned: Vec::new(),
            issues: Vec::new(),
        };
        for (i, family) in service.spec.ip_families.iter().enumerate() {
            match family.as_str() {
                "IPv4" => claimant.families.push(Family::V4),
                "IPv6" => claimant.families.push(Family::V6),
                other => claimant.warn(format!("spec.ipFamilies[{i}]"), format!("unknown IP family {other:?}")),
            }
        }
        claimant.families.dedup();
        if claimant.families.is_empty() {
            let v6 = service.spec.cluster_ip.as_deref().is_some_and(|ip| ip.contains(':'));
            claimant.families.push(if v6 { Family::V6 } else { Family::V4 });
        }
        if let Some((name, pool)) = annotation(&POOL_ANNOTATIONS) {
            claimant.pinned = Some(pool.to_string());
            claimant.pool_field = Some(annotation_field(name));
        }
        let spec_ip = service
            .spec
            .load_balancer_ip
            .as_deref()
            .map(str::trim)
            .filter(|ip| !ip.is_empty());
        let (field, text) = match (annotation(&IPS_ANNOTATIONS), spec_ip) {
            (Some((name, ips)), spec) => {
                if spec.is_some() {
                    claimant.warn(
                        "spec.loadBalancerIP",
                        format!("ignored: the {name} annotation is used instead (set one of them)"),
                    );
                }
                (annotation_field(name), Some(ips))
            }
            (None, Some(ip)) => ("spec.loadBalancerIP".to_string(), Some(ip)),
            (None, None) => ("spec.loadBalancerIP".to_string(), None),
        };
        claimant.requested_field = field.clone();
        if let Some(text) = text {
            let mut requested = Vec::new();
            for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                match part.parse::<IpAddr>() {
                    Ok(ip) => requested.push(ip),
                    Err(_) => claimant.warn(field.clone(), format!("{part:?} is not an IP address")),
                }
            }
            // Asked for something, even if it does not parse: nothing else is handed out.
            claimant.requested = Some(requested);
        }
        issues.append(&mut claimant.issues);
        claimant
    }

    fn has_family(&self, ip: IpAddr) -> bool {
        self.assigned
            .iter()
            .any(|(held, _)| Family::of(*held) == Family::of(ip))
    }

    fn family_names(&self) -> String {
        self.families.iter().map(|f| f.name()).collect::<Vec<_>>().join(", ")
    }

    fn namespace_label(&self, key: &str) -> Option<&'s str> {
        if key == "kubernetes.io/metadata.name" {
            return Some(self.stored_namespace());
        }
        self.namespace_labels?.get(key).map(String::as_str)
    }

    fn stored_namespace(&self) -> &'s str {
        self.service.metadata.namespace.as_deref().unwrap_or("default")
    }

    fn warn(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.issues.push(Issue::warning(
            Some(self.key.clone()),
            Some(self.stored.origin.clone()),
            field,
            message,
        ));
    }
}

// ---------------------------------------------------------------------------------------------
// Who holds which address

#[derive(Debug, Clone, Default)]
struct Holder {
    services: Vec<usize>,
    sharing: Option<String>,
    ports: BTreeSet<(i32, String)>,
    backend: Option<String>,
}

#[derive(Debug, Default)]
struct Book {
    holders: BTreeMap<IpAddr, Holder>,
}

impl Book {
    fn can_take(&self, ip: IpAddr, claimant: &Claimant<'_>) -> bool {
        self.refusal(ip, claimant).is_none()
    }

    /// The holder that keeps `claimant` from `ip`, if any.
    fn refusal(&self, ip: IpAddr, claimant: &Claimant<'_>) -> Option<&Holder> {
        let holder = self.holders.get(&ip)?;
        (!compatible(holder, claimant)).then_some(holder)
    }

    /// Why `claimant` may not share `ip` (its holder exists and refuses).
    fn why_not(&self, ip: IpAddr, claimant: &Claimant<'_>) -> String {
        let Some(holder) = self.holders.get(&ip) else {
            return String::new();
        };
        match (&holder.sharing, &claimant.sharing) {
            (None, _) | (_, None) => "and both need the same allow-shared-ip key to share it".to_string(),
            (Some(a), Some(b)) if a != b => format!("whose allow-shared-ip key is {a:?}, not {b:?}"),
            _ if !holder.ports.is_disjoint(&claimant.ports) => {
                let common: Vec<String> = holder
                    .ports
                    .intersection(&claimant.ports)
                    .map(|(port, protocol)| format!("{port}/{protocol}"))
                    .collect();
                format!("and both use port(s) {}", common.join(", "))
            }
            _ => "and externalTrafficPolicy Local Services share only with the same selector".to_string(),
        }
    }

    fn take(&mut self, ip: IpAddr, index: usize, claimant: &Claimant<'_>) {
        let holder = self.holders.entry(ip).or_insert_with(|| Holder {
            services: Vec::new(),
            sharing: claimant.sharing.clone(),
            ports: BTreeSet::new(),
            backend: claimant.backend.clone(),
        });
        holder.services.push(index);
        holder.ports.extend(claimant.ports.iter().cloned());
    }

    /// Held addresses of `family` that `claimant` may share, lowest first.
    fn shareable<'b>(&'b self, family: Family, claimant: &'b Claimant<'_>) -> impl Iterator<Item = IpAddr> + 'b {
        self.holders
            .iter()
            .filter(move |(ip, holder)| Family::of(**ip) == family && compatible(holder, claimant))
            .map(|(ip, _)| *ip)
    }
}

/// MetalLB's rule: the same sharing key, no common port and protocol, and with
/// `externalTrafficPolicy: Local` the same selector (both Cluster, or both Local alike).
fn compatible(holder: &Holder, claimant: &Claimant<'_>) -> bool {
    holder.sharing.is_some()
        && holder.sharing == claimant.sharing
        && holder.ports.is_disjoint(&claimant.ports)
        && holder.backend == claimant.backend
}

#[cfg(test)]
mod tests;
