//! EWS (Exchange Web Services) for exmux: a sans-I/O SOAP codec with typed operations,
//! notifications and errors, and an HTTP client over reqwest.

pub mod client;
pub mod subscription;
pub mod throttle;
