//! The client side of NTLM and Negotiate over HTTP (MS-NTHT), built on the `sspi` crate.
//!
//! The handshake is three messages on one TCP connection: the client sends a
//! NEGOTIATE_MESSAGE (type 1), the server responds 401 with a CHALLENGE_MESSAGE (type 2),
//! and the client repeats its request with an AUTHENTICATE_MESSAGE (type 3, MS-NLMP
//! 2.2.1). The server binds the result to the connection, so the HTTP driver must send
//! all three requests over the same connection; this module only produces the tokens.
//!
//! Under the `Negotiate` scheme (RFC 4559) the NTLM messages travel inside SPNEGO
//! (RFC 4178). The first token is a NegTokenInit that offers NTLM and carries the
//! NEGOTIATE_MESSAGE. The later ones are NegTokenResp messages that carry the
//! CHALLENGE_MESSAGE, then the AUTHENTICATE_MESSAGE with a `mechListMIC`. `sspi`'s
//! Negotiate package builds them, restricted to NTLM.
//!
//! NOTE: Kerberos is not attempted, because it needs a KDC and a service principal
//! name for the server, and no test here can provide either.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sspi::ntlm::NtlmConfig;
use sspi::{
    AuthIdentity, AuthIdentityBuffers, BufferType, ClientRequestFlags, CredentialUse,
    CredentialsBuffers, DataRepresentation, Negotiate, NegotiateConfig, Ntlm, SecurityBuffer,
    SecurityStatus, Sspi, SspiImpl, Username,
};

use super::challenge::{AuthScheme, Challenge};
use super::{AuthError, Credentials};
use crate::Secret;

/// The state of an [`NtlmHandshake`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum HandshakeState {
    /// Nothing sent yet: call [`NtlmHandshake::negotiate_header`].
    Start,
    /// The NEGOTIATE_MESSAGE was produced, and the driver awaits the server's 401.
    ExpectChallenge,
    /// The AUTHENTICATE_MESSAGE was produced. The handshake cannot be reused.
    Done,
}

/// The `sspi` package list of the Negotiate client: NTLM only, so that no Kerberos
/// ticket request or PKU2U exchange is tried.
const SPNEGO_PACKAGES: &str = "ntlm";

/// The security context behind a handshake, by scheme.
enum Mechanism {
    /// Raw NTLM messages, for the `NTLM` scheme.
    Ntlm {
        context: Box<Ntlm>,
        credentials: Option<AuthIdentityBuffers>,
    },
    /// NTLM messages wrapped in SPNEGO, for the `Negotiate` scheme.
    Spnego {
        context: Box<Negotiate>,
        credentials: Option<CredentialsBuffers>,
    },
}

/// One NTLM or Negotiate handshake for one connection.
///
/// The `Debug` output shows only the user name and the state: the password, the NT
/// hash that `sspi` derives from it and the session keys stay out of it.
pub struct NtlmHandshake {
    scheme: AuthScheme,
    username: String,
    mechanism: Mechanism,
    state: HandshakeState,
}

impl fmt::Debug for NtlmHandshake {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NtlmHandshake")
            .field("scheme", &self.scheme)
            .field("username", &self.username)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

fn sspi_failure(step: &str, username: &str, error: &sspi::Error) -> AuthError {
    // sspi's descriptions name message fields and statuses, never key material.
    AuthError::Ntlm {
        reason: format!(
            "{step} for {username} failed: {:?}: {}",
            error.error_type, error.description
        ),
    }
}

/// Splits `DOMAIN\user` or `user@domain` into the form `sspi` expects. A UPN is sent as
/// the user name with an empty domain, which Active Directory resolves (MS-NLMP 3.1.5.1.2).
fn parse_username(username: &str) -> Result<Username, AuthError> {
    let parsed = match username.split_once('\\') {
        Some((domain, account)) => Username::new(account, Some(domain)),
        None => Username::parse(username),
    };
    parsed.map_err(|error| AuthError::InvalidUsername {
        username: username.to_owned(),
        reason: error.to_string(),
    })
}

impl NtlmHandshake {
    /// Starts a handshake for `username` and `password` under `scheme`, which must be
    /// [`AuthScheme::Ntlm`] or [`AuthScheme::Negotiate`].
    ///
    /// # Errors
    ///
    /// [`AuthError::InvalidUsername`] when the user name is not `user`, `DOMAIN\user` or
    /// `user@domain`; [`AuthError::Ntlm`] when `sspi` cannot set up the credentials or
    /// the scheme is not NTLM-based.
    pub fn new(scheme: AuthScheme, username: &str, password: &Secret) -> Result<Self, AuthError> {
        if !matches!(scheme, AuthScheme::Ntlm | AuthScheme::Negotiate) {
            return Err(AuthError::Ntlm {
                reason: format!("the {scheme} scheme does not use an NTLM handshake"),
            });
        }

        let identity = AuthIdentity {
            username: parse_username(username)?,
            password: password.expose().to_owned().into(),
        };
        let acquire_failed =
            |error: sspi::Error| sspi_failure("acquiring NTLM credentials", username, &error);

        let mechanism = if scheme == AuthScheme::Negotiate {
            let config = NegotiateConfig::new(
                Box::new(NtlmConfig::default()),
                Some(SPNEGO_PACKAGES.to_owned()),
                String::new(),
            );
            let mut context = Box::new(Negotiate::new_client(config).map_err(acquire_failed)?);
            let acquired = context
                .acquire_credentials_handle()
                .with_credential_use(CredentialUse::Outbound)
                .with_auth_data(&sspi::Credentials::AuthIdentity(identity))
                .execute(&mut *context)
                .map_err(acquire_failed)?;
            Mechanism::Spnego {
                context,
                credentials: acquired.credentials_handle,
            }
        } else {
            let mut context = Box::new(Ntlm::new());
            let acquired = context
                .acquire_credentials_handle()
                .with_credential_use(CredentialUse::Outbound)
                .with_auth_data(&identity)
                .execute(&mut *context)
                .map_err(acquire_failed)?;
            Mechanism::Ntlm {
                context,
                credentials: acquired.credentials_handle,
            }
        };

        Ok(Self {
            scheme,
            username: username.to_owned(),
            mechanism,
            state: HandshakeState::Start,
        })
    }

