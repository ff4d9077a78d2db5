//! The operation contract: each EWS operation writes its request body and parses its
//! response; the emulator's side parses requests and writes responses.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use crate::error::{EwsError, MessageError};
use crate::soap::{self, EnvelopeReader, XmlWriter};
use crate::types::ServerVersionInfo;
use crate::xml::Element;

pub use crate::soap::RequestHeader;

/// One EWS operation as the client uses it.
pub trait EwsOperation {
    /// The typed response.
    type Response;
    /// The operation name (`SyncFolderItems`); also the SOAPAction suffix.
    const NAME: &'static str;

    /// Writes the body element (the child of `soap:Body`) in schema order.
    ///
    /// # Errors
    /// [`EwsError::InvalidRequest`] when a value cannot be sent (an empty id list).
    fn write_body(&self, w: &mut XmlWriter) -> Result<(), EwsError>;

    /// Parses a whole response envelope. SOAP faults come back as [`EwsError::Fault`]
    /// with HTTP status 0; [`decode_response`] fills the status in.
    ///
    /// # Errors
    /// Any [`EwsError`] but `InvalidRequest`.
    fn parse_response(body: &[u8]) -> Result<Self::Response, EwsError>;
}

/// The server side of an operation: what the emulator needs.
pub trait EwsServerOperation: EwsOperation + Sized {
    /// Builds the request from the body element of a parsed request.
    ///
    /// # Errors
    /// [`EwsError::Unexpected`] when required children are missing.
    fn from_request(body: &Element) -> Result<Self, EwsError>;

    /// Writes the response body element for `response`.
    ///
    /// # Errors
    /// [`EwsError::InvalidRequest`] for values that cannot be written.
    fn write_response(response: &Self::Response, w: &mut XmlWriter) -> Result<(), EwsError>;
}

/// A response with one result per response message, in request order: one failed item
/// never hides the others. Warning-class messages are delivered as `Ok`.
#[derive(Debug, Clone, PartialEq)]
pub struct Response<T> {
    /// ServerVersionInfo from the SOAP header.
    pub server_version: Option<ServerVersionInfo>,
    /// One result per response message.
    pub messages: Vec<Result<T, MessageError>>,
}

impl<T> Response<T> {
    /// A response with these messages and no version header.
    pub fn new(messages: Vec<Result<T, MessageError>>) -> Self {
        Self {
            server_version: None,
            messages,
        }
    }

    /// The single message of a one-message operation (SyncFolderItems, FindItem,
    /// Subscribe, ...).
    ///
    /// # Errors
    /// [`EwsError::Message`] with the message's error, or [`EwsError::Unexpected`] when
    /// the response holds no message.
    pub fn into_single(self, operation: &'static str) -> Result<T, EwsError> {
        match self.messages.into_iter().next() {
            Some(Ok(v)) => Ok(v),
            Some(Err(error)) => Err(EwsError::Message {
                operation,
                error: Box::new(error),
            }),
            None => Err(EwsError::Unexpected {
                operation,
                expected: "one response message",
                found: "no response message".into(),
            }),
        }
    }
}

/// Writes a whole request envelope for `op`.
///
/// # Errors
/// Whatever the operation's [`EwsOperation::write_body`] returns.
pub fn encode_request<O: EwsOperation>(
    op: &O,
    header: &RequestHeader,
) -> Result<Vec<u8>, EwsError> {
    soap::write_request_envelope(header, |w| op.write_body(w))
}

/// Decodes an HTTP response for `O`, whatever the status: a SOAP envelope is parsed
/// (faults included, with the status filled in); a non-XML body becomes
/// [`EwsError::NotXml`].
///
/// # Errors
/// [`EwsError::Fault`], [`EwsError::NotXml`], [`EwsError::MalformedXml`],
/// [`EwsError::Unexpected`], [`EwsError::NotImplemented`].
pub fn decode_response<O: EwsOperation>(
    status: u16,
    content_type: Option<&str>,
    body: &[u8],
) -> Result<O::Response, EwsError> {
    soap::check_xml_body(O::NAME, status, content_type, body)?;
    O::parse_response(body).map_err(|e| match e {
        EwsError::Fault(mut f) => {
            f.http_status = status;
            EwsError::Fault(f)
        }
        other => other,
    })
}

/// Decodes an HTTP response to an operation exmux does not implement: its envelope, and
/// each response message's ResponseClass and ResponseCode.
///
/// # Errors
/// As [`decode_response`].
pub fn decode_unimplemented(
    status: u16,
    content_type: Option<&str>,
    body: &[u8],
) -> Result<crate::error::UnimplementedResponse, EwsError> {
    soap::check_xml_body("(unimplemented)", status, content_type, body)?;
    soap::parse_generic_response(body).map_err(|e| match e {
        EwsError::Fault(mut f) => {
            f.http_status = status;
            EwsError::Fault(f)
        }
        other => other,
    })
}

/// Writes a whole response envelope for `O` (the emulator's side).
///
/// # Errors
/// Whatever [`EwsServerOperation::write_response`] returns.
pub fn encode_response<O: EwsServerOperation>(
    response: &O::Response,
    info: Option<&ServerVersionInfo>,
) -> Result<Vec<u8>, EwsError> {
    soap::write_response_envelope(info, |w| O::write_response(response, w))
}

/// Parses a request envelope into `O` (the emulator's side).
///
/// # Errors
/// [`EwsError::MalformedXml`] or [`EwsError::Unexpected`], also when the body element
/// is another operation.
pub fn decode_request<O: EwsServerOperation>(
    body: &[u8],
) -> Result<(soap::ParsedRequest, O), EwsError> {
    let req = soap::parse_request(body)?;
    if req.body.name != O::NAME {
        return Err(EwsError::Unexpected {
            operation: O::NAME,
            expected: "this operation's element",
            found: req.body.name.into_owned(),
        });
    }
    let op = O::from_request(&req.body)?;
    Ok((req, op))
}

/// Parses a response envelope whose body element is `response_element`, applying `f` to
/// each successful response message (in order). Another `...Response` element yields
/// [`EwsError::NotImplemented`].
pub(crate) fn parse_messages<T>(
    input: &[u8],
    operation: &'static str,
    response_element: &str,
    f: impl Fn(&Element) -> Result<T, EwsError>,
) -> Result<Response<T>, EwsError> {
    let env = EnvelopeReader::open(input, operation)?;
    let server_version = env.server_version();
    let (body, _) = env.body_tree()?;
    check_body_element(&body, operation, response_element)?;
    let mut messages = Vec::new();
    if let Some(rm) = body.child("ResponseMessages") {
        for (index, msg) in rm.children.iter().enumerate() {
            match soap::message_status(msg, index, operation)? {
                Ok(_) => messages.push(Ok(f(msg)?)),
                Err(e) => messages.push(Err(e)),
            }
        }
    }
    Ok(Response {
        server_version,
        messages,
    })
}

pub(crate) fn check_body_element(
    body: &Element,
    operation: &'static str,
    expected: &str,
) -> Result<(), EwsError> {
    if body.is(expected) {
        return Ok(());
    }
    if body.ns.is_ews() && body.name.ends_with("Response") {
        return Err(EwsError::NotImplemented(Box::new(soap::unimplemented_of(
            body.clone(),
        ))));
    }
    Err(EwsError::Unexpected {
        operation,
        expected: "the operation's response element",
        found: body.name.to_string(),
    })
}

pub(crate) fn missing(operation: &'static str, expected: &'static str) -> EwsError {
    EwsError::Unexpected {
        operation,
        expected,
        found: "nothing".into(),
    }
}
