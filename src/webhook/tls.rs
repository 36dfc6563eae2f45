//! TLS of the webhook listener, as PSPs call webhooks: the server's certificate, and mutual TLS
//! — a client must present a certificate issued by `webhook.tls.client_ca_file`, or the
//! handshake fails before any HTTP is read.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Why the TLS settings cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {what} {path}; check webhook.tls.{key} (a PEM file)")]
    Read {
        what: &'static str,
        key: &'static str,
        path: PathBuf,
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    #[error("{path} holds no certificate; check webhook.tls.{key} (a PEM file with CERTIFICATE blocks)")]
    Empty { key: &'static str, path: PathBuf },
    #[error("the TLS settings are refused; check that webhook.tls.key_file is the key of webhook.tls.cert_file")]
    Config(#[source] rustls::Error),
    #[error("the client CA in {path} is refused; check webhook.tls.client_ca_file")]
    ClientCa {
        path: PathBuf,
        #[source]
        source: rustls::server::VerifierBuilderError,
    },
}

/// The files of the TLS settings.
#[derive(Clone, Debug)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Mutual TLS: clients must present a certificate issued by one of these CAs.
    pub client_ca: Option<PathBuf>,
}

fn certs(path: &Path, key: &'static str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let read = |source| TlsError::Read { what: "the certificates in", key, path: path.to_owned(), source };
    let certs = CertificateDer::pem_file_iter(path).map_err(read)?.collect::<Result<Vec<_>, _>>().map_err(read)?;
    if certs.is_empty() {
        return Err(TlsError::Empty { key, path: path.to_owned() });
    }
    Ok(certs)
}

/// The server configuration (HTTP/1.1 over TLS 1.2 or 1.3).
pub fn server_config(files: &TlsFiles) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let chain = certs(&files.cert, "cert_file")?;
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|source| TlsError::Read {
        what: "the private key in",
        key: "key_file",
        path: files.key.clone(),
        source,
    })?;
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Config)?;
    let builder = match &files.client_ca {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in certs(ca, "client_ca_file")? {
                roots.add(cert).map_err(TlsError::Config)?;
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|source| TlsError::ClientCa { path: ca.clone(), source })?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_single_cert(chain, key).map_err(TlsError::Config)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
