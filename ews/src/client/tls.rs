//! The TLS and proxy settings of the client's two connection kinds, built from one
//! [`HttpOptions`]: reqwest's pool (Basic, Bearer) and the connections the client owns
//! for NTLM and Negotiate. Both use the same `rustls::ClientConfig`, so a server
//! certificate that one path accepts the other accepts too.

use std::sync::Arc;

use exmux_core::http::{HttpOptions, ProxySetting};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

use super::error::ClientError;

/// Builds the TLS configuration shared by both connection kinds, without ALPN.
pub(crate) fn client_config(options: &HttpOptions) -> Result<rustls::ClientConfig, ClientError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let verifier = verifier(options, &provider)?;
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|error| ClientError::Config {
            reason: format!("cannot set up TLS: {error}"),
        })?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(config)
}

fn verifier(
    options: &HttpOptions,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<dyn ServerCertVerifier>, ClientError> {
    if options.danger_accept_invalid_certs {
        tracing::warn!("TLS certificate verification is disabled (danger_accept_invalid_certs)");
        return Ok(Arc::new(AcceptAnyCertificate {
            provider: Arc::clone(provider),
        }));
    }

    let extra_roots = read_ca_bundle(options)?;
    if options.ca_bundle_only && options.ca_bundle.is_some() {
        let mut roots = rustls::RootCertStore::empty();
        for certificate in extra_roots {
            roots
                .add(certificate)
                .map_err(|error| ca_bundle_error(options, &error.to_string()))?;
        }
        let verifier =
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), Arc::clone(provider))
                .build()
                .map_err(|error| ca_bundle_error(options, &error.to_string()))?;
        return Ok(verifier);
    }

    let verifier = if extra_roots.is_empty() {
        rustls_platform_verifier::Verifier::new(Arc::clone(provider))
    } else {
        rustls_platform_verifier::Verifier::new_with_extra_roots(extra_roots, Arc::clone(provider))
    }
    .map_err(|error| ClientError::Config {
        reason: format!("cannot set up TLS with the platform's roots: {error}"),
    })?;
    Ok(Arc::new(verifier))
}

/// Reads the PEM certificates of [`HttpOptions::ca_bundle`], or none when it is unset.
fn read_ca_bundle(options: &HttpOptions) -> Result<Vec<CertificateDer<'static>>, ClientError> {
    let Some(path) = &options.ca_bundle else {
        return Ok(Vec::new());
    };
    let pem = std::fs::read(path).map_err(|error| ca_bundle_error(options, &error.to_string()))?;
    let certificates = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| ca_bundle_error(options, &error.to_string()))?;
    if certificates.is_empty() {
        return Err(ca_bundle_error(options, "it contains no PEM certificate"));
    }
    Ok(certificates)
}

fn ca_bundle_error(options: &HttpOptions, reason: &str) -> ClientError {
    let path = options
        .ca_bundle
        .as_deref()
        .map(|path| path.display().to_string())
        .unwrap_or_default();
    ClientError::Config {
        reason: format!(
            "invalid CA bundle {path}: {reason}; set [http] ca_bundle to a PEM file of CA \
             certificates"
        ),
    }
}

/// Builds reqwest's connection pool over `tls`, with the proxy of `options` and no
/// redirects, because a redirected POST would lose its body and an Authorization header
/// must not reach a host the caller did not choose.
pub(crate) fn build_pool(
    options: &HttpOptions,
    tls: &rustls::ClientConfig,
) -> Result<reqwest::Client, ClientError> {
    let mut tls = tls.clone();
    tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let mut builder = reqwest::Client::builder()
        .connect_timeout(options.connect_timeout)
        .user_agent(options.user_agent.clone())
        .redirect(reqwest::redirect::Policy::none())
        .tls_backend_preconfigured(tls);

    match &options.proxy {
        ProxySetting::Disabled => builder = builder.no_proxy(),
        ProxySetting::Url { url, no_proxy } => {
            // reqwest's message may quote the URL, which may carry a password.
            let proxy = reqwest::Proxy::all(url.expose()).map_err(|_| ClientError::Config {
                reason: "invalid proxy URL in [http] proxy: not a valid http:// or https:// URL"
                    .to_owned(),
            })?;
            let exceptions = no_proxy.as_deref().and_then(reqwest::NoProxy::from_string);
            builder = builder.proxy(proxy.no_proxy(exceptions));
        }
        // The environment's proxy variables, which reqwest reads by itself.
        _ => {}
    }

    builder.build().map_err(|error| ClientError::Config {
        reason: format!("cannot build the HTTP client: {error}"),
    })
}

/// A verifier for [`HttpOptions::danger_accept_invalid_certs`]: it accepts any server
/// certificate but still checks the handshake signatures against the certificate's key.
#[derive(Debug)]
struct AcceptAnyCertificate {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
