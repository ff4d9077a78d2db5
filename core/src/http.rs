//! HTTP options shared by the EWS and MAPI/HTTP backends and autodiscover: a custom CA
//! bundle, an HTTP(S) proxy, timeouts and TLS verification, turned into one
//! `reqwest::Client`.
//!
//! TLS certificates are verified unless [`HttpOptions::danger_accept_invalid_certs`] is
//! set. With no explicit proxy, reqwest reads `HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY`
//! and `NO_PROXY` (and their lowercase forms) from the environment.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

use crate::Secret;

/// The `User-Agent` sent by default.
pub const DEFAULT_USER_AGENT: &str = concat!("exmux/", env!("CARGO_PKG_VERSION"));

/// Whether a proxy is used, and which.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub enum ProxySetting {
    /// Use the proxy environment variables (`HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY`,
    /// `NO_PROXY`), if any are set.
    #[default]
    FromEnvironment,
    /// Connect directly and ignore the environment.
    Disabled,
    /// Send every request through this proxy.
    Url {
        /// The proxy URL, such as `http://proxy.example:3128`. It may carry
        /// `user:password@`, which is why it is a [`Secret`].
        url: Secret,
        /// Hosts to reach directly, in `NO_PROXY` syntax (comma-separated names,
        /// `.domain` suffixes, IP addresses and CIDR ranges).
        no_proxy: Option<String>,
    },
}

/// HTTP and TLS options (config section `[http]`: `ca_bundle`, `proxy`, `no_proxy`,
/// `timeout_secs`, `connect_timeout_secs`, `danger_accept_invalid_certs`).
#[derive(Clone, Debug)]
pub struct HttpOptions {
    /// A PEM file of CA certificates trusted in addition to the built-in roots.
    pub ca_bundle: Option<PathBuf>,
    /// Trust only [`HttpOptions::ca_bundle`], not the built-in roots.
    pub ca_bundle_only: bool,
    /// The proxy setting.
    pub proxy: ProxySetting,
    /// Total time allowed for one request, from connecting to the end of the body.
    /// `None` means no limit, which long-polling calls such as NotificationWait need.
    pub timeout: Option<Duration>,
    /// Time allowed to open a connection.
    pub connect_timeout: Duration,
    /// Accept any server certificate, even expired, self-signed or for another host.
    /// Anyone on the network path can then read and change the traffic, passwords
    /// included. Off by default.
    pub danger_accept_invalid_certs: bool,
    /// The `User-Agent` header.
    pub user_agent: String,
}

impl Default for HttpOptions {
    fn default() -> Self {
        Self {
            ca_bundle: None,
            ca_bundle_only: false,
            proxy: ProxySetting::FromEnvironment,
            timeout: None,
            connect_timeout: Duration::from_secs(30),
            danger_accept_invalid_certs: false,
            user_agent: DEFAULT_USER_AGENT.to_owned(),
        }
    }
}

/// An invalid HTTP option.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HttpConfigError {
    /// The CA bundle could not be read or contains no certificate.
    #[error(
        "invalid CA bundle {path}: {reason}; set [http] ca_bundle to a PEM file of CA certificates"
    )]
    CaBundle {
        /// The configured path.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// The proxy URL is invalid. The URL itself is not shown because it may carry a password.
    #[error("invalid proxy URL in [http] proxy: {reason}")]
    Proxy {
        /// What went wrong.
        reason: String,
    },
    /// reqwest rejected the configuration.
    #[error("cannot build the HTTP client: {reason}")]
    Build {
        /// What went wrong.
        reason: String,
    },
}

impl HttpOptions {
    /// Builds a `reqwest::Client` with these options. Redirects are not followed, because
    /// an Authorization header must not travel to a host the caller did not choose, and
    /// autodiscover checks each redirect itself.
    ///
    /// # Errors
    ///
    /// [`HttpConfigError`] naming the bad option.
    pub fn build_client(&self) -> Result<reqwest::Client, HttpConfigError> {
        let mut builder = reqwest::Client::builder()
            .user_agent(self.user_agent.clone())
            .connect_timeout(self.connect_timeout)
            .redirect(reqwest::redirect::Policy::none());
        if let Some(timeout) = self.timeout {
            builder = builder.timeout(timeout);
        }

        if let Some(path) = &self.ca_bundle {
            let bundle_error = |reason: String| HttpConfigError::CaBundle {
                path: path.display().to_string(),
                reason,
            };
            let pem = std::fs::read(path).map_err(|error| bundle_error(error.to_string()))?;
            let certificates = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|error| bundle_error(error.to_string()))?;
            if certificates.is_empty() {
                return Err(bundle_error("it contains no PEM certificate".to_owned()));
            }
            builder = if self.ca_bundle_only {
                builder.tls_certs_only(certificates)
            } else {
                builder.tls_certs_merge(certificates)
            };
        }

        if self.danger_accept_invalid_certs {
            tracing::warn!(
                "TLS certificate verification is disabled (danger_accept_invalid_certs)"
            );
            builder = builder.tls_danger_accept_invalid_certs(true);
        }

