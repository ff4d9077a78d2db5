//! Authentication before any handler runs: Basic (RFC 7617), bearer tokens (RFC 6750),
//! NTLM (MS-NLMP, bound to the TCP connection) and Negotiate (RFC 4559, NTLM inside
//! SPNEGO or raw), and the `401` challenges that announce them.

mod spnego;

use std::fmt;
use std::sync::{Arc, RwLock};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use exmux_core::Secret;
use http::header::{AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use http::{HeaderMap, HeaderValue, StatusCode};
use tracing::debug;

use self::spnego::{SpnegoAcceptor, SpnegoStep};
use super::ntlm::{NtlmAcceptor, message_type};
use super::routing::{AuthenticatedUser, EmuResponse, ResponseBody};

/// An authentication scheme the emulator can accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AuthScheme {
    /// HTTP Basic with the configured user and password.
    Basic,
    /// NTLM, with the handshake bound to one TCP connection.
    Ntlm,
    /// Negotiate: NTLM inside SPNEGO, as Windows clients send it, or raw NTLM tokens
    /// under the `Negotiate` name, which IIS also accepts. Kerberos is not offered,
    /// because it needs a KDC.
    Negotiate,
    /// OAuth2 bearer tokens: the static token, or one a [`TokenValidator`] accepts.
    Bearer,
}

impl AuthScheme {
    /// The scheme's name as it appears in `WWW-Authenticate` and `Authorization`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Basic => "Basic",
            Self::Ntlm => "NTLM",
            Self::Negotiate => "Negotiate",
            Self::Bearer => "Bearer",
        }
    }
}

/// How a `401` lists several challenges. Real servers do both, in either order, so
/// clients must parse both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ChallengeStyle {
    /// One `WWW-Authenticate` header per scheme, as IIS sends them.
    #[default]
    SeparateHeaders,
    /// One `WWW-Authenticate` header with the challenges joined by `", "`.
    OneHeader,
}

/// Which schemes the emulator accepts and how it announces them.
#[derive(Debug, Clone)]
pub struct AuthOptions {
    /// The accepted schemes, in the order their challenges appear in a `401`.
    pub schemes: Vec<AuthScheme>,
    /// Separate `WWW-Authenticate` headers or one joined header.
    pub challenge_style: ChallengeStyle,
    /// The `realm` parameter of the Basic and Bearer challenges.
    pub realm: String,
    /// An `authorization_uri` parameter for the Bearer challenge, as Exchange Online
    /// sends to point clients at the token endpoint.
    pub bearer_authorization_uri: Option<String>,
}

impl Default for AuthOptions {
    fn default() -> Self {
        Self {
            schemes: vec![AuthScheme::Ntlm, AuthScheme::Basic, AuthScheme::Bearer],
            challenge_style: ChallengeStyle::default(),
            realm: "127.0.0.1".to_owned(),
            bearer_authorization_uri: None,
        }
    }
}

/// Validates bearer tokens that someone other than the emulator's options issued, such
/// as the emulator's OAuth2 token endpoint.
pub trait TokenValidator: Send + Sync + fmt::Debug {
    /// Returns the user `token` was issued to, or `None` when the token is unknown or
    /// expired.
    fn validate(&self, token: &Secret) -> Option<String>;
}

/// The registered token validators, shared by every connection.
#[derive(Debug, Clone, Default)]
pub(crate) struct TokenValidators(Arc<RwLock<Vec<Arc<dyn TokenValidator>>>>);

impl TokenValidators {
    pub(crate) fn register(&self, validator: Arc<dyn TokenValidator>) {
        let mut validators = self
            .0
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        validators.push(validator);
    }

    fn validate(&self, token: &Secret) -> Option<String> {
        let validators = self
            .0
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        validators
            .iter()
            .find_map(|validator| validator.validate(token))
    }
}

/// The credentials the emulator accepts, with the options that announce them.
#[derive(Debug, Clone)]
pub(crate) struct Authenticator {
    pub(crate) options: AuthOptions,
    pub(crate) username: String,
    pub(crate) password: Secret,
    pub(crate) bearer_token: Option<Secret>,
    pub(crate) validators: TokenValidators,
}

/// A connection's authentication state: an NTLM or SPNEGO handshake waiting for the
/// client's next token, or the user the connection authenticated as through one.
#[derive(Debug, Default)]
pub(crate) struct ConnectionAuth {
    ntlm_pending: Option<NtlmAcceptor>,
    spnego_pending: Option<SpnegoAcceptor>,
    ntlm_user: Option<AuthenticatedUser>,
}

