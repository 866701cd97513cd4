//! Per-tenant limits: the defaults (flags) every tenant gets, overridden per tenant by a TOML
//! file (`--tenant-limits`) that the collector and the query API re-read on SIGHUP:
//!
//! ```toml
//! [tenant.acme]
//! spans_per_second = 5000       # ingest rate, spans
//! bytes_per_second = "4MiB"     # ingest rate, request bytes
//! storage_quota = "50GiB"       # bytes stored (spans and payloads)
//! max_concurrent_queries = 4    # queries running at once
//! ```
//!
//! A key left out keeps the default; `0` lifts the default for that tenant.

use std::collections::HashMap;
use std::path::Path;

/// The limits of one tenant; `None` is no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TenantLimits {
    pub spans_per_second: Option<u64>,
    pub bytes_per_second: Option<u64>,
    pub storage_quota: Option<u64>,
    pub max_concurrent_queries: Option<u64>,
}

/// One tenant's entry of the file: each key given, with `Some(0)` lifting the default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Override {
    spans_per_second: Option<u64>,
    bytes_per_second: Option<u64>,
    storage_quota: Option<u64>,
    max_concurrent_queries: Option<u64>,
}

/// The defaults and the per-tenant overrides.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LimitsTable {
    defaults: TenantLimits,
    tenants: HashMap<String, Override>,
}

fn pick(over: Option<u64>, default: Option<u64>) -> Option<u64> {
    match over {
        Some(0) => None,
        Some(n) => Some(n),
        None => default,
    }
}

impl LimitsTable {
    /// `defaults` for every tenant, and the overrides of the file at `path`, if any.
    pub fn load(defaults: TenantLimits, path: Option<&Path>) -> Result<Self, String> {
        let tenants = match path {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                parse(&text).map_err(|e| format!("{}: {e}", path.display()))?
            }
            None => HashMap::new(),
        };
        Ok(Self { defaults, tenants })
    }

    /// The limits of `tenant`.
    pub fn get(&self, tenant: &str) -> TenantLimits {
        let d = self.defaults;
        match self.tenants.get(tenant) {
            None => d,
            Some(o) => TenantLimits {
                spans_per_second: pick(o.spans_per_second, d.spans_per_second),
                bytes_per_second: pick(o.bytes_per_second, d.bytes_per_second),
                storage_quota: pick(o.storage_quota, d.storage_quota),
                max_concurrent_queries: pick(o.max_concurrent_queries, d.max_concurrent_queries),
            },
        }
    }

    /// Whether any tenant may have a storage quota.
    pub fn any_quota(&self) -> bool {
        self.defaults.storage_quota.is_some()
            || self
                .tenants
                .values()
                .any(|o| o.storage_quota.is_some_and(|q| q > 0))
    }

    /// Tenants named in the file.
    pub fn named(&self) -> impl Iterator<Item = &str> {
        self.tenants.keys().map(String::as_str)
    }
}

fn number(tenant: &str, key: &str, value: &toml::Value, sized: bool) -> Result<u64, String> {
    match value {
        toml::Value::Integer(n) if *n >= 0 => Ok(*n as u64),
        toml::Value::String(s) if sized => crate::parse::size(s)
            .map(|n| n as u64)
            .map_err(|e| format!("tenant {tenant:?}: {key}: {e}")),
        _ => Err(format!(
            "tenant {tenant:?}: {key} must be a whole number{}",
            if sized {
                " or a size such as \"4MiB\""
            } else {
                ""
            }
        )),
    }
}

/// Parses the `[tenant.<name>]` tables of a limits file.
fn parse(text: &str) -> Result<HashMap<String, Override>, String> {
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| e.to_string())?;
    let mut out = HashMap::new();
    for (key, value) in table {
        if key != "tenant" {
            return Err(format!(
                "unknown key {key:?}: limits go in [tenant.<name>] tables"
            ));
        }
        let toml::Value::Table(tenants) = value else {
            return Err("`tenant` must hold [tenant.<name>] tables".into());
        };
        for (name, entry) in tenants {
            let toml::Value::Table(entry) = entry else {
                return Err(format!("tenant {name:?} must be a table"));
            };
            let mut o = Override::default();
            for (k, v) in &entry {
                let slot = match k.as_str() {
                    "spans_per_second" => &mut o.spans_per_second,
                    "bytes_per_second" => &mut o.bytes_per_second,
                    "storage_quota" => &mut o.storage_quota,
                    "max_concurrent_queries" => &mut o.max_concurrent_queries,
                    other => {
                        return Err(format!(
                            "tenant {name:?}: unknown limit {other:?} (spans_per_second, \
                             bytes_per_second, storage_quota, max_concurrent_queries)"
                        ))
                    }
                };
                let sized = matches!(k.as_str(), "bytes_per_second" | "storage_quota");
                *slot = Some(number(&name, k, v, sized)?);
            }
            out.insert(name, o);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_defaults_per_tenant() {
        let defaults = TenantLimits {
            spans_per_second: Some(100),
            max_concurrent_queries: Some(2),
            ..Default::default()
        };
        let table = LimitsTable {
            defaults,
            tenants: parse(
                "[tenant.acme]\nspans_per_second = 0\nstorage_quota = \"1MiB\"\n\
                 [tenant.small]\nmax_concurrent_queries = 1\nbytes_per_second = 4096",
            )
            .unwrap(),
        };
        assert_eq!(table.get("other"), defaults);
        let acme = table.get("acme");
        assert_eq!(acme.spans_per_second, None);
        assert_eq!(acme.storage_quota, Some(1 << 20));
        assert_eq!(acme.max_concurrent_queries, Some(2));
        let small = table.get("small");
        assert_eq!(small.max_concurrent_queries, Some(1));
        assert_eq!(small.bytes_per_second, Some(4096));
        assert!(table.any_quota());
        for (bad, says) in [
            ("[tenant.a]\nspans = 1", "unknown limit"),
            ("quota = 1", "unknown key"),
            ("[tenant.a]\nspans_per_second = \"1k\"", "whole number"),
            ("[tenant.a]\nstorage_quota = \"lots\"", "size"),
        ] {
            let e = parse(bad).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }
}
