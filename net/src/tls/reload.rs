//! The certificate and client verifier every TLS listener uses, swapped when the files change.
//!
//! [`CertSlot`] answers rustls' certificate lookups with the current certificate and
//! [`VerifierSlot`] checks client certificates with the current CA bundle; [`watch`] re-reads the
//! files every interval and on SIGHUP and swaps both when the files' bytes changed and still
//! make a usable pair. Connections already open keep the certificate they were made with.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};

use super::files::{Contents, Files, Loaded};
use super::{metrics, OutcomeLabel};

/// The current certificate and key.
#[derive(Debug)]
pub(super) struct CertSlot(RwLock<Arc<CertifiedKey>>);

impl ResolvesServerCert for CertSlot {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(&self.0.read().expect("certificate slot")))
    }
}

/// The current client certificate verifier.
#[derive(Debug)]
pub(super) struct VerifierSlot(RwLock<Arc<dyn ClientCertVerifier>>);

impl VerifierSlot {
    fn current(&self) -> Arc<dyn ClientCertVerifier> {
        Arc::clone(&self.0.read().expect("verifier slot"))
    }
}

impl ClientCertVerifier for VerifierSlot {
    /// No hints: the CA bundle may change under a borrowed list. Clients send the certificate
    /// they are configured with regardless.
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.current()
            .verify_client_cert(end_entity, intermediates, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.current().verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.current().verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.current().supported_verify_schemes()
    }
}

/// The slots every listener's config shares, and the bytes they were loaded from.
pub(super) struct Slots {
    pub cert: Arc<CertSlot>,
    pub verifier: Option<Arc<VerifierSlot>>,
    contents: Contents,
}

impl Slots {
    pub fn new(loaded: Loaded) -> Self {
        Self {
            cert: Arc::new(CertSlot(RwLock::new(loaded.key))),
            verifier: loaded
                .verifier
                .map(|v| Arc::new(VerifierSlot(RwLock::new(v)))),
            contents: loaded.contents,
        }
    }

    /// Swaps in what `loaded` holds.
    fn apply(&mut self, loaded: Loaded) {
        *self.cert.0.write().expect("certificate slot") = loaded.key;
        if let (Some(slot), Some(verifier)) = (&self.verifier, loaded.verifier) {
            *slot.0.write().expect("verifier slot") = verifier;
        }
        self.contents = loaded.contents;
    }
}

/// Re-reads `files` every `interval` and on SIGHUP, as long as a listener uses `slots`.
pub(super) fn watch(files: Files, provider: Arc<CryptoProvider>, slots: Slots, interval: Duration) {
    let mut slots = slots;
    let mut wakeups = crate::Wakeups::new(Some(interval.max(Duration::from_millis(100))));
    tokio::spawn(async move {
        loop {
            wakeups.next().await;
            // Only this task holds the slots once every listener has stopped.
            if Arc::strong_count(&slots.cert) <= 1 {
                return;
            }
            let (files, provider, contents) =
                (files.clone(), Arc::clone(&provider), slots.contents.clone());
            let checked =
                tokio::task::spawn_blocking(move || check(&files, &provider, &contents)).await;
            match checked {
                Ok(Change::Same) | Err(_) => {}
                Ok(Change::Loaded(loaded)) => {
                    slots.apply(*loaded);
                    count("ok");
                    tracing::info!("TLS files changed: new connections use the new certificate");
                }
                Ok(Change::Failed(contents, error)) => {
                    // Not retried until the files change again.
                    slots.contents = contents;
                    count("failed");
                    tracing::error!(%error, "TLS files changed but cannot be used; keeping the previous certificate");
                }
                Ok(Change::Unreadable(error)) => {
                    tracing::error!(%error, "TLS files cannot be read; keeping the previous certificate");
                }
            }
        }
    });
}

fn count(outcome: &'static str) {
    metrics()
        .reloads
        .get_or_create(&OutcomeLabel { outcome })
        .inc();
}

enum Change {
    Same,
    Loaded(Box<Loaded>),
    Failed(Contents, String),
    Unreadable(String),
}

/// Whether the files changed since `before`, and what they hold now.
fn check(files: &Files, provider: &Arc<CryptoProvider>, before: &Contents) -> Change {
    let now = match files.read() {
        Ok(now) => now,
        Err(e) => return Change::Unreadable(e.to_string()),
    };
    if &now == before {
        return Change::Same;
    }
    match files.parse(now.clone(), provider) {
        Ok(loaded) => Change::Loaded(Box::new(loaded)),
        Err(e) => Change::Failed(now, e.to_string()),
    }
}
