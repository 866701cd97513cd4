//! How long each tenant's data is kept, and which hour partitions that lets go.
//!
//! A span partition goes once its whole hour is older than the tenant's retention. A payload
//! partition stays [`PAYLOAD_REUSE_HOURS`] longer, since spans up to that much later may refer
//! to it. Within a partition, data files go before the manifests that hide superseded ones, so a
//! reader never sees a span twice while a partition is deleted.

use std::time::Duration;

use cairn_schema::layout::{hour_of, Dataset, PAYLOAD_REUSE_HOURS};
use cairn_schema::tenant::Tenant;

/// Retention by tenant: a default (none keeps data for ever) and overrides.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Retention {
    /// How long data is kept, e.g. 30d; unset keeps it for ever.
    #[arg(long, env = "CAIRN_RETENTION", value_parser = cairn_config::parse::span)]
    pub retention: Option<Duration>,
    /// Per-tenant retention overriding --retention, e.g. `acme=7d,globex=90d`.
    #[arg(long, env = "CAIRN_TENANT_RETENTION", value_delimiter = ',', value_parser = Retention::parse_override)]
    pub tenant_retention: Vec<(Tenant, Duration)>,
}

impl Retention {
    /// The retention of `tenant`: its last override, else the default.
    pub fn of(&self, tenant: &Tenant) -> Option<Duration> {
        (self.tenant_retention.iter().rev())
            .find(|(t, _)| t == tenant)
            .map(|(_, age)| *age)
            .or(self.retention)
    }

    /// The first hour of `dataset` kept for `tenant` at `now_nanos`; earlier partitions go.
    pub fn first_kept_hour(
        &self,
        tenant: &Tenant,
        dataset: Dataset,
        now_nanos: i64,
    ) -> Option<i64> {
        let keep = i64::try_from(self.of(tenant)?.as_nanos()).unwrap_or(i64::MAX);
        // The hour holding the cutoff is kept whole.
        let first = hour_of(now_nanos.saturating_sub(keep));
        Some(match dataset {
            // Index entries of an hour go with (in fact just before) its spans.
            Dataset::Spans | Dataset::TraceIndex => first,
            Dataset::Payloads => first - PAYLOAD_REUSE_HOURS,
        })
    }

    /// Parses `tenant=duration` overrides such as `acme=7d`.
    pub fn parse_override(text: &str) -> Result<(Tenant, Duration), String> {
        let (tenant, age) = text
            .split_once('=')
            .ok_or_else(|| format!("{text:?} is not tenant=duration"))?;
        let tenant = Tenant::new(tenant.trim()).map_err(|e| e.to_string())?;
        let age = cairn_config::parse::span(age)?;
        Ok((tenant, age))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_schema::layout::HOUR_NANOS;

    #[test]
    fn payloads_outlive_the_spans_that_refer_to_them() {
        let acme = Tenant::new("acme").unwrap();
        let other = Tenant::new("other").unwrap();
        let mut r = Retention::default();
        assert_eq!(r.first_kept_hour(&acme, Dataset::Spans, 0), None);
        r.retention = Some(Duration::from_secs(48 * 3600));
        r.tenant_retention
            .push(Retention::parse_override("acme=1d").unwrap());
        let now = 1000 * HOUR_NANOS + 5;
        assert_eq!(r.first_kept_hour(&acme, Dataset::Spans, now), Some(976));
        assert_eq!(r.first_kept_hour(&acme, Dataset::Payloads, now), Some(952));
        assert_eq!(r.first_kept_hour(&other, Dataset::Spans, now), Some(952));
        assert!(Retention::parse_override("acme").is_err());
        assert!(Retention::parse_override("acme=0d").is_err());
        assert!(Retention::parse_override("a/b=1d").is_err());
    }
}