    /// Starts a handshake from configured [`Credentials`] for the chosen `scheme`.
    ///
    /// # Errors
    ///
    /// As [`NtlmHandshake::new`], and [`AuthError::Ntlm`] for credentials without a
    /// password (Basic credentials are accepted: the user configured a password).
    pub fn from_credentials(
        scheme: AuthScheme,
        credentials: &Credentials,
    ) -> Result<Self, AuthError> {
        match credentials {
            Credentials::Ntlm { username, password }
            | Credentials::Negotiate { username, password }
            | Credentials::Basic { username, password } => Self::new(scheme, username, password),
            Credentials::Bearer(_) => Err(AuthError::Ntlm {
                reason: "bearer credentials cannot answer an NTLM challenge".to_owned(),
            }),
        }
    }

    /// Returns the handshake's state.
    pub fn state(&self) -> HandshakeState {
        self.state
    }

    /// Returns the scheme the tokens are sent under.
    pub fn scheme(&self) -> AuthScheme {
        self.scheme
    }

    /// Produces the first token: the NEGOTIATE_MESSAGE (type 1) for `NTLM`, or a SPNEGO
    /// NegTokenInit carrying it for `Negotiate`.
    ///
    /// # Errors
    ///
    /// [`AuthError::Ntlm`] when called twice or when `sspi` fails.
    pub fn negotiate_message(&mut self) -> Result<Vec<u8>, AuthError> {
        if self.state != HandshakeState::Start {
            return Err(AuthError::Ntlm {
                reason: "the NTLM handshake already sent its NEGOTIATE_MESSAGE".to_owned(),
            });
        }
        let token = self.step(None)?;
        self.state = HandshakeState::ExpectChallenge;
        Ok(token)
    }

    /// Produces the AUTHENTICATE_MESSAGE (type 3) for the server's CHALLENGE_MESSAGE.
    /// Under `Negotiate`, `challenge` is the server's SPNEGO NegTokenResp and the result
    /// a NegTokenResp carrying the AUTHENTICATE_MESSAGE and the `mechListMIC`.
    ///
    /// # Errors
    ///
    /// [`AuthError::Ntlm`] when no NEGOTIATE_MESSAGE was produced yet, or when `sspi`
    /// rejects the challenge (wrong signature, truncated fields).
    // NOTE: the server's final NegTokenResp, which carries its own mechListMIC, is not
    // read, so under Negotiate the server is authenticated by TLS only, as under NTLM.
    pub fn authenticate_message(&mut self, challenge: &[u8]) -> Result<Vec<u8>, AuthError> {
        if self.state != HandshakeState::ExpectChallenge {
            return Err(AuthError::Ntlm {
                reason: "the NTLM handshake got a challenge it did not expect".to_owned(),
            });
        }
        // A failed step leaves sspi's context unusable, so the state moves to Done first.
        self.state = HandshakeState::Done;
        self.step(Some(challenge))
    }

    /// Produces the `Authorization` value carrying the NEGOTIATE_MESSAGE.
    ///
    /// # Errors
    ///
    /// As [`NtlmHandshake::negotiate_message`].
    pub fn negotiate_header(&mut self) -> Result<Secret, AuthError> {
        let token = self.negotiate_message()?;
        Ok(Secret::new(format!(
            "{} {}",
            self.scheme.name(),
            STANDARD.encode(token)
        )))
    }

