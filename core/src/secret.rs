//! A redacting wrapper for secrets.
//!
//! Every password, bearer token, refresh token, session cookie and `Authorization` header
//! value in exmux travels inside [`Secret`]. Its `Debug` and `Display` print
//! `[redacted]` in every build profile, so a secret cannot reach a log line or an error
//! message by formatting. Reading the value takes an explicit call to
//! [`Secret::expose`], which is easy to search for in review.

use std::fmt;

/// A secret string whose `Debug` and `Display` never show the value.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// Returns the secret value. Call this only where the value is sent on the wire.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Returns true when the secret is the empty string.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self(value.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_redact() {
        let secret = Secret::new("hunter2");
        assert!(!format!("{secret:?}").contains("hunter2"));
        assert!(!format!("{secret}").contains("hunter2"));
        assert_eq!(secret.expose(), "hunter2");
    }

    #[test]
    fn debug_of_containing_struct_redacts() {
        #[derive(Debug)]
        #[allow(dead_code)]
        struct Credentials {
            user: String,
            password: Secret,
        }
        let creds = Credentials {
            user: "user1".into(),
            password: Secret::new("p4ssw0rd"),
        };
        let text = format!("{creds:?}");
        assert!(text.contains("user1"));
        assert!(!text.contains("p4ssw0rd"));
    }
}
