//! The `Negotiate` handshake sends NTLM inside SPNEGO (RFC 4178) and completes against
//! `sspi`'s SPNEGO acceptor, which accepts a client only after its `mechListMIC`
//! verifies. Its TRACE log carries no secret.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use exmux_core::Secret;
use exmux_core::auth::ntlm::HandshakeState;
use exmux_core::auth::{AuthScheme, Challenge, NtlmHandshake, parse_challenges};
use md4::{Digest, Md4};
use sspi::ntlm::NtlmConfig;
use sspi::{
    AuthIdentity, BufferType, CredentialUse, CredentialsBuffers, DataRepresentation, Negotiate,
    NegotiateConfig, SecurityBuffer, SecurityStatus, ServerRequestFlags, Sspi, SspiImpl, Username,
};

const USER: &str = "user1@example.test";
const PASSWORD: &str = "Spnego-leak-canary-4Kd";

/// A SPNEGO acceptor restricted to NTLM, as a Windows server without Kerberos runs it.
struct Acceptor {
    context: Negotiate,
    credentials: Option<CredentialsBuffers>,
}

impl Acceptor {
    fn new(password: &str) -> Self {
        let identity = AuthIdentity {
            username: Username::parse(USER).unwrap(),
            password: password.to_owned().into(),
        };
        let config = NegotiateConfig::new(
            Box::new(NtlmConfig::new("SERVER".to_owned())),
            Some("ntlm".to_owned()),
            "SERVER".to_owned(),
        );
        let mut context = Negotiate::new_server(config, vec![identity.clone()]).unwrap();
        let credentials = context
            .acquire_credentials_handle()
            .with_credential_use(CredentialUse::Inbound)
            .with_auth_data(&sspi::Credentials::AuthIdentity(identity))
            .execute(&mut context)
            .unwrap()
            .credentials_handle;
        Self {
            context,
            credentials,
        }
    }

    /// Accepts the token of an `Authorization: Negotiate ...` value and returns the
    /// status and the reply token.
    fn accept(&mut self, header: &Secret) -> sspi::Result<(SecurityStatus, Vec<u8>)> {
        let token = header.expose().strip_prefix("Negotiate ").unwrap();
        let mut input = [SecurityBuffer::new(
            STANDARD.decode(token).unwrap(),
            BufferType::Token,
        )];
        let mut output = [SecurityBuffer::new(Vec::new(), BufferType::Token)];
        let builder = self
            .context
            .accept_security_context()
            .with_credentials_handle(&mut self.credentials)
            .with_context_requirements(ServerRequestFlags::ALLOCATE_MEMORY)
            .with_target_data_representation(DataRepresentation::Native)
            .with_input(&mut input)
            .with_output(&mut output);
        let result = self
            .context
            .accept_security_context_impl(builder)?
            .resolve_to_result()?;
        let [reply] = output;
        Ok((result.status, reply.buffer))
    }
}

fn challenge_of(reply: &[u8]) -> Vec<Challenge> {
    parse_challenges([format!("Negotiate {}", STANDARD.encode(reply)).as_str()]).unwrap()
}

fn client(password: &str) -> NtlmHandshake {
    NtlmHandshake::new(AuthScheme::Negotiate, USER, &Secret::new(password)).unwrap()
}

#[test]
fn spnego_handshake_completes() {
    let mut server = Acceptor::new(PASSWORD);
    let mut handshake = client(PASSWORD);

    let first = handshake.negotiate_header().unwrap();
    let (status, reply) = server.accept(&first).unwrap();
    assert_eq!(status, SecurityStatus::ContinueNeeded);
    // A NegTokenResp (RFC 4178 section 4.2.2) whose responseToken is the CHALLENGE.
    assert_eq!(reply[0], 0xa1);
    assert!(reply.windows(8).any(|window| window == b"NTLMSSP\0"));

    let last = handshake
        .authenticate_header(&challenge_of(&reply))
        .unwrap();
    assert_eq!(handshake.state(), HandshakeState::Done);
    let (status, _) = server.accept(&last).unwrap();
    assert_eq!(status, SecurityStatus::Ok);
}

#[test]
fn spnego_wrong_password_rejected() {
    let mut server = Acceptor::new(PASSWORD);
    let mut handshake = client("not-the-password");

    let first = handshake.negotiate_header().unwrap();
    let (_, reply) = server.accept(&first).unwrap();
    let last = handshake
        .authenticate_header(&challenge_of(&reply))
        .unwrap();

    let outcome = server.accept(&last);
    assert!(
        !matches!(outcome, Ok((SecurityStatus::Ok, _))),
        "the acceptor accepted a wrong password: {outcome:?}"
    );
}

#[test]
fn spnego_raw_ntlm_challenge_rejected() {
    let mut handshake = client(PASSWORD);
    handshake.negotiate_header().unwrap();
    // A server that responds to a NegTokenInit with a bare NTLM CHALLENGE_MESSAGE.
    let raw = parse_challenges(["Negotiate TlRMTVNTUAACAAAAAAAAAAAAAAA="]).unwrap();
    let error = handshake.authenticate_header(&raw).unwrap_err();
    assert!(
        matches!(error, exmux_core::auth::AuthError::InvalidChallenge { .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains("method = \"ntlm\""), "{error}");
}

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn spnego_trace_log_redacts() {
    let capture = Capture::default();
    let writer = capture.clone();
    let dispatch = tracing::Dispatch::new(
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_writer(move || writer.clone())
            .finish(),
    );
    let mut server = Acceptor::new(PASSWORD);

    // Only the client runs under the subscriber, because the acceptor plays the server.
    let (mut handshake, first) = tracing::dispatcher::with_default(&dispatch, || {
        let mut handshake = client(PASSWORD);
        let first = handshake.negotiate_header().unwrap();
        (handshake, first)
    });
    let (_, reply) = server.accept(&first).unwrap();
    let last = tracing::dispatcher::with_default(&dispatch, || {
        let last = handshake
            .authenticate_header(&challenge_of(&reply))
            .unwrap();
        tracing::debug!(?handshake, "handshake done");
        last
    });
    assert_eq!(server.accept(&last).unwrap().0, SecurityStatus::Ok);

    let logged = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
    let utf16: Vec<u8> = PASSWORD.encode_utf16().flat_map(u16::to_le_bytes).collect();
    let nt_hash = Md4::digest(&utf16);
    let forms = [
        PASSWORD.to_owned(),
        STANDARD.encode(PASSWORD),
        nt_hash.iter().map(|byte| format!("{byte:02x}")).collect(),
        STANDARD.encode(nt_hash),
        format!("{:?}", PASSWORD.as_bytes()),
        format!("{:?}", nt_hash.as_slice()),
    ];
    for form in forms {
        assert!(!logged.contains(&form), "the trace log leaks {form:?}");
    }
    assert!(!format!("{handshake:?}").contains(PASSWORD));
}