/// The outcome of checking one request.
#[derive(Debug)]
pub(crate) enum AuthOutcome {
    Authenticated(AuthenticatedUser),
    /// Send this `401` and do not run the handler.
    Challenge(EmuResponse),
}

impl Authenticator {
    /// Checks the request's `Authorization` header against the enabled schemes.
    pub(crate) fn authenticate(
        &self,
        headers: &HeaderMap,
        connection: &mut ConnectionAuth,
    ) -> AuthOutcome {
        let Some(value) = headers.get(AUTHORIZATION) else {
            // IIS keeps an NTLM-authenticated connection authenticated, so clients send
            // the handshake once per connection.
            if let Some(user) = &connection.ntlm_user {
                return AuthOutcome::Authenticated(user.clone());
            }
            return AuthOutcome::Challenge(self.challenge("no Authorization header"));
        };
        let Ok(value) = value.to_str() else {
            return AuthOutcome::Challenge(self.challenge("the Authorization header is not ASCII"));
        };
        let (scheme, credentials) = match value.split_once(' ') {
            Some((scheme, rest)) => (scheme, rest.trim()),
            None => (value, ""),
        };
        let scheme = self
            .options
            .schemes
            .iter()
            .copied()
            .find(|enabled| enabled.name().eq_ignore_ascii_case(scheme));

        match scheme {
            Some(AuthScheme::Basic) => self.check_basic(credentials),
            Some(AuthScheme::Bearer) => self.check_bearer(credentials),
            Some(AuthScheme::Ntlm) => self.step_ntlm(AuthScheme::Ntlm, credentials, connection),
            Some(AuthScheme::Negotiate) => self.step_negotiate(credentials, connection),
            None => AuthOutcome::Challenge(self.challenge("scheme not enabled")),
        }
    }

    fn check_basic(&self, credentials: &str) -> AuthOutcome {
        let decoded = BASE64
            .decode(credentials)
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok());
        let Some(decoded) = decoded else {
            return AuthOutcome::Challenge(
                self.challenge("Basic credentials are not base64 UTF-8"),
            );
        };
        let decoded = Secret::new(decoded);
        let Some((user, password)) = decoded.expose().split_once(':') else {
            return AuthOutcome::Challenge(self.challenge("Basic credentials have no ':'"));
        };

