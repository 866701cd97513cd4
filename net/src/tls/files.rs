//! Reading the TLS files: the certificate chain and its private key (which must match), and the
//! CA bundle client certificates are checked against. Every error names the file.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::danger::ClientCertVerifier;
use rustls::server::WebPkiClientVerifier;
use rustls::sign::CertifiedKey;
use rustls::RootCertStore;

/// The paths of the TLS files.
#[derive(Debug, Clone)]
pub(super) struct Files {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub client_ca: Option<PathBuf>,
}

/// The files' bytes, compared to notice a change.
pub(super) type Contents = Vec<Vec<u8>>;

/// What the files hold, ready to serve.
pub(super) struct Loaded {
    pub key: Arc<CertifiedKey>,
    pub verifier: Option<Arc<dyn ClientCertVerifier>>,
    pub contents: Contents,
}

/// Why the files cannot be used; the message names the file, and which flag named it once
/// [`FileError::with_flags`] knows the flags.
#[derive(Debug)]
pub(super) struct FileError {
    which: Which,
    path: PathBuf,
    reason: String,
}

#[derive(Debug, Clone, Copy)]
enum Which {
    Cert,
    Key,
    ClientCa,
}

impl FileError {
    fn new(which: Which, path: &Path, reason: impl std::fmt::Display) -> Self {
        Self {
            which,
            path: path.to_path_buf(),
            reason: reason.to_string(),
        }
    }

    /// The message, naming the flag of the file (`cert_flag`, `key_flag` or `--tls-client-ca`).
    pub fn with_flags(&self, cert_flag: &str, key_flag: &str) -> String {
        let flag = match self.which {
            Which::Cert => cert_flag,
            Which::Key => key_flag,
            Which::ClientCa => "--tls-client-ca",
        };
        format!("{flag} {}: {}", self.path.display(), self.reason)
    }
}

impl std::fmt::Display for FileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.reason)
    }
}

impl Files {
    /// The files' bytes as they are now.
    pub fn read(&self) -> Result<Contents, FileError> {
        let read =
            |which, path: &Path| std::fs::read(path).map_err(|e| FileError::new(which, path, e));
        let mut contents = vec![read(Which::Cert, &self.cert)?, read(Which::Key, &self.key)?];
        if let Some(ca) = &self.client_ca {
            contents.push(read(Which::ClientCa, ca)?);
        }
        Ok(contents)
    }

    /// Reads and checks the files.
    pub fn load(&self, provider: &Arc<CryptoProvider>) -> Result<Loaded, FileError> {
        let contents = self.read()?;
        self.parse(contents, provider)
    }

    /// Checks `contents` (as [`Self::read`] returns them): a certificate chain, the private key
    /// of its first certificate, and a CA bundle of at least one certificate.
    pub fn parse(
        &self,
        contents: Contents,
        provider: &Arc<CryptoProvider>,
    ) -> Result<Loaded, FileError> {
        let chain =
            certificates(&contents[0]).map_err(|e| FileError::new(Which::Cert, &self.cert, e))?;
        let key = PrivateKeyDer::from_pem_slice(&contents[1]).map_err(|e| {
            FileError::new(Which::Key, &self.key, format!("no PEM private key ({e})"))
        })?;
        let key = CertifiedKey::from_der(chain, key, provider).map_err(|e| {
            FileError::new(
                Which::Key,
                &self.key,
                format!(
                    "not the key of the certificate in {}: {e}",
                    self.cert.display()
                ),
            )
        })?;
        let verifier = match &self.client_ca {
            Some(path) => {
                let bad = |e| FileError::new(Which::ClientCa, path, e);
                let mut roots = RootCertStore::empty();
                for cert in certificates(&contents[2]).map_err(bad)? {
                    roots.add(cert).map_err(|e| bad(e.to_string()))?;
                }
                let verifier = WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots),
                    Arc::clone(provider),
                )
                .build()
                .map_err(|e| bad(e.to_string()))?;
                Some(verifier)
            }
            None => None,
        };
        Ok(Loaded {
            key: Arc::new(key),
            verifier,
            contents,
        })
    }
}

/// The PEM certificates of `pem`, at least one.
fn certificates(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("not PEM certificates ({e})"))?;
    if certs.is_empty() {
        return Err("no PEM certificate in it".into());
    }
    Ok(certs)
}
