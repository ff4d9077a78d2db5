//! Replacing the secret values of HTTP headers, for the recording hooks of the EWS
//! client and the MAPI/HTTP session.
//!
//! The values of `Authorization` and `Proxy-Authorization` lose everything after the
//! scheme, `Cookie` and `Set-Cookie` keep only cookie names and attributes, and the
//! tokens of `WWW-Authenticate` challenges are replaced while their auth parameters
//! (`realm="..."`) stay. Other headers are kept as they are.

use http::HeaderMap;
use http::header::{AUTHORIZATION, COOKIE, PROXY_AUTHORIZATION, SET_COOKIE, WWW_AUTHENTICATE};

/// The text that replaces a secret in a recorded header.
pub const REDACTED: &str = "[redacted]";

/// Returns `headers` as name and value pairs, in order, with the secret values replaced
/// by [`REDACTED`].
#[must_use]
pub fn redacted_headers(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(name, value)| {
            let text = String::from_utf8_lossy(value.as_bytes());
            let redacted = if name == AUTHORIZATION || name == PROXY_AUTHORIZATION {
                redact_credentials(&text)
            } else if name == COOKIE {
                redact_cookies(&text)
            } else if name == SET_COOKIE {
                redact_set_cookie(&text)
            } else if name == WWW_AUTHENTICATE {
                text.split(", ")
                    .map(redact_challenge)
                    .collect::<Vec<_>>()
                    .join(", ")
            } else {
                text.into_owned()
            };
            (name.as_str().to_owned(), redacted)
        })
        .collect()
}

/// Replaces the credentials of an `Authorization` value and keeps its scheme
/// (`Basic [redacted]`).
fn redact_credentials(value: &str) -> String {
    match value.split_once(' ') {
        Some((scheme, _)) => format!("{scheme} {REDACTED}"),
        None => REDACTED.to_owned(),
    }
}

/// Replaces the values of a `Cookie` header and keeps the cookie names.
fn redact_cookies(value: &str) -> String {
    value
        .split(';')
        .map(|pair| match pair.trim().split_once('=') {
            Some((name, _)) => format!("{name}={REDACTED}"),
            None => REDACTED.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Replaces the value of a `Set-Cookie` and keeps its cookie name and attributes.
fn redact_set_cookie(value: &str) -> String {
    let (pair, attributes) = value.split_once(';').unwrap_or((value, ""));
    let cookie = match pair.split_once('=') {
        Some((name, _)) => format!("{}={REDACTED}", name.trim()),
        None => REDACTED.to_owned(),
    };
    if attributes.is_empty() {
        cookie
    } else {
        format!("{cookie};{attributes}")
    }
}

/// Replaces the token of one challenge (`NTLM TlRM...`) and keeps auth parameters such
/// as `realm="..."`, which are not secret.
fn redact_challenge(part: &str) -> String {
    let Some((scheme, rest)) = part.trim().split_once(' ') else {
        return part.to_owned();
    };
    // token68 (RFC 9110 11.2): the characters of base64 and base64url, `=` padding last.
    let is_token = !rest.is_empty()
        && rest.trim_end_matches('=').bytes().all(|byte| {
            byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~' | b'+' | b'/')
        });
    if is_token {
        format!("{scheme} {REDACTED}")
    } else {
        part.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn value<'a>(redacted: &'a [(String, String)], name: &str) -> Option<&'a str> {
        redacted
            .iter()
            .find(|(header, _)| header == name)
            .map(|(_, value)| value.as_str())
    }

    #[test]
    fn secrets_replaced_names_kept() {
        let mut headers = HeaderMap::new();
        headers.insert(
            AUTHORIZATION,
            HeaderValue::from_static("Basic dXNlcjpwYXNz"),
        );
        headers.insert(
            PROXY_AUTHORIZATION,
            HeaderValue::from_static("Basic cHJveHk6cHc="),
        );
        headers.insert(
            COOKIE,
            HeaderValue::from_static("X-BackEndOverrideCookie=abc; MapiSequence=1"),
        );
        headers.insert(
            SET_COOKIE,
            HeaderValue::from_static("MapiContext=s3cr3t; path=/mapi/; HttpOnly"),
        );
        headers.insert(
            WWW_AUTHENTICATE,
            HeaderValue::from_static("NTLM TlRMTVNTUAACAAAA==, Basic realm=\"x\""),
        );
        headers.insert("soapaction", HeaderValue::from_static("GetItem"));

        let redacted = redacted_headers(&headers);
        assert_eq!(value(&redacted, "authorization"), Some("Basic [redacted]"));
        assert_eq!(
            value(&redacted, "proxy-authorization"),
            Some("Basic [redacted]")
        );
        assert_eq!(
            value(&redacted, "cookie"),
            Some("X-BackEndOverrideCookie=[redacted]; MapiSequence=[redacted]")
        );
        assert_eq!(
            value(&redacted, "set-cookie"),
            Some("MapiContext=[redacted]; path=/mapi/; HttpOnly")
        );
        assert_eq!(
            value(&redacted, "www-authenticate"),
            Some("NTLM [redacted], Basic realm=\"x\"")
        );
        assert_eq!(value(&redacted, "soapaction"), Some("GetItem"));
    }

    #[test]
    fn authorization_without_scheme_replaced() {
        assert_eq!(redact_credentials("opaque"), REDACTED);
    }

    #[test]
    fn challenge_token_replaced_realm_kept() {
        assert_eq!(
            redact_challenge("NTLM TlRMTVNTUAACAAAA=="),
            "NTLM [redacted]"
        );
        assert_eq!(redact_challenge("Basic realm=\"x\""), "Basic realm=\"x\"");
        assert_eq!(redact_challenge("Negotiate"), "Negotiate");
    }
}
