//! `WWW-Authenticate` challenge parsing (RFC 7235 section 4.1) and scheme selection.
//!
//! Exchange behind IIS offers several schemes at once, either as separate
//! `WWW-Authenticate` headers or as one comma-joined value (an HTTP stack may join
//! repeated headers with ", "). The grammar is
//!
//! ```text
//! challenge  = auth-scheme [ 1*SP ( token68 / #auth-param ) ]
//! auth-param = token BWS "=" BWS ( token / quoted-string )
//! token68    = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
//! ```
//!
//! so a comma separates both challenges and the auth-params of one challenge. After a
//! comma, a token followed by `=` continues the current challenge's parameters, and any
//! other token starts a new challenge.

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::fmt;

use super::{AuthError, Credentials};

/// One challenge from a `WWW-Authenticate` header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Challenge {
    /// The scheme as the server spelled it (`NTLM`, `Negotiate`, `Basic`, `Bearer`).
    pub scheme: String,
    /// The token68 payload, such as a base64 NTLM CHALLENGE_MESSAGE.
    pub token68: Option<String>,
    /// The auth-params in order, names lowercased, quoted values unescaped.
    pub params: Vec<(String, String)>,
}

impl Challenge {
    /// Returns the value of the auth-param `name` (case-insensitive), such as `realm`.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// Returns the scheme when exmux implements it.
    pub fn known_scheme(&self) -> Option<AuthScheme> {
        AuthScheme::from_name(&self.scheme)
    }
}

/// The authentication schemes exmux implements, weakest first so that `Ord` ranks them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum AuthScheme {
    /// HTTP Basic (RFC 7617): the password travels in every request.
    Basic,
    /// NTLM over HTTP (MS-NTHT): a connection-bound challenge-response handshake.
    Ntlm,
    /// SPNEGO over HTTP (RFC 4559). exmux sends NTLM tokens inside it.
    Negotiate,
    /// OAuth2 bearer token (RFC 6750).
    Bearer,
}

impl AuthScheme {
    /// Parses a scheme name case-insensitively (RFC 7235 section 2.1).
    pub fn from_name(name: &str) -> Option<Self> {
        [Self::Basic, Self::Ntlm, Self::Negotiate, Self::Bearer]
            .into_iter()
            .find(|scheme| scheme.name().eq_ignore_ascii_case(name))
    }

    /// Returns the scheme's name as it appears in `Authorization` headers.
    pub fn name(self) -> &'static str {
        match self {
            Self::Basic => "Basic",
            Self::Ntlm => "NTLM",
            Self::Negotiate => "Negotiate",
            Self::Bearer => "Bearer",
        }
    }

    /// Returns the schemes `credentials` can respond to, strongest first.
    ///
    /// A password configured for one scheme is never sent with a weaker one: NTLM
    /// credentials do not fall back to Basic. Negotiate credentials also respond to a plain
    /// NTLM challenge because exmux's Negotiate carries NTLM anyway.
    pub fn allowed_for(credentials: &Credentials) -> &'static [AuthScheme] {
        match credentials {
            Credentials::Basic { .. } => &[Self::Basic],
            Credentials::Ntlm { .. } => &[Self::Ntlm],
            Credentials::Negotiate { .. } => &[Self::Negotiate, Self::Ntlm],
            Credentials::Bearer(_) => &[Self::Bearer],
        }
    }
}

impl fmt::Display for AuthScheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Parses every `WWW-Authenticate` value of one response into its challenges, in order.
///
/// Pass each header value separately; a value may itself hold several comma-joined
/// challenges. Empty list elements are skipped (RFC 7230 section 7).
///
/// # Errors
///
/// [`AuthError::InvalidChallenge`] when a value does not follow the grammar, such as an
/// unterminated quoted string or a parameter without a name. The message quotes the
/// offending header only up to the scheme, never a token.
pub fn parse_challenges<'a, I>(values: I) -> Result<Vec<Challenge>, AuthError>
where
    I: IntoIterator<Item = &'a str>,
{
    let mut challenges = Vec::new();
    for value in values {
        Parser::new(value).parse_into(&mut challenges)?;
    }
    Ok(challenges)
}

/// Picks the strongest challenge that `credentials` can answer.
///
/// # Errors
///
/// [`AuthError::UnsupportedSchemes`] listing the offered schemes when none fits, which
/// points at the configuration rather than at the password.
pub fn choose_challenge<'c>(
    challenges: &'c [Challenge],
    credentials: &Credentials,
) -> Result<(AuthScheme, &'c Challenge), AuthError> {
    for wanted in AuthScheme::allowed_for(credentials) {
        if let Some(challenge) = challenges
            .iter()
            .find(|challenge| challenge.known_scheme() == Some(*wanted))
        {
            return Ok((*wanted, challenge));
        }
    }

    Err(AuthError::UnsupportedSchemes {
        offered: offered_list(challenges),
    })
}