        if user.eq_ignore_ascii_case(&self.username)
            && constant_time_eq(password.as_bytes(), self.password.expose().as_bytes())
        {
            return AuthOutcome::Authenticated(AuthenticatedUser {
                name: self.username.clone(),
                scheme: Some(AuthScheme::Basic),
            });
        }
        AuthOutcome::Challenge(self.challenge("Basic user or password is wrong"))
    }

    fn check_bearer(&self, credentials: &str) -> AuthOutcome {
        let token = Secret::new(credentials);
        if token.is_empty() {
            return AuthOutcome::Challenge(self.challenge("empty bearer token"));
        }

        let static_match = self.bearer_token.as_ref().is_some_and(|expected| {
            constant_time_eq(expected.expose().as_bytes(), token.expose().as_bytes())
        });
        let user = if static_match {
            Some(self.username.clone())
        } else {
            self.validators.validate(&token)
        };
        match user {
            Some(name) => AuthOutcome::Authenticated(AuthenticatedUser {
                name,
                scheme: Some(AuthScheme::Bearer),
            }),
            None => AuthOutcome::Challenge(self.challenge("unknown bearer token")),
        }
    }

    /// Runs one step of a Negotiate handshake: raw NTLM tokens go through the NTLM
    /// acceptor, anything else through the SPNEGO acceptor.
    fn step_negotiate(&self, credentials: &str, connection: &mut ConnectionAuth) -> AuthOutcome {
        let Ok(token) = BASE64.decode(credentials) else {
            connection.spnego_pending = None;
            return AuthOutcome::Challenge(self.challenge("Negotiate token is not base64"));
        };
        if token.starts_with(b"NTLMSSP\0") {
            return self.step_ntlm(AuthScheme::Negotiate, credentials, connection);
        }

        // A NegTokenInit (an application-tagged [0x60] GSS-API token) restarts the
        // handshake; a NegTokenResp continues the pending one.
        let mut acceptor = if token.first() == Some(&0x60) {
            connection.ntlm_user = None;
            match SpnegoAcceptor::new(&self.username, &self.password) {
                Ok(acceptor) => acceptor,
                Err(rejection) => {
                    debug!(%rejection, "SPNEGO acceptor not created");
                    return AuthOutcome::Challenge(self.challenge("SPNEGO acceptor failed"));
                }
            }
        } else {
            match connection.spnego_pending.take() {
                Some(acceptor) => acceptor,
                None => {
                    return AuthOutcome::Challenge(self.challenge(
                        "SPNEGO response token without a handshake on this connection",
                    ));
                }
            }
        };

        match acceptor.step(&token, &self.username) {
            Ok(SpnegoStep::Continue(reply)) => {
                connection.spnego_pending = Some(acceptor);
                let value = format!("Negotiate {}", BASE64.encode(reply));
                AuthOutcome::Challenge(unauthorized(vec![value], "SPNEGO continue"))
            }
            Ok(SpnegoStep::Done(name)) => {
                let user = AuthenticatedUser {
                    name,
                    scheme: Some(AuthScheme::Negotiate),
                };
                connection.ntlm_user = Some(user.clone());
                AuthOutcome::Authenticated(user)
            }
            Err(rejection) => {
                debug!(%rejection, "SPNEGO token rejected");
                AuthOutcome::Challenge(self.challenge("Negotiate authentication failed"))
            }
        }
    }

    /// Runs one step of an NTLM handshake whose tokens travel under `scheme`, which is
    /// `NTLM` or, for raw NTLM under Negotiate, `Negotiate`.
    fn step_ntlm(
        &self,
        scheme: AuthScheme,
        credentials: &str,
        connection: &mut ConnectionAuth,
    ) -> AuthOutcome {
        let Ok(message) = BASE64.decode(credentials) else {
            connection.ntlm_pending = None;
            return AuthOutcome::Challenge(self.challenge("NTLM token is not base64"));
        };

        match message_type(&message) {
            Ok(1) => {
                connection.ntlm_user = None;
                match NtlmAcceptor::start(&message, &self.username, &self.password) {
                    Ok((acceptor, challenge)) => {
                        connection.ntlm_pending = Some(acceptor);
                        let value = format!("{} {}", scheme.name(), BASE64.encode(challenge));
                        AuthOutcome::Challenge(unauthorized(vec![value], "NTLM challenge"))
                    }
                    Err(rejection) => {
                        debug!(%rejection, "NTLM negotiate message rejected");
                        AuthOutcome::Challenge(self.challenge("NTLM negotiate message rejected"))
                    }
                }
            }
            Ok(3) => {
                let Some(acceptor) = connection.ntlm_pending.take() else {
                    return AuthOutcome::Challenge(self.challenge(
                        "NTLM authenticate message without a challenge on this connection",
                    ));
                };
                match acceptor.finish(&message, &self.username) {
                    Ok(name) => {
                        let user = AuthenticatedUser {
                            name,
                            scheme: Some(scheme),
                        };
                        connection.ntlm_user = Some(user.clone());
                        AuthOutcome::Authenticated(user)
                    }
                    Err(rejection) => {
                        debug!(%rejection, "NTLM authenticate message rejected");
                        AuthOutcome::Challenge(self.challenge("NTLM authentication failed"))
                    }
                }
            }
            Ok(_) | Err(_) => {
                connection.ntlm_pending = None;
                AuthOutcome::Challenge(
                    self.challenge("not an NTLM negotiate or authenticate message"),
                )
            }
        }
    }

    /// Builds the `401` that lists every enabled scheme, in the configured style.
    pub(crate) fn challenge(&self, reason: &'static str) -> EmuResponse {
        debug!(reason, "answering 401");
        let challenges: Vec<String> = self
            .options
            .schemes
            .iter()
            .map(|scheme| match scheme {
                AuthScheme::Basic => format!("Basic realm=\"{}\"", self.options.realm),
                AuthScheme::Ntlm => "NTLM".to_owned(),
                AuthScheme::Negotiate => "Negotiate".to_owned(),
                AuthScheme::Bearer => match &self.options.bearer_authorization_uri {
                    Some(uri) => format!(
                        "Bearer realm=\"{}\", authorization_uri=\"{uri}\"",
                        self.options.realm
                    ),
                    None => format!("Bearer realm=\"{}\"", self.options.realm),
                },
            })
            .collect();
        let values = match self.options.challenge_style {
            ChallengeStyle::SeparateHeaders => challenges,
            ChallengeStyle::OneHeader if challenges.is_empty() => challenges,
            ChallengeStyle::OneHeader => vec![challenges.join(", ")],
        };
        unauthorized(values, reason)
    }
}