        match &self.proxy {
            ProxySetting::FromEnvironment => {}
            ProxySetting::Disabled => builder = builder.no_proxy(),
            ProxySetting::Url { url, no_proxy } => {
                // reqwest's message may quote the URL, so only its kind is kept.
                let proxy =
                    reqwest::Proxy::all(url.expose()).map_err(|_| HttpConfigError::Proxy {
                        reason: "not a valid http:// or https:// URL".to_owned(),
                    })?;
                let exceptions = no_proxy.as_deref().and_then(reqwest::NoProxy::from_string);
                builder = builder.proxy(proxy.no_proxy(exceptions));
            }
        }

        builder.build().map_err(|error| HttpConfigError::Build {
            reason: error.to_string(),
        })
    }
}

impl HttpOptions {
    /// Builds the TLS settings of a connection that a client opens itself, such as the
    /// connection an NTLM or Negotiate handshake runs on. It trusts the platform's roots
    /// plus [`HttpOptions::ca_bundle`], only the bundle with
    /// [`HttpOptions::ca_bundle_only`], or anything with
    /// [`HttpOptions::danger_accept_invalid_certs`]. No ALPN protocol is set, so the
    /// connection speaks HTTP/1.1.
    ///
    /// # Errors
    ///
    /// [`HttpConfigError::CaBundle`] when the bundle cannot be read or has no
    /// certificate, and [`HttpConfigError::Build`] when the platform's roots cannot be
    /// loaded.
    pub fn tls_config(&self) -> Result<Arc<rustls::ClientConfig>, HttpConfigError> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let build_error = |error: rustls::Error| HttpConfigError::Build {
            reason: format!("cannot set up TLS: {error}"),
        };
        let builder = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(build_error)?;

        if self.danger_accept_invalid_certs {
            tracing::warn!(
                "TLS certificate verification is disabled (danger_accept_invalid_certs)"
            );
            let verifier = Arc::new(AcceptAnyCertificate { provider });
            return Ok(Arc::new(
                builder
                    .dangerous()
                    .with_custom_certificate_verifier(verifier)
                    .with_no_client_auth(),
            ));
        }

        let extra_roots = self.read_ca_bundle()?;
        let bundle_error = |reason: String| HttpConfigError::CaBundle {
            path: self
                .ca_bundle
                .as_deref()
                .map(|path| path.display().to_string())
                .unwrap_or_default(),
            reason,
        };
        if self.ca_bundle_only && !extra_roots.is_empty() {
            let mut roots = rustls::RootCertStore::empty();
            for certificate in extra_roots {
                roots
                    .add(certificate)
                    .map_err(|error| bundle_error(error.to_string()))?;
            }
            return Ok(Arc::new(
                builder.with_root_certificates(roots).with_no_client_auth(),
            ));
        }

        let verifier = if extra_roots.is_empty() {
            rustls_platform_verifier::Verifier::new(provider)
        } else {
            rustls_platform_verifier::Verifier::new_with_extra_roots(extra_roots, provider)
        }
        .map_err(|error| HttpConfigError::Build {
            reason: format!("cannot load the platform's TLS roots: {error}"),
        })?;
        Ok(Arc::new(
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(verifier))
                .with_no_client_auth(),
        ))
    }

    /// Reads the certificates of [`HttpOptions::ca_bundle`], none when it is unset.
    fn read_ca_bundle(&self) -> Result<Vec<CertificateDer<'static>>, HttpConfigError> {
        let Some(path) = &self.ca_bundle else {
            return Ok(Vec::new());
        };
        let bundle_error = |reason: String| HttpConfigError::CaBundle {
            path: path.display().to_string(),
            reason,
        };
        let pem = std::fs::read(path).map_err(|error| bundle_error(error.to_string()))?;
        let certificates = CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|error| bundle_error(error.to_string()))?;
        if certificates.is_empty() {
            return Err(bundle_error("it contains no PEM certificate".to_owned()));
        }
        Ok(certificates)
    }
}

