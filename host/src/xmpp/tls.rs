//! TLS for STARTTLS: certificates from `[tls]` (one default, others per domain by SNI), or a
//! self-signed certificate for every served domain, generated on first start and kept in
//! `<data_dir>/tls/` so that clients can pin it across restarts.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::server::{ClientHello, ResolvesServerCert};
use tokio_rustls::rustls::sign::CertifiedKey;
use tokio_rustls::rustls::{ServerConfig, crypto};

use crate::config::Config;

/// Builds the acceptor for c2s STARTTLS.
pub fn acceptor(config: &Config) -> anyhow::Result<TlsAcceptor> {
    let provider = Arc::new(crypto::ring::default_provider());
    let (cert, key) = match (&config.tls.cert, &config.tls.key) {
        (Some(cert), Some(key)) => (cert.clone(), key.clone()),
        _ => self_signed(config)?,
    };
    let default = load(&provider, &cert, &key)?;
    let mut by_name = HashMap::new();
    for (domain, pair) in &config.tls.domains {
        by_name.insert(domain.to_ascii_lowercase(), load(&provider, &pair.cert, &pair.key)?);
    }
    let resolver = Arc::new(SniResolver { by_name, default });
    let server = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    Ok(TlsAcceptor::from(Arc::new(server)))
}

/// The paths of the generated certificate and key, created when missing.
fn self_signed(config: &Config) -> anyhow::Result<(std::path::PathBuf, std::path::PathBuf)> {
    let dir = config.tls_dir();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    if cert.is_file() && key.is_file() {
        return Ok((cert, key));
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let generated = rcgen::generate_simple_self_signed(config.domains.clone())
        .context("cannot generate a self-signed certificate")?;
    std::fs::write(&cert, generated.cert.pem())
        .with_context(|| format!("cannot write {}", cert.display()))?;
    crate::write_private(&key, &generated.signing_key.serialize_pem())
        .with_context(|| format!("cannot write {}", key.display()))?;
    tracing::info!(cert = %cert.display(), domains = ?config.domains, "generated a self-signed TLS certificate");
    Ok((cert, key))
}

fn load(provider: &crypto::CryptoProvider, cert: &Path, key: &Path) -> anyhow::Result<Arc<CertifiedKey>> {
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .with_context(|| format!("cannot read certificates from {}", cert.display()))?;
    let key = PrivateKeyDer::from_pem_file(key)
        .with_context(|| format!("cannot read a private key from {}", key.display()))?;
    Ok(Arc::new(CertifiedKey::from_der(chain, key, provider).context("certificate and key do not match")?))
}

/// Chooses the certificate by SNI, falling back to the default one.
#[derive(Debug)]
struct SniResolver {
    by_name: HashMap<String, Arc<CertifiedKey>>,
    default: Arc<CertifiedKey>,
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let named = hello.server_name().and_then(|name| self.by_name.get(&name.to_ascii_lowercase()));
        Some(named.unwrap_or(&self.default).clone())
    }
}