fn unauthorized(challenges: Vec<String>, reason: &'static str) -> EmuResponse {
    let mut response =
        http::Response::new(ResponseBody::from(format!("401 Unauthorized: {reason}\n")));
    *response.status_mut() = StatusCode::UNAUTHORIZED;
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    for challenge in challenges {
        if let Ok(value) = HeaderValue::from_str(&challenge) {
            headers.append(WWW_AUTHENTICATE, value);
        }
    }
    response
}

/// Compares two byte strings in time that depends only on their lengths.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0_u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn authenticator(style: ChallengeStyle) -> Authenticator {
        Authenticator {
            options: AuthOptions {
                challenge_style: style,
                ..AuthOptions::default()
            },
            username: "user1@example.test".to_owned(),
            password: Secret::new("pa55word"),
            bearer_token: Some(Secret::new("static-token")),
            validators: TokenValidators::default(),
        }
    }

    fn header(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn basic_accepts_configured_user() {
        let auth = authenticator(ChallengeStyle::SeparateHeaders);
        let value = format!("Basic {}", BASE64.encode("USER1@example.test:pa55word"));
        let outcome = auth.authenticate(&header(&value), &mut ConnectionAuth::default());
        assert!(
            matches!(outcome, AuthOutcome::Authenticated(user) if user.scheme == Some(AuthScheme::Basic))
        );
    }

    #[test]
    fn basic_rejects_wrong_password() {
        let auth = authenticator(ChallengeStyle::SeparateHeaders);
        let value = format!("Basic {}", BASE64.encode("user1@example.test:wrong"));
        let outcome = auth.authenticate(&header(&value), &mut ConnectionAuth::default());
        assert!(
            matches!(outcome, AuthOutcome::Challenge(response) if response.status() == StatusCode::UNAUTHORIZED)
        );
    }

    #[test]
    fn challenge_styles_list_every_scheme() {
        let separate = authenticator(ChallengeStyle::SeparateHeaders).challenge("test");
        let values: Vec<_> = separate
            .headers()
            .get_all(WWW_AUTHENTICATE)
            .iter()
            .collect();
        assert_eq!(values.len(), 3);
        assert_eq!(values[0], "NTLM");

        let joined = authenticator(ChallengeStyle::OneHeader).challenge("test");
        let values: Vec<_> = joined.headers().get_all(WWW_AUTHENTICATE).iter().collect();
        assert_eq!(values.len(), 1);
        assert_eq!(
            values[0],
            "NTLM, Basic realm=\"127.0.0.1\", Bearer realm=\"127.0.0.1\""
        );
    }

    fn negotiate_authenticator() -> Authenticator {
        let mut auth = authenticator(ChallengeStyle::SeparateHeaders);
        auth.options.schemes = vec![AuthScheme::Negotiate, AuthScheme::Ntlm];
        auth
    }

    /// Returns the token of the `401`'s `Negotiate` challenge, as the client parses it.
    fn negotiate_challenges(outcome: AuthOutcome) -> Vec<exmux_core::auth::Challenge> {
        let AuthOutcome::Challenge(response) = outcome else {
            panic!("expected a 401, got {outcome:?}");
        };
        let values: Vec<&str> = response
            .headers()
            .get_all(WWW_AUTHENTICATE)
            .iter()
            .map(|value| value.to_str().unwrap())
            .collect();
        exmux_core::auth::parse_challenges(values).unwrap()
    }

    /// Runs the client's three-leg Negotiate handshake on one connection and returns
    /// the outcome of the last request.
    fn negotiate_handshake(
        auth: &Authenticator,
        connection: &mut ConnectionAuth,
        scheme: exmux_core::auth::AuthScheme,
        password: &str,
    ) -> AuthOutcome {
        let mut client = exmux_core::auth::NtlmHandshake::new(
            scheme,
            "user1@example.test",
            &Secret::new(password),
        )
        .unwrap();
        let first = client.negotiate_header().unwrap();
        let challenges =
            negotiate_challenges(auth.authenticate(&header(first.expose()), connection));
        let last = client.authenticate_header(&challenges).unwrap();
        auth.authenticate(&header(last.expose()), connection)
    }

    #[test]
    fn negotiate_accepts_spnego_handshake() {
        let auth = negotiate_authenticator();
        let mut connection = ConnectionAuth::default();
        let mut client = exmux_core::auth::NtlmHandshake::new(
            exmux_core::auth::AuthScheme::Negotiate,
            "user1@example.test",
            &Secret::new("pa55word"),
        )
        .unwrap();

        let first = client.negotiate_header().unwrap();
        let first_token = BASE64
            .decode(first.expose().strip_prefix("Negotiate ").unwrap())
            .unwrap();
        // A GSS-API InitialContextToken (RFC 2743 section 3.1), not a raw NTLM message.
        assert_eq!(first_token.first(), Some(&0x60));
        assert!(!first_token.starts_with(b"NTLMSSP\0"));

        let challenges =
            negotiate_challenges(auth.authenticate(&header(first.expose()), &mut connection));
        assert_eq!(challenges.len(), 1);
        assert_eq!(challenges[0].scheme, "Negotiate");
        let reply = BASE64
            .decode(challenges[0].token68.as_deref().unwrap())
            .unwrap();
        // A NegTokenResp is context tag [1] (RFC 4178 section 4.2).
        assert_eq!(reply.first(), Some(&0xa1));

        let last = client.authenticate_header(&challenges).unwrap();
        let outcome = auth.authenticate(&header(last.expose()), &mut connection);
        let AuthOutcome::Authenticated(user) = outcome else {
            panic!("expected authentication, got {outcome:?}");
        };
        assert_eq!(user.name, "user1@example.test");
        assert_eq!(user.scheme, Some(AuthScheme::Negotiate));

        // The connection stays authenticated, as on IIS.
        let next = auth.authenticate(&HeaderMap::new(), &mut connection);
        assert!(matches!(next, AuthOutcome::Authenticated(_)));
    }

    #[test]
    fn negotiate_rejects_wrong_password() {
        let auth = negotiate_authenticator();
        let mut connection = ConnectionAuth::default();
        let outcome = negotiate_handshake(
            &auth,
            &mut connection,
            exmux_core::auth::AuthScheme::Negotiate,
            "wrong-password",
        );
        assert!(
            matches!(outcome, AuthOutcome::Challenge(ref response) if response.status() == StatusCode::UNAUTHORIZED),
            "{outcome:?}"
        );
        let next = auth.authenticate(&HeaderMap::new(), &mut connection);
        assert!(matches!(next, AuthOutcome::Challenge(_)));
    }

    #[test]
    fn negotiate_needs_one_connection() {
        let auth = negotiate_authenticator();
        let mut client = exmux_core::auth::NtlmHandshake::new(
            exmux_core::auth::AuthScheme::Negotiate,
            "user1@example.test",
            &Secret::new("pa55word"),
        )
        .unwrap();
        let first = client.negotiate_header().unwrap();
        let challenges = negotiate_challenges(
            auth.authenticate(&header(first.expose()), &mut ConnectionAuth::default()),
        );
        let last = client.authenticate_header(&challenges).unwrap();

        // The last token on another connection finds no handshake to continue.
        let outcome = auth.authenticate(&header(last.expose()), &mut ConnectionAuth::default());
        assert!(matches!(outcome, AuthOutcome::Challenge(_)), "{outcome:?}");
    }

    #[test]
    fn negotiate_accepts_raw_ntlm_tokens() {
        let auth = negotiate_authenticator();
        let mut connection = ConnectionAuth::default();
        let mut client = exmux_core::auth::NtlmHandshake::new(
            exmux_core::auth::AuthScheme::Ntlm,
            "user1@example.test",
            &Secret::new("pa55word"),
        )
        .unwrap();
        let first = client.negotiate_header().unwrap();
        let raw = first.expose().replacen("NTLM ", "Negotiate ", 1);
        let challenges = negotiate_challenges(auth.authenticate(&header(&raw), &mut connection));
        assert_eq!(challenges[0].scheme, "Negotiate");

        // The NTLM client reads its CHALLENGE under the NTLM name.
        let renamed: Vec<_> = challenges
            .iter()
            .map(|challenge| format!("NTLM {}", challenge.token68.as_deref().unwrap_or_default()))
            .collect();
        let renamed =
            exmux_core::auth::parse_challenges(renamed.iter().map(String::as_str)).unwrap();
        let last = client.authenticate_header(&renamed).unwrap();
        let last = last.expose().replacen("NTLM ", "Negotiate ", 1);
        let outcome = auth.authenticate(&header(&last), &mut connection);
        assert!(
            matches!(outcome, AuthOutcome::Authenticated(ref user) if user.scheme == Some(AuthScheme::Negotiate)),
            "{outcome:?}"
        );
    }

    #[test]
    fn negotiate_challenge_is_listed() {
        let auth = negotiate_authenticator();
        let response = auth.challenge("test");
        let values: Vec<_> = response
            .headers()
            .get_all(WWW_AUTHENTICATE)
            .iter()
            .collect();
        assert_eq!(values, ["Negotiate", "NTLM"]);
    }

    #[test]
    fn constant_time_eq_compares_bytes() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
