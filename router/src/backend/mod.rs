//! Adapters between the backends' results and the core's backend-neutral types.
//!
//! Each adapter is a set of pure functions: a backend result in, a core
//! [`Input`](crate::core::Input) part out. The async [`Transport`](crate::transport::Transport)
//! calls them; tests and simulations can call them on captured results directly.

pub mod ews;
pub mod mapi;
