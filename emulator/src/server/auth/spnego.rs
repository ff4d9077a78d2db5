//! The server side of SPNEGO (RFC 4178) with NTLM as the only mechanism, as IIS runs
//! it for the `Negotiate` scheme (RFC 4559) when no Kerberos ticket is offered, through
//! `sspi`'s Negotiate package.
//!
//! A client's NegTokenInit carries the NTLM NEGOTIATE_MESSAGE, the server's reply carries
//! the CHALLENGE_MESSAGE, and the client's NegTokenResp carries the AUTHENTICATE_MESSAGE
//! and a `mechListMIC`. MS-SPNG makes that `mechListMIC` mandatory when the NTLM
//! AUTHENTICATE_MESSAGE carries a MIC, and `sspi`'s acceptor accepts the client only
//! when it verifies. It is computed with a session key derived from the password, so
//! it proves that the client knew the password.

use exmux_core::Secret;
use sspi::ntlm::NtlmConfig;
use sspi::{
    AuthIdentity, BufferType, CredentialUse, CredentialsBuffers, DataRepresentation, Negotiate,
    NegotiateConfig, SecurityBuffer, SecurityStatus, ServerRequestFlags, Sspi, SspiImpl, Username,
};

/// The `sspi` package list of the acceptor: NTLM only, because a Kerberos acceptor
/// needs a service key from a KDC.
const PACKAGES: &str = "ntlm";

/// The emulator's name in the NTLM CHALLENGE_MESSAGE.
const SERVER_NAME: &str = "EXMUX-EMULATOR";

/// The reason a SPNEGO token was rejected. The text never contains a credential.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SpnegoRejection {
    #[error("the SPNEGO acceptor rejected the token: {0}")]
    Acceptor(String),
    #[error("the NTLM user {0:?} inside SPNEGO is not the emulator's user")]
    WrongUser(String),
}

/// The outcome of one accepted SPNEGO token.
#[derive(Debug)]
pub(crate) enum SpnegoStep {
    /// Send this NegTokenResp in a `401` and wait for the next token on the connection.
    Continue(Vec<u8>),
    /// The client is authenticated as this user, the name the emulator was configured
    /// with.
    // NOTE: IIS returns a final NegTokenResp with its own mechListMIC in the 200
    // response's WWW-Authenticate. The emulator drops it, because its handlers' responses
    // carry no authentication headers, and exmux's client does not verify it.
    Done(String),
}

/// One connection's SPNEGO handshake in progress.
pub(crate) struct SpnegoAcceptor {
    context: Box<Negotiate>,
    credentials: Option<CredentialsBuffers>,
}

impl std::fmt::Debug for SpnegoAcceptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SpnegoAcceptor")
    }
}

impl SpnegoAcceptor {
    /// Creates an acceptor that checks NTLM responses against `username` and
    /// `password`.
    pub(crate) fn new(username: &str, password: &Secret) -> Result<Self, SpnegoRejection> {
        let identity = AuthIdentity {
            username: Username::parse(username).map_err(|error| {
                SpnegoRejection::Acceptor(format!("invalid configured user: {error}"))
            })?,
            password: password.expose().to_owned().into(),
        };
        let config = NegotiateConfig::new(
            Box::new(NtlmConfig::new(SERVER_NAME.to_owned())),
            Some(PACKAGES.to_owned()),
            SERVER_NAME.to_owned(),
        );
        let mut context = Box::new(
            Negotiate::new_server(config, vec![identity.clone()]).map_err(acceptor_error)?,
        );
        let acquired = context
            .acquire_credentials_handle()
            .with_credential_use(CredentialUse::Inbound)
            .with_auth_data(&sspi::Credentials::AuthIdentity(identity))
            .execute(&mut *context)
            .map_err(acceptor_error)?;
        Ok(Self {
            context,
            credentials: acquired.credentials_handle,
        })
    }

    /// Reads the client's next SPNEGO token and returns the token to send back, or the
    /// authenticated user when the handshake is complete.
    pub(crate) fn step(
        &mut self,
        token: &[u8],
        expected_user: &str,
    ) -> Result<SpnegoStep, SpnegoRejection> {
        let mut input = [SecurityBuffer::new(token.to_vec(), BufferType::Token)];
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
            .accept_security_context_impl(builder)
            .map_err(acceptor_error)?
            .resolve_to_result()
            .map_err(acceptor_error)?;
        let [reply] = output;

        match result.status {
            SecurityStatus::ContinueNeeded => Ok(SpnegoStep::Continue(reply.buffer)),
            // sspi reports Ok only once the mechListMIC verified, except for the guest
            // account, which then fails the user check.
            SecurityStatus::Ok => {
                let names = self.context.query_context_names().map_err(acceptor_error)?;
                let account = names.username.account_name().to_owned();
                if !user_matches(&account, expected_user) {
                    return Err(SpnegoRejection::WrongUser(account));
                }
                Ok(SpnegoStep::Done(expected_user.to_owned()))
            }
            other => Err(SpnegoRejection::Acceptor(format!(
                "unexpected status {other:?}"
            ))),
        }
    }
}

/// Accepts the configured user name or its local part (`user1` for
/// `user1@example.test`), ignoring ASCII case as Windows does.
fn user_matches(account: &str, expected: &str) -> bool {
    let local = expected.split('@').next().unwrap_or(expected);
    account.eq_ignore_ascii_case(expected) || account.eq_ignore_ascii_case(local)
}

fn acceptor_error(error: sspi::Error) -> SpnegoRejection {
    SpnegoRejection::Acceptor(format!("{:?}: {}", error.error_type, error.description))
}
