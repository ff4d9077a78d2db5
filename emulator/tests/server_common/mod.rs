//! Helpers shared by the server tests: starting an emulator on 127.0.0.1 and building
//! clients that trust its certificate.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use bytes::Bytes;
use exmux_core::Secret;
use exmux_emulator::server::{
    EWS_PATH, Emulator, EmulatorHandle, EmulatorOptions, MAPI_PREFIX, ResponseBody, RouteAuth,
    handler_fn,
};
use http_body_util::{BodyExt as _, Full};
use hyper_util::rt::TokioIo;
use sspi::{
    AuthIdentity, BufferType, ClientRequestFlags, CredentialUse, DataRepresentation, Ntlm,
    SecurityBuffer, SecurityStatus, Sspi, SspiImpl, Username,
};

pub const USER: &str = "user1@example.test";
pub const PASSWORD: &str = "s3cret-Passw0rd";
pub const TOKEN: &str = "static-bearer-token-42";

/// Returns options for a plain-HTTP emulator with known credentials and a static bearer token.
pub fn plain_options() -> EmulatorOptions {
    EmulatorOptions {
        tls: false,
        password: Secret::new(PASSWORD),
        bearer_token: Some(Secret::new(TOKEN)),
        shutdown_grace: Duration::from_secs(2),
        ..EmulatorOptions::default()
    }
}

/// Starts a plain-HTTP emulator whose protocol paths answer with [`mount_stub`].
pub async fn start_plain() -> EmulatorHandle {
    let emulator = Emulator::start(plain_options()).await.unwrap();
    mount_stub(&emulator);
    emulator
}

/// Replaces the EWS and MAPI/HTTP front ends with a handler that answers every request
/// with a fixed 501 and a plain-text body. Server-layer tests check authentication,
/// faults and recording against this stub, so a front end's answers cannot change what
/// they measure.
pub fn mount_stub(emulator: &EmulatorHandle) {
    for prefix in [EWS_PATH, MAPI_PREFIX] {
        emulator.mount(
            prefix,
            RouteAuth::Required,
            handler_fn(|request, _context| async move {
                let text = format!("501 Not Implemented: stub for {}\n", request.uri().path());
                http::Response::builder()
                    .status(501)
                    .header("content-type", "text/plain; charset=utf-8")
                    .body(ResponseBody::Full(Bytes::from(text)))
                    .unwrap()
            }),
        );
    }
}

/// Builds a reqwest client that ignores proxy settings from the environment, so loopback
/// requests never leave the machine.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// Builds a client that trusts only the emulator's CA.
pub fn tls_client(emulator: &EmulatorHandle) -> reqwest::Client {
    let ca =
        reqwest::Certificate::from_pem(emulator.ca_certificate_pem().unwrap().as_bytes()).unwrap();
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .tls_certs_only([ca])
        .build()
        .unwrap()
}

/// The client side of NTLM, from the same `sspi` crate.
pub struct NtlmClient {
    ntlm: Ntlm,
    credentials: <Ntlm as SspiImpl>::CredentialsHandle,
}

impl NtlmClient {
    pub fn new(user: &str, password: &str) -> Self {
        let mut ntlm = Ntlm::new();
        let identity = AuthIdentity {
            username: Username::parse(user).unwrap(),
            password: password.to_owned().into(),
        };
        let acquired = ntlm
            .acquire_credentials_handle()
            .with_credential_use(CredentialUse::Outbound)
            .with_auth_data(&identity)
            .execute(&mut ntlm)
            .unwrap();
        Self {
            ntlm,
            credentials: acquired.credentials_handle,
        }
    }

    /// Produces NEGOTIATE when `challenge` is `None`, AUTHENTICATE otherwise.
    pub fn step(&mut self, challenge: Option<&[u8]>) -> Vec<u8> {
        let mut input = vec![SecurityBuffer::new(
            challenge.unwrap_or_default().to_vec(),
            BufferType::Token,
        )];
        let mut output = vec![SecurityBuffer::new(Vec::new(), BufferType::Token)];
        let mut builder = self
            .ntlm
            .initialize_security_context()
            .with_credentials_handle(&mut self.credentials)
            .with_context_requirements(
                ClientRequestFlags::CONFIDENTIALITY | ClientRequestFlags::ALLOCATE_MEMORY,
            )
            .with_target_data_representation(DataRepresentation::Native)
            .with_target_name("HTTP/127.0.0.1")
            .with_input(&mut input)
            .with_output(&mut output);
        let result = self
            .ntlm
            .initialize_security_context_impl(&mut builder)
            .unwrap()
            .resolve_to_result()
            .unwrap();
        if matches!(
            result.status,
            SecurityStatus::CompleteNeeded | SecurityStatus::CompleteAndContinue
        ) {
            self.ntlm.complete_auth_token(&mut output).unwrap();
        }
        output.remove(0).buffer
    }
}

/// One HTTP/1.1 connection that the test owns, so every request provably uses the same
/// TCP connection.
pub struct OneConnection {
    sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    host: String,
}

impl OneConnection {
    pub async fn open(emulator: &EmulatorHandle) -> Self {
        let stream = tokio::net::TcpStream::connect(emulator.local_addr())
            .await
            .unwrap();
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        tokio::spawn(connection);
        Self {
            sender,
            host: emulator.local_addr().to_string(),
        }
    }

    /// Opens one TLS connection that trusts only the emulator's CA and offers only
    /// HTTP/1.1 through ALPN, as NTLM clients do.
    pub async fn open_tls(emulator: &EmulatorHandle) -> Self {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(rustls::pki_types::CertificateDer::from(
                emulator.tls().unwrap().ca_der().to_vec(),
            ))
            .unwrap();
        let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));

        let stream = tokio::net::TcpStream::connect(emulator.local_addr())
            .await
            .unwrap();
        let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
        let tls = connector.connect(name, stream).await.unwrap();
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .unwrap();
        tokio::spawn(connection);
        Self {
            sender,
            host: emulator.local_addr().to_string(),
        }
    }

    pub async fn post(&mut self, authorization: Option<String>) -> http::Response<Bytes> {
        let mut request = http::Request::post("/EWS/Exchange.asmx").header("host", &self.host);
        if let Some(value) = authorization {
            request = request.header("authorization", value);
        }
        let response = self
            .sender
            .send_request(
                request
                    .body(Full::new(Bytes::from_static(b"<x/>")))
                    .unwrap(),
            )
            .await
            .unwrap();
        let (parts, body) = response.into_parts();
        http::Response::from_parts(parts, body.collect().await.unwrap().to_bytes())
    }
}