/// The verifier of [`HttpOptions::danger_accept_invalid_certs`]. It accepts any
/// certificate but still checks that the handshake is signed by the certificate's key.
#[derive(Debug)]
struct AcceptAnyCertificate {
    provider: Arc<rustls::crypto::CryptoProvider>,
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
        certificate: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            certificate,
            signature,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        certificate: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            certificate,
            signature,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Lists the error and its causes, outermost first. An `io::Error` does not return the
/// error it wraps from `source`, so that error is taken with `get_ref`. tokio-rustls
/// reports a TLS failure as an `io::Error` around a `rustls::Error`.
fn causes<'e>(
    error: &'e (dyn std::error::Error + 'static),
) -> Vec<&'e (dyn std::error::Error + 'static)> {
    let mut chain = Vec::new();
    let mut next = Some(error);
    // Bounded, because a cyclic chain would otherwise never end.
    while let Some(current) = next.filter(|_| chain.len() < 16) {
        chain.push(current);
        let wrapped = current
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .map(|inner| inner as &(dyn std::error::Error + 'static));
        next = wrapped.or_else(|| current.source());
    }
    chain
}

/// Describes a failed request in one line: the cause, the host and what to check.
///
/// reqwest's own text nests wrappers ("error sending request for url (...)",
/// "client error (Connect)") that repeat the URL the caller's error already names. This
/// keeps the innermost cause and names the kind of failure.
pub fn describe_error(error: &reqwest::Error) -> String {
    let host = error
        .url()
        .map(|url| match (url.host_str(), url.port_or_known_default()) {
            (Some(host), Some(port)) => format!("{host}:{port}"),
            (Some(host), None) => host.to_owned(),
            _ => url.as_str().to_owned(),
        });
    let host = host.as_deref().unwrap_or("the server");
    let chain = causes(error);
    let io = chain
        .iter()
        .filter_map(|e| e.downcast_ref::<std::io::Error>())
        .next_back();
    let tls = chain.iter().find_map(|e| e.downcast_ref::<rustls::Error>());
    let innermost = chain.last().map(|e| e.to_string()).unwrap_or_default();
    if error.is_timeout() {
        return format!(
            "no answer from {host} in time ({innermost}); the server may be overloaded or unreachable"
        );
    }
    if let Some(tls) = tls {
        return format!(
            "TLS with {host} failed ({tls}); check that the URL's port serves HTTPS and that \
             the server's certificate is trusted ([http] ca_bundle)"
        );
    }
    if error.is_connect() {
        if chain.iter().any(|e| e.to_string().starts_with("dns error")) {
            return format!(
                "DNS lookup of {host} failed ({innermost}); check the host name in the URL"
            );
        }
        if io.is_some_and(|io| io.kind() == std::io::ErrorKind::ConnectionRefused) {
            return format!(
                "{host} refused the connection; check the URL's port and that the server is running"
            );
        }
        return format!("cannot connect to {host} ({innermost}); check the URL and the network");
    }
    if error.is_body() || error.is_decode() {
        return format!("reading the response from {host} failed ({innermost}); retry the request");
    }
    format!("the request to {host} failed ({innermost})")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verification_is_on_by_default() {
        let options = HttpOptions::default();
        assert!(!options.danger_accept_invalid_certs);
        assert!(options.build_client().is_ok());
    }

    #[test]
    fn missing_ca_bundle_names_path() {
        let options = HttpOptions {
            ca_bundle: Some(PathBuf::from("/nonexistent/ca.pem")),
            ..HttpOptions::default()
        };
        let message = options.build_client().unwrap_err().to_string();
        assert!(message.contains("/nonexistent/ca.pem"), "{message}");
    }

    #[test]
    fn ca_bundle_without_certificates_is_rejected() {
        let folder = tempfile::tempdir().unwrap();
        let path = folder.path().join("empty.pem");
        std::fs::write(&path, "no certificates here\n").unwrap();
        let options = HttpOptions {
            ca_bundle: Some(path),
            ..HttpOptions::default()
        };
        assert!(matches!(
            options.build_client(),
            Err(HttpConfigError::CaBundle { .. })
        ));
    }

    #[test]
    fn invalid_proxy_error_hides_credentials() {
        let options = HttpOptions {
            proxy: ProxySetting::Url {
                url: Secret::new("::not a url::proxy-password"),
                no_proxy: None,
            },
            ..HttpOptions::default()
        };
        let message = options.build_client().unwrap_err().to_string();
        assert!(!message.contains("proxy-password"), "{message}");
        assert!(!format!("{options:?}").contains("proxy-password"));
    }

    #[test]
    fn tls_config_by_default_and_reckless() {
        assert!(HttpOptions::default().tls_config().is_ok());
        let reckless = HttpOptions {
            danger_accept_invalid_certs: true,
            ..HttpOptions::default()
        };
        assert!(reckless.tls_config().is_ok());
    }

    #[test]
    fn tls_config_rejects_bad_bundles() {
        let missing = HttpOptions {
            ca_bundle: Some(PathBuf::from("/nonexistent/ca.pem")),
            ..HttpOptions::default()
        };
        let message = missing.tls_config().unwrap_err().to_string();
        assert!(message.contains("/nonexistent/ca.pem"), "{message}");

        let folder = tempfile::tempdir().unwrap();
        let path = folder.path().join("empty.pem");
        std::fs::write(&path, "no certificates here\n").unwrap();
        let empty = HttpOptions {
            ca_bundle: Some(path),
            ca_bundle_only: true,
            ..HttpOptions::default()
        };
        assert!(matches!(
            empty.tls_config(),
            Err(HttpConfigError::CaBundle { .. })
        ));
    }

    #[test]
    fn explicit_proxy_with_exceptions_builds() {
        let options = HttpOptions {
            proxy: ProxySetting::Url {
                url: Secret::new("http://user:pw@127.0.0.1:3128"),
                no_proxy: Some("localhost,.example.test".to_owned()),
            },
            ..HttpOptions::default()
        };
        assert!(options.build_client().is_ok());
    }
}
