//! Scans past one machine, on Apache Ballista.
//!
//! Data flow: a querier plans a statement for its tenant as always (the guard first, then
//! DataFusion's logical plan over the tenant's tables and views) and [`route`] decides where it
//! runs. A distributed statement's optimised logical plan goes to the Ballista scheduler
//! ([`scheduler`], `cairn scheduler`), Cairn's tables named in it by [`codec`] with their tenant
//! and hours; the scheduler plans it against the store (listing the tenant's partitions, the
//! trace index), cuts the physical plan into stages at its exchanges and hands their tasks to
//! executors ([`executor`], `cairn executor`), which read the Parquet files the plan names
//! directly from the store, shuffle between stages through their work directories, and serve the
//! last stage's partitions to the querier over Arrow Flight. [`functions`] are the functions every
//! process registers, so a plan means the same wherever it runs. A statement the querier stops
//! reading before its end has its job cancelled ([`cancel`]): the scheduler stops its tasks on
//! the executors ([`tasks`]) and counts it ([`jobs`]).

pub mod cancel;
pub mod client;
pub mod codec;
pub mod executor;
pub mod functions;
pub mod jobs;
pub mod route;
pub mod scheduler;
pub mod tasks;

/// `host:port` of a scheduler given as `host:port` or `df://host:port`.
pub fn scheduler_endpoint(text: &str) -> Result<(String, u16), String> {
    let rest = text.trim().trim_start_matches("df://");
    let (host, port) = rest
        .rsplit_once(':')
        .ok_or_else(|| format!("{text:?} is not host:port, nor df://host:port"))?;
    let port = port
        .trim_end_matches('/')
        .parse()
        .map_err(|_| format!("{text:?} has no port number"))?;
    if host.is_empty() {
        return Err(format!("{text:?} has no host"));
    }
    Ok((host.to_owned(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scheduler_endpoints() {
        assert_eq!(
            scheduler_endpoint("df://ballista:50050").unwrap(),
            ("ballista".into(), 50050)
        );
        assert_eq!(
            scheduler_endpoint("127.0.0.1:7").unwrap(),
            ("127.0.0.1".into(), 7)
        );
        assert!(scheduler_endpoint("ballista").is_err());
        assert!(scheduler_endpoint(":80").is_err());
        assert!(scheduler_endpoint("df://x:port").is_err());
    }
}
