//! EWS (Exchange Web Services) for exmux: a sans-I/O SOAP codec with typed operations,
//! notifications and errors, and an HTTP client over reqwest.
//!
//! The codec modules ([`xml`], [`soap`], [`types`], [`operation`], [`ops`], [`error`])
//! do no I/O: they turn typed requests into bytes and bytes into typed responses, in both
//! directions (the client writes requests and reads responses; the emulator reads
//! requests and writes responses).

pub mod client;
pub mod subscription;
pub mod throttle;

pub mod error;
#[doc(hidden)]
pub mod fuzzing;
pub mod ids;
pub mod operation;
pub mod ops;
#[doc(hidden)]
pub mod sample;
pub mod soap;
pub mod types;
pub mod xml;

pub use error::{
    EwsError, MessageError, ResponseClass, ResponseCode, SoapFault, ThrottleHint, throttle_hint,
};
pub use operation::{
    EwsOperation, EwsServerOperation, RequestHeader, Response, decode_request, decode_response,
    encode_request, encode_response,
};
pub use soap::XmlWriter;
