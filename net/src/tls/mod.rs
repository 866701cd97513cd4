//! TLS on every listener: one certificate and key (PEM files) for all of them, reloaded when the
//! files change, and optionally client certificates checked against a CA bundle (mTLS) on the
//! OTLP listeners.
//!
//! Data flow: [`ServerTls::load`] reads the files once at startup (a missing, unreadable or
//! mismatched file stops the process, named in the message) and builds one rustls
//! `ServerConfig` per kind of [`Listener`] — the protocols it offers by ALPN and whether it asks
//! for a client certificate. Every config takes its certificate from one shared
//! [`reload::CertSlot`] (a `ResolvesServerCert`) and its client verifier from one shared
//! [`reload::VerifierSlot`], which a background task ([`reload::watch`]) refreshes whenever the
//! files' contents change (checked every `--tls-reload-interval`, and on SIGHUP). A reload that
//! fails keeps the previous certificate and logs why. A listener takes an [`Acceptor`] and does
//! each connection's handshake in that connection's own task, within the listener's head
//! timeout; a failed handshake (plaintext to a TLS port, an unknown client certificate) is
//! logged at debug, counted in `cairn_tls_handshake_failures_total` and closes that connection
//! only.

mod files;
mod reload;

use std::path::PathBuf;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use cairn_telemetry::{Counter, EncodeLabelSet, Family, OutcomeLabel};
use rustls::ServerConfig;
use tokio_rustls::server::TlsStream;

use crate::{Error, Limited};

/// Where the certificate, its key and the client CA come from (every serving role).
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct TlsConfig {
    /// PEM certificate chain: every listener (OTLP gRPC and HTTP, query API and UI, Postgres)
    /// then speaks TLS only. With `--tls-key`.
    #[arg(long, env = "CAIRN_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `--tls-cert`.
    #[arg(long, env = "CAIRN_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// PEM CA bundle: the OTLP listeners then require a client certificate it signed (mTLS).
    #[arg(long, env = "CAIRN_TLS_CLIENT_CA")]
    pub tls_client_ca: Option<PathBuf>,
    /// How often the TLS files are checked for changes (they are also re-read on SIGHUP).
    #[arg(long, env = "CAIRN_TLS_RELOAD_INTERVAL", default_value = "10s", value_parser = cairn_config::parse::span)]
    pub tls_reload_interval: Duration,
}

impl Default for TlsConfig {
    fn default() -> Self {
        cairn_config::defaults()
    }
}

/// The kinds of listener, each with its own protocols and client-certificate policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Listener {
    /// OTLP over gRPC: HTTP/2 only; client certificates checked under mTLS.
    OtlpGrpc,
    /// OTLP over HTTP: HTTP/2 or HTTP/1.1; client certificates checked under mTLS.
    OtlpHttp,
    /// The query API, UI and `/metrics`: HTTP/2 or HTTP/1.1, no client certificate (browsers,
    /// Grafana and scrapers authenticate with tokens, if at all).
    Http,
    /// The Postgres wire: its ALPN name (for direct TLS), no client certificate.
    Postgres,
}

impl Listener {
    const ALL: [Self; 4] = [Self::OtlpGrpc, Self::OtlpHttp, Self::Http, Self::Postgres];

    pub fn name(self) -> &'static str {
        match self {
            Self::OtlpGrpc => "otlp_grpc",
            Self::OtlpHttp => "otlp_http",
            Self::Http => "http",
            Self::Postgres => "pg",
        }
    }

    fn alpn(self) -> Vec<Vec<u8>> {
        match self {
            Self::OtlpGrpc => vec![b"h2".to_vec()],
            Self::OtlpHttp | Self::Http => vec![b"h2".to_vec(), b"http/1.1".to_vec()],
            Self::Postgres => vec![b"postgresql".to_vec()],
        }
    }

    fn checks_clients(self) -> bool {
        matches!(self, Self::OtlpGrpc | Self::OtlpHttp)
    }
}

/// The loaded TLS settings: cheap to clone, one reloading certificate behind every listener.
#[derive(Clone)]
pub struct ServerTls {
    configs: Arc<[(Listener, Arc<ServerConfig>); 4]>,
    mutual: bool,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls")
            .field("mutual", &self.mutual)
            .finish_non_exhaustive()
    }
}

impl ServerTls {
    /// Reads the files of `config` (none: `None`, plaintext) and starts watching them for
    /// changes. Must run inside the Tokio runtime.
    pub fn load(config: &TlsConfig) -> Result<Option<Self>, Error> {
        let files = match (&config.tls_cert, &config.tls_key) {
            (Some(cert), Some(key)) => files::Files {
                cert: cert.clone(),
                key: key.clone(),
                client_ca: config.tls_client_ca.clone(),
            },
            (None, None) if config.tls_client_ca.is_none() => return Ok(None),
            (None, None) => {
                return Err(Error::Config(
                    "--tls-client-ca needs --tls-cert and --tls-key".into(),
                ))
            }
            _ => {
                return Err(Error::Config(
                    "--tls-cert and --tls-key are given together".into(),
                ))
            }
        };
        Self::load_files(files, config.tls_reload_interval, "--tls-cert", "--tls-key").map(Some)
    }

