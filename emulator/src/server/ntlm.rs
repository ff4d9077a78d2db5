//! The server side of NTLM (MS-NLMP), through the `sspi` crate's NTLM acceptor.
//!
//! NTLM authenticates a TCP connection, not a request: the NEGOTIATE message and the
//! AUTHENTICATE message must arrive on the connection that received the CHALLENGE, so
//! one [`NtlmAcceptor`] lives in each connection's state.

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use exmux_core::Secret;
use sspi::{
    AuthIdentity, BufferType, CredentialUse, DataRepresentation, Ntlm, SecurityBuffer,
    SecurityStatus, ServerRequestFlags, Sspi, SspiImpl, Username,
};

/// NTLMSSP_NEGOTIATE_TARGET_INFO (MS-NLMP 2.2.2.5). The `sspi` acceptor reads and checks
/// the AUTHENTICATE message's MIC only when this flag is set, and the MIC is the only
/// place where it proves that the client knew the password.
const NEGOTIATE_TARGET_INFO: u32 = 0x0080_0000;

/// The message types of MS-NLMP 2.2.1.
const NEGOTIATE_MESSAGE: u32 = 1;
const AUTHENTICATE_MESSAGE: u32 = 3;

/// Why an NTLM message was rejected. The text never contains a credential.
#[derive(Debug, thiserror::Error)]
pub(crate) enum NtlmRejection {
    #[error("the NTLM message is shorter than its 12-byte header")]
    Truncated,
    #[error("the NTLM message has type {0}, expected {1}")]
    UnexpectedType(u32, u32),
    #[error("the AUTHENTICATE message carries no MIC (NEGOTIATE_TARGET_INFO is clear)")]
    NoMic,
    #[error("the NTLM acceptor rejected the message: {0}")]
    Acceptor(String),
    #[error("the NTLM user {0:?} is not the emulator's user")]
    WrongUser(String),
}

/// Reads the message type of an NTLM message (MS-NLMP 2.2.1: the 8-byte signature
/// `NTLMSSP\0`, then a little-endian 32-bit type).
pub(crate) fn message_type(message: &[u8]) -> Result<u32, NtlmRejection> {
    let signature = message.get(..8).ok_or(NtlmRejection::Truncated)?;
    if signature != b"NTLMSSP\0" {
        return Err(NtlmRejection::Acceptor(
            "missing the NTLMSSP signature".to_owned(),
        ));
    }
    let bytes = message.get(8..12).ok_or(NtlmRejection::Truncated)?;
    let mut word = [0_u8; 4];
    word.copy_from_slice(bytes);
    Ok(u32::from_le_bytes(word))
}

/// One connection's NTLM handshake, between the CHALLENGE it sent and the
/// AUTHENTICATE it expects.
pub(crate) struct NtlmAcceptor {
    ntlm: Ntlm,
    credentials: Option<sspi::AuthIdentityBuffers>,
}

impl std::fmt::Debug for NtlmAcceptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NtlmAcceptor")
    }
}

impl NtlmAcceptor {
    /// Reads a NEGOTIATE message and returns the acceptor waiting for AUTHENTICATE,
    /// plus the CHALLENGE message to send.
    pub(crate) fn start(
        negotiate: &[u8],
        username: &str,
        password: &Secret,
    ) -> Result<(Self, Vec<u8>), NtlmRejection> {
        let kind = message_type(negotiate)?;
        if kind != NEGOTIATE_MESSAGE {
            return Err(NtlmRejection::UnexpectedType(kind, NEGOTIATE_MESSAGE));
        }

        let mut ntlm = Ntlm::new();
        let identity = AuthIdentity {
            username: Username::parse(username)
                .map_err(|e| NtlmRejection::Acceptor(e.to_string()))?,
            password: password.expose().to_owned().into(),
        };
        let acquired = ntlm
            .acquire_credentials_handle()
            .with_credential_use(CredentialUse::Inbound)
            .with_auth_data(&identity)
            .execute(&mut ntlm)
            .map_err(acceptor_error)?;
        let mut acceptor = Self {
            ntlm,
            credentials: acquired.credentials_handle,
        };

        let challenge = acceptor.step(negotiate)?.1;
        Ok((acceptor, challenge))
    }

