//! `cairn verify`: checks a tenant's files against its tamper-evident chain and prints one line
//! per altered, missing, inserted or re-ordered file and per broken link (exit status 1), or a
//! summary line when everything holds.

use std::path::PathBuf;

use cairn_schema::tenant::Tenant;
use cairn_store::chain::{self, Head, Start, VerifyOptions};
use clap::Args;

use crate::cli::CommonArgs;
use crate::supervise::BoxError;

#[derive(Debug, Clone, Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Tenant whose files to verify.
    #[arg(long, env = "CAIRN_TENANT", default_value = "default")]
    pub tenant: String,
    /// The chain's public key: 64 hex digits (as `cairn chain keygen` prints), a PEM public key,
    /// or a file holding either. Without it, signatures are not checked.
    #[arg(long, env = "CAIRN_CHAIN_PUBLIC_KEY")]
    pub public_key: Option<String>,
    /// Check from this entry on: a sequence number or an RFC 3339 time (earlier entries still
    /// say which files are live).
    #[arg(long, env = "CAIRN_VERIFY_FROM")]
    pub from: Option<Start>,
    /// A head printed earlier by `cairn chain head` (a file): the chain must still hold it.
    #[arg(long, env = "CAIRN_VERIFY_WITNESS")]
    pub witness: Option<PathBuf>,
    /// Print the findings as one JSON object.
    #[arg(long, env = "CAIRN_VERIFY_JSON")]
    pub json: bool,
    /// Files read at once.
    #[arg(long, env = "CAIRN_VERIFY_PARALLEL", default_value = "8", value_parser = cairn_config::parse::positive)]
    pub parallel: usize,
}

pub async fn run(args: VerifyArgs) -> Result<(), BoxError> {
    let _tracing = cairn_telemetry::tracing_setup::init(&args.common.log, None)?;
    let tenant = Tenant::new(&args.tenant)?;
    let witness = match &args.witness {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("witness {}: {e}", path.display()))?;
            let head: Head = serde_json::from_str(text.trim())
                .map_err(|e| format!("witness {}: not a chain head: {e}", path.display()))?;
            Some(head)
        }
        None => None,
    };
    let options = VerifyOptions {
        public_key: args
            .public_key
            .as_deref()
            .map(chain::parse_public_key)
            .transpose()?,
        start: args.from.clone().unwrap_or_default(),
        witness,
        parallel: args.parallel,
    };
    let store = cairn_store::open(&args.common.store)?;
    let started = std::time::Instant::now();
    let report = chain::verify(&store, &tenant, &options).await?;
    let elapsed = started.elapsed();
    if args.json {
        let problems: Vec<_> = report
            .problems
            .iter()
            .map(|p| serde_json::json!({"kind": p.kind(), "line": p.to_string()}))
            .collect();
        println!(
            "{}",
            serde_json::json!({
                "tenant": tenant.as_str(),
                "entries": report.entries,
                "first_checked": report.first_checked,
                "files": report.files,
                "bytes": report.bytes,
                "seconds": elapsed.as_secs_f64(),
                "signatures_checked": report.signatures_checked,
                "head": report.head,
                "problems": problems,
            })
        );
    } else {
        for p in &report.problems {
            println!("{p}");
        }
    }
    if !report.problems.is_empty() {
        return Err(format!(
            "tenant {tenant}: {} problem(s) found in the chain and its files",
            report.problems.len()
        )
        .into());
    }
    if !args.json {
        let signed = match (&report.head, report.signatures_checked) {
            (_, false) => "signatures not checked (no --public-key)".to_owned(),
            (Some(h), true) => format!(
                "head at entry {} signed by key {}",
                h.seq,
                h.key_id.as_deref().unwrap_or("-")
            ),
            (None, true) => "no head".to_owned(),
        };
        println!(
            "verified tenant {tenant}: entries {}-{} of {}, {} files ({} bytes) match, {signed}; {:.1?}",
            report.first_checked.min(report.entries.max(1)),
            report.entries,
            report.entries,
            report.files,
            report.bytes,
            elapsed
        );
    }
    Ok(())
}
