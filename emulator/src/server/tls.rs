//! The emulator's TLS identity: a throwaway certificate authority and a server
//! certificate for `127.0.0.1` and `localhost`, both made with `rcgen` at start.
//!
//! Clients trust the emulator by adding [`TlsIdentity::ca_pem`] (or the DER form) to
//! their root store, so the TLS path is tested with verification on.

use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use super::EmulatorError;

/// The certificate authority and server certificate of one emulator instance.
///
/// The private keys live only inside the rustls configuration; this type exposes the
/// public certificates.
#[derive(Clone)]
pub struct TlsIdentity {
    ca_pem: String,
    ca_der: CertificateDer<'static>,
    server_der: CertificateDer<'static>,
    config: Arc<rustls::ServerConfig>,
}

impl std::fmt::Debug for TlsIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsIdentity")
            .field("ca_der_len", &self.ca_der.len())
            .field("server_der_len", &self.server_der.len())
            .finish_non_exhaustive()
    }
}

impl TlsIdentity {
    /// Generates a fresh CA and a server certificate for `127.0.0.1`, `::1` and
    /// `localhost`, and the rustls configuration that serves it with HTTP/1.1 and HTTP/2
    /// offered through ALPN.
    ///
    /// # Errors
    ///
    /// [`EmulatorError::Tls`] when key generation, signing or the rustls configuration
    /// fails.
    pub fn generate() -> Result<Self, EmulatorError> {
        let ca_key = KeyPair::generate().map_err(tls_failure("generate the CA key"))?;
        let mut ca_params = CertificateParams::new(Vec::<String>::new())
            .map_err(tls_failure("build the CA parameters"))?;
        let mut ca_name = DistinguishedName::new();
        ca_name.push(DnType::CommonName, "exmux emulator test CA");
        ca_params.distinguished_name = ca_name;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca = CertifiedIssuer::self_signed(ca_params, ca_key)
            .map_err(tls_failure("self-sign the CA"))?;

        let server_key = KeyPair::generate().map_err(tls_failure("generate the server key"))?;
        let mut server_params = CertificateParams::new(vec![
            "localhost".to_owned(),
            "127.0.0.1".to_owned(),
            "::1".to_owned(),
        ])
        .map_err(tls_failure("build the server certificate parameters"))?;
        let mut server_name = DistinguishedName::new();
        server_name.push(DnType::CommonName, "localhost");
        server_params.distinguished_name = server_name;
        server_params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        server_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let server_cert = server_params
            .signed_by(&server_key, &ca)
            .map_err(tls_failure("sign the server certificate"))?;

        let ca_der = ca.der().clone();
        let server_der = server_cert.der().clone();
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_key.serialize_der()));

        // An explicit provider: several crypto providers are compiled into the workspace
        // (through reqwest and rcgen), so the process-wide default is ambiguous.
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(tls_failure("choose the TLS protocol versions"))?
            .with_no_client_auth()
            .with_single_cert(vec![server_der.clone(), ca_der.clone()], key)
            .map_err(tls_failure("install the server certificate"))?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];

        Ok(Self {
            ca_pem: ca.pem(),
            ca_der,
            server_der,
            config: Arc::new(config),
        })
    }

    /// Returns the CA certificate in PEM form, for `reqwest::Certificate::from_pem` or a CA bundle
    /// file.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// Returns the CA certificate in DER form.
    pub fn ca_der(&self) -> &[u8] {
        self.ca_der.as_ref()
    }

    /// Returns the server certificate in DER form, signed by the CA.
    pub fn server_der(&self) -> &[u8] {
        self.server_der.as_ref()
    }

    pub(crate) fn server_config(&self) -> Arc<rustls::ServerConfig> {
        Arc::clone(&self.config)
    }
}

fn tls_failure<E: std::fmt::Display>(step: &'static str) -> impl FnOnce(E) -> EmulatorError {
    move |error| EmulatorError::Tls {
        step,
        reason: error.to_string(),
    }
}
