//! The fake Kubernetes API server on its own, for manual and script tests:
//!
//! ```text
//! cargo run -p cairn-k8s --features fake --example fake_apiserver -- \
//!     [--port 6443] [--seed DIR]... [--fixtures] [--kubeconfig FILE]
//! ```
//!
//! Serves until interrupted, seeded with the `*.json` objects of each `--seed` directory (and
//! the recorded fixtures with `--fixtures`); writes a kubeconfig naming it (for `kubectl`,
//! `cairn --kubeconfig`, or `KUBECONFIG`) and prints its URL.

use std::net::SocketAddr;
use std::path::PathBuf;

use cairn_k8s::fake::FakeApiServer;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (mut port, mut seeds, mut fixtures, mut kubeconfig) = (0u16, Vec::new(), false, None);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--port" => port = value()?.parse()?,
            "--seed" => seeds.push(PathBuf::from(value()?)),
            "--fixtures" => fixtures = true,
            "--kubeconfig" => kubeconfig = Some(PathBuf::from(value()?)),
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    let server = FakeApiServer::start_on(SocketAddr::from(([127, 0, 0, 1], port))).await?;
    if fixtures {
        server.seed_fixtures();
    }
    for dir in &seeds {
        server.seed_dir(dir)?;
    }
    if let Some(path) = &kubeconfig {
        server.write_kubeconfig(path)?;
    }
    println!("{}", server.url());
    tokio::signal::ctrl_c().await?;
    Ok(())
}