/// Returns the distinct offered scheme names joined by ", ", or "none".
pub fn offered_list(challenges: &[Challenge]) -> String {
    let mut names: Vec<&str> = Vec::new();
    for challenge in challenges {
        if !names
            .iter()
            .any(|name| name.eq_ignore_ascii_case(&challenge.scheme))
        {
            names.push(&challenge.scheme);
        }
    }
    if names.is_empty() {
        return "none".to_owned();
    }
    names.join(", ")
}

struct Parser<'a> {
    bytes: &'a [u8],
    text: &'a str,
    pos: usize,
}

fn is_tchar(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte)
}

fn is_token68_char(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"-._~+/".contains(&byte)
}

impl<'a> Parser<'a> {
    fn new(text: &'a str) -> Self {
        Self {
            bytes: text.as_bytes(),
            text,
            pos: 0,
        }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn peek_at(&self, pos: usize) -> Option<u8> {
        self.bytes.get(pos).copied()
    }

    fn skip_spaces(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.pos += 1;
        }
    }

    fn skip_spaces_and_commas(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b',')) {
            self.pos += 1;
        }
    }

    fn slice(&self, start: usize, end: usize) -> &'a str {
        self.text.get(start..end).unwrap_or("")
    }

    fn read_token(&mut self) -> &'a str {
        let start = self.pos;
        while self.peek().is_some_and(is_tchar) {
            self.pos += 1;
        }
        self.slice(start, self.pos)
    }

    fn invalid(&self, scheme: &str, what: &str) -> AuthError {
        AuthError::InvalidChallenge {
            reason: format!("{what} at byte {} of the {scheme:?} challenge", self.pos),
        }
    }

    /// Returns true when the text at `pos` is `token BWS "=" BWS` followed by something
    /// other than another `=`, a comma or the end: the start of an auth-param.
    fn auth_param_starts_at(&self, pos: usize) -> bool {
        let mut cursor = pos;
        while self.peek_at(cursor).is_some_and(is_tchar) {
            cursor += 1;
        }
        if cursor == pos {
            return false;
        }
        while matches!(self.peek_at(cursor), Some(b' ' | b'\t')) {
            cursor += 1;
        }
        if self.peek_at(cursor) != Some(b'=') {
            return false;
        }
        cursor += 1;
        while matches!(self.peek_at(cursor), Some(b' ' | b'\t')) {
            cursor += 1;
        }
        !matches!(self.peek_at(cursor), None | Some(b'=' | b','))
    }

    fn parse_into(&mut self, out: &mut Vec<Challenge>) -> Result<(), AuthError> {
        loop {
            self.skip_spaces_and_commas();
            if self.peek().is_none() {
                return Ok(());
            }

            let scheme = self.read_token();
            if scheme.is_empty() {
                return Err(AuthError::InvalidChallenge {
                    reason: format!(
                        "expected an authentication scheme at byte {} of a WWW-Authenticate value",
                        self.pos
                    ),
                });
            }
            let mut challenge = Challenge {
                scheme: scheme.to_owned(),
                token68: None,
                params: Vec::new(),
            };

            self.skip_spaces();
            if self.auth_param_starts_at(self.pos) {
                self.parse_params(&mut challenge)?;
            } else if self.peek().is_some_and(is_token68_char) {
                let start = self.pos;
                while self.peek().is_some_and(is_token68_char) {
                    self.pos += 1;
                }
                while self.peek() == Some(b'=') {
                    self.pos += 1;
                }
                challenge.token68 = Some(self.slice(start, self.pos).to_owned());
                self.skip_spaces();
            }

            match self.peek() {
                None | Some(b',') => out.push(challenge),
                Some(_) => return Err(self.invalid(scheme, "unexpected character")),
            }
        }
    }

    fn parse_params(&mut self, challenge: &mut Challenge) -> Result<(), AuthError> {
        loop {
            let name = self.read_token().to_ascii_lowercase();
            self.skip_spaces();
            if self.peek() != Some(b'=') {
                return Err(self.invalid(&challenge.scheme, "expected '=' after a parameter name"));
            }
            self.pos += 1;
            self.skip_spaces();

            let value = if self.peek() == Some(b'"') {
                self.read_quoted(&challenge.scheme)?
            } else {
                let token = self.read_token();
                if token.is_empty() {
                    return Err(self.invalid(&challenge.scheme, "missing parameter value"));
                }
                token.to_owned()
            };
            challenge.params.push((name, value));

            // A comma followed by another `name=` continues this challenge; anything
            // else after the comma belongs to the next challenge.
            self.skip_spaces();
            let mut lookahead = self.pos;
            while matches!(self.peek_at(lookahead), Some(b' ' | b'\t' | b',')) {
                lookahead += 1;
            }
            if self.peek() == Some(b',') && self.auth_param_starts_at(lookahead) {
                self.pos = lookahead;
                continue;
            }
            return Ok(());
        }
    }

    fn read_quoted(&mut self, scheme: &str) -> Result<String, AuthError> {
        // The caller saw the opening quote.
        self.pos += 1;
        let mut value = Vec::new();
        loop {
            match self.peek() {
                None => return Err(self.invalid(scheme, "unterminated quoted string")),
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(String::from_utf8_lossy(&value).into_owned());
                }
                Some(b'\\') => {
                    self.pos += 1;
                    let Some(escaped) = self.peek() else {
                        return Err(self.invalid(scheme, "unterminated quoted string"));
                    };
                    value.push(escaped);
                    self.pos += 1;
                }
                Some(byte) => {
                    value.push(byte);
                    self.pos += 1;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(value: &str) -> Vec<Challenge> {
        parse_challenges([value]).unwrap()
    }

    #[test]
    fn bare_schemes_comma_joined() {
        let parsed = one("Negotiate, NTLM");
        assert_eq!(parsed.len(), 2);
        assert_eq!(parsed[0].scheme, "Negotiate");
        assert_eq!(parsed[1].scheme, "NTLM");
        assert!(parsed[1].token68.is_none());
    }

    #[test]
    fn params_then_next_scheme() {
        let parsed = one(r#"Basic realm="mail.example.test", charset="UTF-8", NTLM abc+/=="#);
        assert_eq!(parsed.len(), 2);
        assert_eq!(parsed[0].param("realm"), Some("mail.example.test"));
        assert_eq!(parsed[0].param("charset"), Some("UTF-8"));
        assert_eq!(parsed[1].token68.as_deref(), Some("abc+/=="));
    }

    #[test]
    fn token68_then_params_of_next_challenge() {
        let parsed = one(r#"NTLM TlRMTVNTUAACAAAA, Bearer realm="x", error="invalid_token""#);
        assert_eq!(parsed.len(), 2);
        assert_eq!(parsed[0].token68.as_deref(), Some("TlRMTVNTUAACAAAA"));
        assert_eq!(parsed[1].param("error"), Some("invalid_token"));
    }

    #[test]
    fn quoted_string_with_escapes_and_commas() {
        let parsed = one(r#"Basic realm="a \"b\", c""#);
        assert_eq!(parsed.len(), 1);
        assert_eq!(parsed[0].param("realm"), Some(r#"a "b", c"#));
    }

    #[test]
    fn unquoted_param_value_and_spaces_around_equals() {
        let parsed = one("Bearer realm = contoso , scope=mail");
        assert_eq!(parsed[0].param("realm"), Some("contoso"));
        assert_eq!(parsed[0].param("scope"), Some("mail"));
    }

    #[test]
    fn empty_elements_are_skipped() {
        let parsed = one(" , Negotiate,, ,NTLM ,");
        assert_eq!(parsed.len(), 2);
    }

    #[test]
    fn unterminated_quote_is_invalid() {
        let error = parse_challenges([r#"Basic realm="open"#]).unwrap_err();
        assert!(matches!(error, AuthError::InvalidChallenge { .. }));
        assert!(error.to_string().contains("unterminated"));
    }

    #[test]
    fn garbage_after_token68_is_invalid() {
        assert!(parse_challenges(["NTLM abc== def"]).is_err());
    }

    #[test]
    fn scheme_names_are_case_insensitive() {
        assert_eq!(AuthScheme::from_name("ntlm"), Some(AuthScheme::Ntlm));
        assert_eq!(
            AuthScheme::from_name("NEGOTIATE"),
            Some(AuthScheme::Negotiate)
        );
        assert_eq!(AuthScheme::from_name("Digest"), None);
    }

    #[test]
    fn offered_list_deduplicates() {
        let parsed = parse_challenges(["Negotiate", "NTLM", "negotiate"]).unwrap();
        assert_eq!(offered_list(&parsed), "Negotiate, NTLM");
        assert_eq!(offered_list(&[]), "none");
    }

    proptest::proptest! {
        #[test]
        fn parser_never_panics(input in "\\PC{0,80}") {
            let _ = parse_challenges([input.as_str()]);
        }

        #[test]
        fn token68_round_trips(token in "[A-Za-z0-9+/]{1,40}={0,2}") {
            let header = format!("Negotiate, NTLM {token}, Basic realm=\"r\"");
            let parsed = parse_challenges([header.as_str()]).unwrap();
            proptest::prop_assert_eq!(parsed.len(), 3);
            proptest::prop_assert_eq!(parsed[1].token68.as_deref(), Some(token.as_str()));
        }
    }
}