    /// TLS from a certificate and key of their own, without client certificates (the
    /// Postgres listener's `--pg-tls-cert`), named by `flags` in errors.
    pub fn load_pair(
        cert: PathBuf,
        key: PathBuf,
        interval: Duration,
        flags: (&str, &str),
    ) -> Result<Self, Error> {
        let files = files::Files {
            cert,
            key,
            client_ca: None,
        };
        Self::load_files(files, interval, flags.0, flags.1)
    }

    fn load_files(
        files: files::Files,
        interval: Duration,
        cert_flag: &str,
        key_flag: &str,
    ) -> Result<Self, Error> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let loaded = files
            .load(&provider)
            .map_err(|e| Error::Config(e.with_flags(cert_flag, key_flag)))?;
        let mutual = loaded.verifier.is_some();
        let slots = reload::Slots::new(loaded);
        let configs = Listener::ALL.map(|listener| {
            let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
                .with_safe_default_protocol_versions()
                .expect("ring supports the default protocol versions");
            let builder = match &slots.verifier {
                Some(verifier) if listener.checks_clients() => {
                    builder.with_client_cert_verifier(Arc::clone(verifier) as _)
                }
                _ => builder.with_no_client_auth(),
            };
            let mut config = builder.with_cert_resolver(Arc::clone(&slots.cert) as _);
            config.alpn_protocols = listener.alpn();
            (listener, Arc::new(config))
        });
        tracing::info!(
            cert = %files.cert.display(),
            key = %files.key.display(),
            client_ca = files.client_ca.as_ref().map(|p| p.display().to_string()),
            reload_interval = ?interval,
            "TLS certificate loaded"
        );
        reload::watch(files, provider, slots, interval);
        Ok(Self {
            configs: Arc::new(configs),
            mutual,
        })
    }

    /// Whether the OTLP listeners require client certificates.
    pub fn mutual(&self) -> bool {
        self.mutual
    }

    /// How `listener` is secured, for the startup log: `tls`, or `mtls` when it requires
    /// client certificates.
    pub fn describe(&self, listener: Listener) -> &'static str {
        if self.mutual && listener.checks_clients() {
            "mtls"
        } else {
            "tls"
        }
    }

    /// The handshakes of one listener, each within `timeout`.
    pub fn acceptor(&self, listener: Listener, timeout: Duration) -> Acceptor {
        let config = self
            .configs
            .iter()
            .find(|(l, _)| *l == listener)
            .map(|(_, c)| Arc::clone(c))
            .expect("a config per listener");
        Acceptor {
            config,
            listener,
            timeout,
        }
    }
}

/// `listener` of `tls`, or plaintext: how a listener is described in the startup log.
pub fn describe(tls: Option<&ServerTls>, listener: Listener) -> &'static str {
    tls.map_or("off", |t| t.describe(listener))
}

/// The TLS handshakes of one listener.
#[derive(Clone)]
pub struct Acceptor {
    config: Arc<ServerConfig>,
    listener: Listener,
    timeout: Duration,
}

impl Acceptor {
    /// The acceptor as tokio-rustls has it, for servers that run the handshake themselves
    /// (pgwire, after the Postgres `SSLRequest`).
    pub fn tokio(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(Arc::clone(&self.config))
    }

    /// The handshake of `conn`; `None` (logged and counted) if it fails or takes longer than
    /// the timeout.
    pub(crate) async fn handshake(&self, conn: Limited) -> Option<TlsStream<Limited>> {
        let peer = conn.stream.peer_addr().ok();
        let failed = |reason: &dyn std::fmt::Display| {
            tracing::debug!(listener = self.listener.name(), peer = ?peer, error = %reason, "TLS handshake failed");
            metrics()
                .handshake_failures
                .get_or_create(&ListenerLabel {
                    listener: self.listener.name(),
                })
                .inc();
        };
        match tokio::time::timeout(self.timeout, self.tokio().accept(conn)).await {
            Ok(Ok(stream)) => Some(stream),
            Ok(Err(e)) => {
                failed(&e);
                None
            }
            Err(_) => {
                failed(&format_args!("no handshake within {:?}", self.timeout));
                None
            }
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ListenerLabel {
    listener: &'static str,
}

struct Metrics {
    handshake_failures: Family<ListenerLabel, Counter>,
    reloads: Family<OutcomeLabel, Counter>,
}

fn metrics() -> &'static Metrics {
    static METRICS: LazyLock<Metrics> = LazyLock::new(|| {
        let m = Metrics {
            handshake_failures: Family::default(),
            reloads: Family::default(),
        };
        cairn_telemetry::register(
            "tls_handshake_failures",
            "TLS handshakes that failed or timed out, per listener",
            m.handshake_failures.clone(),
        );
        cairn_telemetry::register(
            "tls_reloads",
            "Changes of the TLS files seen: applied (ok) or refused, keeping the previous ones (failed)",
            m.reloads.clone(),
        );
        m
    });
    &METRICS
}
