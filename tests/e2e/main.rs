//! End-to-end tests: the real `cairn` binary, driven by real OTLP clients over loopback.

mod agent_run;
mod harness;

mod bad_input;
mod bench_tools;
mod cluster;
mod compaction;
mod config;
mod crash;
mod disk_full;
mod fixtures;
mod frameworks;
mod golden;
mod grafana;
mod hostile_api;
mod hostile_ingest;
mod hostile_query;
mod inheritance;
mod k8s_enrichment;
mod lease;
mod lineage;
mod otlp_rust;
mod overload;
mod pg_extended;
mod pg_wire;
mod python_sdk;
mod run_summary;
mod s3;
mod sql_api;
mod store_faults;
mod telemetry;
mod tempo_api;
mod trace_index;
mod traceql;
mod ui_api;
mod ui_assets;
