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
//!
//! Only [`auth::oauth`] performs network I/O, through the caller's `reqwest::Client`.

pub mod auth;
pub mod clock;
pub mod http;
pub mod secret;

pub use clock::{Clock, ManualClock, SystemClock};
pub use secret::Secret;
