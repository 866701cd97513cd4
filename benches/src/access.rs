//! How the load generator gets into a server that asks for credentials: the access token sent
//! as `authorization: Bearer` with every export and count, and the certificate authority a
//! TLS server's certificate must chain to (`https://` endpoints). The OTLP/gRPC clients speak
//! TLS through a tokio-rustls connector of their own (ring provider, ALPN `h2`); the HTTP
//! clients through reqwest's rustls.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tonic::transport::{Channel, Endpoint};

use crate::{Error, Result};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Credentials and trust, shared by every client of a load.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Access {
    /// Access token sent as `authorization: Bearer <token>` on every export.
    #[arg(long, env = "CAIRN_BENCH_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Access token for counting spans through the query API (a `read` or `admin` token);
    /// `--token` when not given.
    #[arg(long, env = "CAIRN_BENCH_QUERY_TOKEN", hide_env_values = true)]
    pub query_token: Option<String>,
    /// PEM file of the certificate authorities to trust for `https://` endpoints.
    #[arg(long, env = "CAIRN_BENCH_CA")]
    pub ca: Option<PathBuf>,
}

impl Access {
    /// The `authorization` header value for exports.
    pub fn export_bearer(&self) -> Option<String> {
        self.token.as_ref().map(|t| format!("Bearer {t}"))
    }

    /// The `authorization` header value for counting.
    pub fn query_bearer(&self) -> Option<String> {
        self.query_token
            .as_ref()
            .or(self.token.as_ref())
            .map(|t| format!("Bearer {t}"))
    }

    /// The trusted authorities, when `--ca` is given.
    pub fn trust(&self) -> Result<Option<Trust>> {
        self.ca.as_deref().map(Trust::load).transpose()
    }
}

/// The certificate authorities a server's certificate must chain to.
#[derive(Clone)]
pub struct Trust {
    pem: Vec<u8>,
    config: Arc<rustls::ClientConfig>,
}

impl Trust {
    /// Reads the PEM certificates in `path`.
    pub fn load(path: &Path) -> Result<Trust> {
        let usage = |e: &dyn std::fmt::Display| Error::Usage(format!("{}: {e}", path.display()));
        let pem = std::fs::read(path).map_err(|e| usage(&e))?;
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(&pem) {
            roots
                .add(cert.map_err(|e| usage(&e))?)
                .map_err(|e| usage(&e))?;
        }
        if roots.is_empty() {
            return Err(usage(&"no certificate"));
        }
        let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Internal(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(Trust {
            pem,
            config: Arc::new(config),
        })
    }

    /// `builder` trusting these authorities (and no others).
    pub fn http(&self, builder: reqwest::ClientBuilder) -> Result<reqwest::ClientBuilder> {
        let certs = reqwest::Certificate::from_pem_bundle(&self.pem)
            .map_err(|e| Error::Usage(format!("CA file: {e}")))?;
        Ok(certs.into_iter().fold(
            builder.use_rustls_tls().tls_built_in_root_certs(false),
            reqwest::ClientBuilder::add_root_certificate,
        ))
    }

    /// Connects a gRPC channel to `endpoint` over TLS, checking the server's name against
    /// the endpoint's host.
    pub async fn grpc(&self, endpoint: &Endpoint) -> Result<Channel> {
        let connector = tokio_rustls::TlsConnector::from(self.config.clone());
        let connect = tower::service_fn(move |uri: http::Uri| {
            let connector = connector.clone();
            async move {
                let host = uri.host().ok_or("endpoint without a host")?;
                let host = host
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_owned();
                let port = uri.port_u16().unwrap_or(443);
                let tcp = tokio::net::TcpStream::connect((host.as_str(), port)).await?;
                tcp.set_nodelay(true)?;
                let tls = connector.connect(ServerName::try_from(host)?, tcp).await?;
                Ok::<_, BoxError>(TokioIo::new(tls))
            }
        });
        endpoint
            .connect_with_connector(connect)
            .await
            .map_err(|e| Error::Server(format!("connecting to {}: {e:?}", endpoint.uri())))
    }
}
