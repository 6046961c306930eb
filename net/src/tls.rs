//! rustls configurations: TLS 1.3 only, ring provider. Servers require a client certificate
//! chaining to the network CA, not revoked by its CRL, and naming a party; the verifier is
//! rebuilt when the CRL file changes ([`ReloadingVerifier::reload_if_changed`]), so a
//! revocation takes effect for new connections without a restart. Clients verify the server
//! the same way and can pin the party the server must be.

use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use identity::party::Party;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};

use crate::credential::{Credential, Trust, party_of};
use crate::error::{Error, Result};

#[allow(
    deprecated,
    reason = "ring's provider lacks the post-quantum hybrid key exchange; aws-lc-rs needs cmake and a C toolchain build we avoid; TLS 1.3 with ECDHE is what the network needs today"
)]
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn tls_err(e: impl std::fmt::Display) -> Error {
    Error::Tls(e.to_string())
}

fn webpki_client_verifier(trust: &Trust) -> Result<Arc<dyn ClientCertVerifier>> {
    let roots = Arc::new(trust.roots()?);
    WebPkiClientVerifier::builder_with_provider(roots, provider())
        .with_crls(trust.crls()?)
        .only_check_end_entity_revocation()
        .build()
        .map_err(tls_err)
}

/// A client-certificate verifier that delegates to webpki (chain, validity, EKU clientAuth,
/// CRL) and then requires the certificate to name a party; rebuilt when the CRL changes.
#[derive(Debug)]
pub struct ReloadingVerifier {
    trust: Trust,
    inner: RwLock<(Arc<dyn ClientCertVerifier>, Option<SystemTime>)>,
    /// Bumped on every reload, so open connections re-check their client's certificate.
    generation: tokio::sync::watch::Sender<u64>,
}

impl ReloadingVerifier {
    /// Builds the verifier from `trust`.
    pub fn new(trust: Trust) -> Result<Arc<Self>> {
        let stamp = crl_stamp(&trust);
        let inner = webpki_client_verifier(&trust)?;
        Ok(Arc::new(Self { trust, inner: RwLock::new((inner, stamp)), generation: tokio::sync::watch::Sender::new(0) }))
    }

    fn current(&self) -> Arc<dyn ClientCertVerifier> {
        match self.inner.read() {
            Ok(g) => g.0.clone(),
            Err(p) => p.into_inner().0.clone(),
        }
    }

    /// Rebuilds the verifier if the CRL file's modification time changed; returns whether it
    /// did. A CRL that fails to load keeps the previous verifier (and is reported).
    pub fn reload_if_changed(&self) -> Result<bool> {
        let stamp = crl_stamp(&self.trust);
        let old = match self.inner.read() {
            Ok(g) => g.1,
            Err(p) => p.into_inner().1,
        };
        if stamp == old {
            return Ok(false);
        }
        let v = webpki_client_verifier(&self.trust)?;
        match self.inner.write() {
            Ok(mut g) => *g = (v, stamp),
            Err(p) => *p.into_inner() = (v, stamp),
        }
        self.generation.send_modify(|g| *g += 1);
        Ok(true)
    }

    /// A receiver that changes whenever the verifier is rebuilt (a new CRL).
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.generation.subscribe()
    }

    /// Re-checks an already connected client's chain against the current CRL; `Err` if it is
    /// no longer acceptable (revoked, expired).
    pub fn still_valid(&self, chain: &[CertificateDer<'static>]) -> Result<(), rustls::Error> {
        let Some((leaf, rest)) = chain.split_first() else {
            return Err(rustls::Error::General("no client certificate".into()));
        };
        self.verify_client_cert(leaf, rest, UnixTime::now()).map(drop)
    }

    /// Polls the CRL file every `every` and reloads it when it changes (a background task).
    pub fn spawn_reloader(self: &Arc<Self>, every: std::time::Duration) {
        let me = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let Some(v) = me.upgrade() else { return };
                match v.reload_if_changed() {
                    Ok(true) => tracing::info!(crl = ?v.trust.crl_file, "network CRL reloaded"),
                    Ok(false) => {}
                    Err(e) => tracing::error!(error = %e, "network CRL reload failed; keeping the previous one"),
                }
            }
        });
    }
}

fn crl_stamp(trust: &Trust) -> Option<SystemTime> {
    trust.crl_file.as_ref().and_then(|p| std::fs::metadata(p).ok()).and_then(|m| m.modified().ok())
}

impl ClientCertVerifier for ReloadingVerifier {
    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let ok = self.current().verify_client_cert(end_entity, intermediates, now)?;
        party_of(end_entity).map_err(|e| rustls::Error::General(e.to_string()))?;
        Ok(ok)
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

/// A server configuration presenting `cred` and requiring network clients; also returns the
/// verifier so the caller can start its CRL reloader.
pub fn server_config(cred: &Credential, trust: &Trust) -> Result<(Arc<rustls::ServerConfig>, Arc<ReloadingVerifier>)> {
    let verifier = ReloadingVerifier::new(trust.clone())?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(tls_err)?
        .with_client_cert_verifier(verifier.clone())
        .with_single_cert(cred.chain().to_vec(), cred.key())
        .map_err(tls_err)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok((Arc::new(config), verifier))
}

/// A server configuration for a browser on loopback: presenting `cred` (the window's own
/// network credential, issued for the page's host), asking for no client certificate, TLS 1.3.
pub fn page_server_config(cred: &Credential) -> Result<Arc<rustls::ServerConfig>> {
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(tls_err)?
        .with_no_client_auth()
        .with_single_cert(cred.chain().to_vec(), cred.key())
        .map_err(tls_err)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Verifies a server with webpki against the network CA (and CRL) and, if `expect` is set,
/// requires its certificate to name exactly that party.
#[derive(Debug)]
struct PinnedServer {
    inner: Arc<rustls::client::WebPkiServerVerifier>,
    expect: Option<Party>,
}

impl ServerCertVerifier for PinnedServer {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let ok = self.inner.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)?;
        let party = party_of(end_entity).map_err(|e| rustls::Error::General(e.to_string()))?;
        if let Some(want) = &self.expect
            && *want != party
        {
            return Err(rustls::Error::General(format!("the server is {party}, expected {want}")));
        }
        Ok(ok)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// A client configuration presenting `cred`, trusting only the network CA, and (if `expect`
/// is set) accepting only a server whose certificate names that party.
pub fn client_config(cred: &Credential, trust: &Trust, expect: Option<Party>) -> Result<rustls::ClientConfig> {
    let inner = rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(trust.roots()?), provider())
        .with_crls(trust.crls()?)
        .only_check_end_entity_revocation()
        .build()
        .map_err(tls_err)?;
    let mut config = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(tls_err)?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(PinnedServer { inner, expect }))
        .with_client_auth_cert(cred.chain().to_vec(), cred.key())
        .map_err(tls_err)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}
