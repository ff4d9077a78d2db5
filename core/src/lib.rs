//! Shared pieces of exmux that every other crate builds on.
//!
//! - [`secret`]: the one redacting wrapper for passwords, tokens, cookies and
//!   `Authorization` values.
//! - [`clock`]: the injectable clock. State machines take time as an input so a test of a
//!   45-second heartbeat runs in microseconds.
//!
//! - [`auth`]: credentials and the token provider trait.
//!
//! This crate performs no network I/O.

pub mod auth;
pub mod clock;
pub mod secret;

pub use clock::{Clock, ManualClock, SystemClock};
pub use secret::Secret;
