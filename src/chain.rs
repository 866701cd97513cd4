//! `cairn chain`: the tamper-evident trail's signing key (`keygen`), its heads (`head`, to
//! publish or keep as witnesses) and the adoption of files written before it (`adopt`); and
//! the `--chain-signing-key` setting of the writers (collector and compactor).

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use cairn_schema::tenant::Tenant;
use cairn_store::chain::{self, Chain, Head};
use clap::{Args, Subcommand};
use object_store::{ObjectStore, ObjectStoreExt};

use crate::cli::CommonArgs;
use crate::supervise::BoxError;

/// How the writers sign the chain of committed files.
#[derive(Debug, Clone, Args)]
pub struct ChainConfig {
    /// Ed25519 private key (PKCS#8 PEM, from `cairn chain keygen`) that signs each tenant's
    /// chain of committed files; without it the chain is kept unsigned (hash-linked only).
    #[arg(long, env = "CAIRN_CHAIN_SIGNING_KEY")]
    pub chain_signing_key: Option<PathBuf>,
}

impl ChainConfig {
    /// The chain writer of `store`, signing when a key is configured.
    pub fn open(&self, store: &Arc<dyn ObjectStore>) -> Result<Chain, BoxError> {
        let key = self
            .chain_signing_key
            .as_deref()
            .map(chain::load_signing_key)
            .transpose()?;
        match &key {
            Some(k) => tracing::info!(key_id = %k.id, "chain entries and heads are signed"),
            None => tracing::info!("chain kept unsigned: no --chain-signing-key"),
        }
        Ok(Chain::new(Arc::clone(store), key))
    }
}

fn parse_tenant(text: &str) -> Result<Tenant, String> {
    Tenant::new(text).map_err(|e| e.to_string())
}

#[derive(Debug, Clone, Args)]
pub struct ChainArgs {
    #[command(subcommand)]
    pub command: ChainCommand,
}

#[derive(Debug, Clone, Subcommand)]
pub enum ChainCommand {
    /// Write a new Ed25519 signing key (PKCS#8 PEM, mode 0600) and print its public key.
    Keygen {
        /// The private key file to create (never overwritten).
        #[arg(long, env = "CAIRN_CHAIN_KEY_OUT")]
        out: PathBuf,
    },
    /// Print each tenant's head as one JSON line, to publish or keep as a witness.
    Head {
        #[command(flatten)]
        common: CommonArgs,
        /// Tenants whose heads to print (every tenant with a chain when none is given).
        #[arg(long = "tenant", env = "CAIRN_CHAIN_TENANTS", value_delimiter = ',', value_parser = parse_tenant)]
        tenants: Vec<Tenant>,
    },
    /// Record the files present but not in the chain (a store written before it) as one
    /// `adopt` entry per tenant.
    Adopt {
        #[command(flatten)]
        common: CommonArgs,
        /// Tenants to adopt (every tenant with data when none is given).
        #[arg(long = "tenant", env = "CAIRN_CHAIN_TENANTS", value_delimiter = ',', value_parser = parse_tenant)]
        tenants: Vec<Tenant>,
        #[command(flatten)]
        chain: ChainConfig,
        /// Files read at once.
        #[arg(long, env = "CAIRN_CHAIN_PARALLEL", default_value = "8", value_parser = cairn_config::parse::positive)]
        parallel: usize,
    },
}

pub async fn run(args: ChainArgs) -> Result<(), BoxError> {
    match args.command {
        ChainCommand::Keygen { out } => keygen(&out),
        ChainCommand::Head { common, tenants } => {
            let _tracing = cairn_telemetry::tracing_setup::init(&common.log, None)?;
            let store = cairn_store::open(&common.store)?;
            let tenants = or_all(&store, tenants).await?;
            let mut out = std::io::stdout().lock();
            for tenant in tenants {
                if let Some(head) = head(&store, &tenant).await? {
                    writeln!(out, "{}", serde_json::to_string(&head)?)?;
                }
            }
            Ok(())
        }
        ChainCommand::Adopt {
            common,
            tenants,
            chain,
            parallel,
        } => {
            let _tracing = cairn_telemetry::tracing_setup::init(&common.log, None)?;
            let store = cairn_store::open(&common.store)?;
            let writer = chain.open(&store)?.with_writer("adopt");
            for tenant in or_all(&store, tenants).await? {
                let started = std::time::Instant::now();
                let (seq, files, bytes) = chain::adopt(&store, &writer, &tenant, parallel).await?;
                match seq {
                    Some(seq) => println!(
                        "tenant {tenant}: adopted {files} files ({bytes} bytes) as entry {seq} in {:.1?}",
                        started.elapsed()
                    ),
                    None => println!("tenant {tenant}: every file is already in the chain"),
                }
            }
            Ok(())
        }
    }
}

async fn or_all(
    store: &Arc<dyn ObjectStore>,
    tenants: Vec<Tenant>,
) -> Result<Vec<Tenant>, BoxError> {
    Ok(if tenants.is_empty() {
        chain::tenants(store).await?
    } else {
        tenants
    })
}

/// The stored head of `tenant`'s chain.
pub async fn head(store: &Arc<dyn ObjectStore>, tenant: &Tenant) -> Result<Option<Head>, BoxError> {
    match store.get(&chain::head_path(tenant)).await {
        Ok(got) => Ok(Some(serde_json::from_slice(&got.bytes().await?)?)),
        Err(object_store::Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Creates the key file, readable by its owner only, and prints the public key.
fn keygen(out: &std::path::Path) -> Result<(), BoxError> {
    use std::os::unix::fs::OpenOptionsExt;
    let (pem, signer) = chain::generate_key()?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(out)
        .map_err(|e| format!("{}: {e}", out.display()))?;
    file.write_all(pem.as_bytes())?;
    file.sync_all()?;
    println!("{}", hex_public(&signer));
    eprintln!(
        "wrote the private key to {} (key id {}); give it to the writers with --chain-signing-key, and the public key above to `cairn verify --public-key`",
        out.display(),
        signer.id
    );
    Ok(())
}

fn hex_public(signer: &chain::Signer) -> String {
    signer
        .public_key()
        .as_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