    /// Finds this handshake's scheme among the server's challenges, decodes its token
    /// and produces the `Authorization` value carrying the AUTHENTICATE_MESSAGE.
    ///
    /// # Errors
    ///
    /// [`AuthError::InvalidChallenge`] when no challenge of this scheme carries a token,
    /// or the token is not base64; otherwise as [`NtlmHandshake::authenticate_message`].
    pub fn authenticate_header(&mut self, challenges: &[Challenge]) -> Result<Secret, AuthError> {
        let token = challenges
            .iter()
            .filter(|challenge| challenge.known_scheme() == Some(self.scheme))
            .find_map(|challenge| challenge.token68.as_deref())
            .ok_or_else(|| AuthError::InvalidChallenge {
                reason: format!(
                    "the server's 401 carries no {} challenge token (offered: {}); the \
                     connection may have been closed between the handshake's requests",
                    self.scheme,
                    super::challenge::offered_list(challenges)
                ),
            })?;
        let bytes = STANDARD
            .decode(token)
            .map_err(|error| AuthError::InvalidChallenge {
                reason: format!("the {} challenge token is not base64: {error}", self.scheme),
            })?;

        if self.scheme == AuthScheme::Negotiate && bytes.starts_with(b"NTLMSSP\0") {
            return Err(AuthError::InvalidChallenge {
                reason: "the server answered the SPNEGO token under Negotiate with a raw NTLM \
                         CHALLENGE_MESSAGE: set [auth] method = \"ntlm\""
                    .to_owned(),
            });
        }
        let message = self.authenticate_message(&bytes)?;
        Ok(Secret::new(format!(
            "{} {}",
            self.scheme.name(),
            STANDARD.encode(message)
        )))
    }

    fn step(&mut self, input: Option<&[u8]>) -> Result<Vec<u8>, AuthError> {
        let step_name = match (&self.mechanism, input.is_some()) {
            (Mechanism::Ntlm { .. }, false) => "building the NTLM NEGOTIATE_MESSAGE",
            (Mechanism::Ntlm { .. }, true) => "building the NTLM AUTHENTICATE_MESSAGE",
            (Mechanism::Spnego { .. }, false) => "building the SPNEGO NegTokenInit",
            (Mechanism::Spnego { .. }, true) => "building the SPNEGO AUTHENTICATE token",
        };
        let failed = |error: sspi::Error| sspi_failure(step_name, &self.username, &error);
        let mut output = vec![SecurityBuffer::new(Vec::new(), BufferType::Token)];
        let mut input_buffers =
            input.map(|bytes| vec![SecurityBuffer::new(bytes.to_vec(), BufferType::Token)]);

        match &mut self.mechanism {
            Mechanism::Ntlm {
                context,
                credentials,
            } => {
                let mut builder = context
                    .initialize_security_context()
                    .with_credentials_handle(credentials)
                    .with_context_requirements(ClientRequestFlags::ALLOCATE_MEMORY)
                    .with_target_data_representation(DataRepresentation::Native)
                    .with_output(&mut output);
                if let Some(buffers) = input_buffers.as_mut() {
                    builder = builder.with_input(buffers);
                }
                let result = context
                    .initialize_security_context_impl(&mut builder)
                    .and_then(|mut generator| generator.resolve_to_result())
                    .map_err(failed)?;
                if matches!(
                    result.status,
                    SecurityStatus::CompleteAndContinue | SecurityStatus::CompleteNeeded
                ) {
                    context.complete_auth_token(&mut output).map_err(failed)?;
                }
            }
            Mechanism::Spnego {
                context,
                credentials,
            } => {
                let mut builder = context
                    .initialize_security_context()
                    .with_credentials_handle(credentials)
                    .with_context_requirements(ClientRequestFlags::ALLOCATE_MEMORY)
                    .with_target_data_representation(DataRepresentation::Native)
                    .with_output(&mut output);
                if let Some(buffers) = input_buffers.as_mut() {
                    builder = builder.with_input(buffers);
                }
                // With NTLM only, the Negotiate package never yields a network request
                // (those are for a KDC), so the generator resolves without I/O.
                let result = context
                    .initialize_security_context_impl(&mut builder)
                    .and_then(|mut generator| generator.resolve_to_result())
                    .map_err(failed)?;
                if matches!(
                    result.status,
                    SecurityStatus::CompleteAndContinue | SecurityStatus::CompleteNeeded
                ) {
                    context.complete_auth_token(&mut output).map_err(failed)?;
                }
            }
        }

        let token = output
            .into_iter()
            .next()
            .map(|buffer| buffer.buffer)
            .unwrap_or_default();
        if token.is_empty() {
            return Err(AuthError::Ntlm {
                reason: format!("{step_name} for {} produced an empty token", self.username),
            });
        }
        Ok(token)
    }
}
