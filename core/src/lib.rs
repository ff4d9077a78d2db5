//! Shared pieces of exmux that every other crate builds on.
//!
//! - [`secret`]: the one redacting wrapper for passwords, tokens, cookies and
//!   `Authorization` values.
//! - [`clock`]: the injectable clock. State machines take time as an input so a test of a
//!   45-second heartbeat runs in microseconds.
//!
//! - [`auth`]: credentials, challenge parsing, NTLM and Negotiate tokens, OAuth2 flows
//!   and the token provider trait.
//! - [`http`]: HTTP and TLS options and the `reqwest::Client` they build.
//! - [`redact`]: secret header values replaced for recordings.
//! - [`dial`]: the connections a client owns for NTLM and Negotiate, through a proxy
//!   tunnel when one is configured.
//!
//! Only [`auth::oauth`] and [`dial`] perform network I/O.

pub mod auth;
pub mod clock;
pub mod dial;
pub mod http;
pub mod redact;
pub mod secret;

pub use clock::{Clock, ManualClock, SystemClock};
pub use secret::Secret;