    /// Reads the AUTHENTICATE message and checks it against the password; returns the
    /// user name the client authenticated as.
    pub(crate) fn finish(
        mut self,
        authenticate: &[u8],
        expected_user: &str,
    ) -> Result<String, NtlmRejection> {
        let kind = message_type(authenticate)?;
        if kind != AUTHENTICATE_MESSAGE {
            return Err(NtlmRejection::UnexpectedType(kind, AUTHENTICATE_MESSAGE));
        }
        // NegotiateFlags sit at offset 60 of the AUTHENTICATE message (MS-NLMP 2.2.1.3).
        let flags_bytes = authenticate.get(60..64).ok_or(NtlmRejection::Truncated)?;
        let mut word = [0_u8; 4];
        word.copy_from_slice(flags_bytes);
        // NOTE: this also rejects NTLMv1-era clients that never send a MIC; every
        // NTLMv2 client this project targets sends one.
        if u32::from_le_bytes(word) & NEGOTIATE_TARGET_INFO == 0 {
            return Err(NtlmRejection::NoMic);
        }

        let (status, _) = self.step(authenticate)?;
        if matches!(
            status,
            SecurityStatus::CompleteNeeded | SecurityStatus::CompleteAndContinue
        ) {
            let mut output = [SecurityBuffer::new(Vec::new(), BufferType::Token)];
            self.ntlm
                .complete_auth_token(&mut output)
                .map_err(acceptor_error)?;
        }

        let names = self.ntlm.query_context_names().map_err(acceptor_error)?;
        let account = names.username.account_name().to_owned();
        if user_matches(&account, expected_user) {
            Ok(expected_user.to_owned())
        } else {
            Err(NtlmRejection::WrongUser(account))
        }
    }

    fn step(&mut self, input: &[u8]) -> Result<(SecurityStatus, Vec<u8>), NtlmRejection> {
        let mut input = [SecurityBuffer::new(input.to_vec(), BufferType::Token)];
        let mut output = [SecurityBuffer::new(Vec::new(), BufferType::Token)];
        let builder = self
            .ntlm
            .accept_security_context()
            .with_credentials_handle(&mut self.credentials)
            .with_context_requirements(ServerRequestFlags::ALLOCATE_MEMORY)
            .with_target_data_representation(DataRepresentation::Native)
            .with_input(&mut input)
            .with_output(&mut output);
        let result = self
            .ntlm
            .accept_security_context_impl(builder)
            .map_err(acceptor_error)?
            .resolve_to_result()
            .map_err(acceptor_error)?;
        let [token] = output;
        Ok((result.status, token.buffer))
    }
}

/// Accepts the configured user name, its local part (`user1` for `user1@example.test`),
/// or either of them as the wire account name, ignoring ASCII case as Windows does.
fn user_matches(account: &str, expected: &str) -> bool {
    let local = expected.split('@').next().unwrap_or(expected);
    account.eq_ignore_ascii_case(expected) || account.eq_ignore_ascii_case(local)
}

fn acceptor_error(error: sspi::Error) -> NtlmRejection {
    NtlmRejection::Acceptor(format!("{:?}: {}", error.error_type, error.description))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_type_reads_header() {
        let mut message = b"NTLMSSP\0".to_vec();
        message.extend_from_slice(&3_u32.to_le_bytes());
        assert_eq!(message_type(&message).ok(), Some(3));
        assert!(matches!(
            message_type(b"NTLMSSP\0\x01"),
            Err(NtlmRejection::Truncated)
        ));
        assert!(message_type(b"NOTNTLM\0\x01\0\0\0").is_err());
    }

    #[test]
    fn user_match_accepts_local_part() {
        assert!(user_matches("USER1", "user1@example.test"));
        assert!(user_matches("user1@example.test", "user1@example.test"));
        assert!(!user_matches("user2", "user1@example.test"));
    }
}
