//! SOAP 1.1 envelopes for EWS: writing requests and responses, reading the header
//! (ServerVersionInfo, RequestServerVersion, ExchangeImpersonation), faults and response
//! messages (MS-OXWSCDATA 2.2.4.67).
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use crate::error::{
    EwsError, MessageError, MessageXml, ResponseClass, ResponseCode, SoapFault,
    UnimplementedResponse,
};
use crate::types::{Impersonation, ServerVersion, ServerVersionInfo};
use crate::xml::{self, Element, NS_MESSAGES, NS_SOAP, NS_TYPES, Ns, Step, XmlReader};

/// A minimal XML writer for EWS bodies. Element names carry the fixed prefixes `soap:`,
/// `m:` and `t:`, which the root element of every body declares.
#[derive(Debug, Default)]
pub struct XmlWriter {
    out: Vec<u8>,
    open: Vec<&'static str>,
}

impl XmlWriter {
    /// An empty writer.
    pub fn new() -> Self {
        Self::default()
    }

    /// The bytes written so far.
    pub fn into_bytes(self) -> Vec<u8> {
        self.out
    }

    /// The bytes written so far, borrowed.
    pub fn as_bytes(&self) -> &[u8] {
        &self.out
    }

    fn write_start(&mut self, name: &str, attrs: &[(&str, &str)]) {
        self.out.push(b'<');
        self.out.extend_from_slice(name.as_bytes());
        for (k, v) in attrs {
            self.out.push(b' ');
            self.out.extend_from_slice(k.as_bytes());
            self.out.extend_from_slice(b"=\"");
            xml::escape_into(&mut self.out, v);
            self.out.push(b'"');
        }
    }

    /// Opens the root element of a SOAP body, declaring the `m:` and `t:` namespaces on
    /// it so that the body element stands alone (for schema validation too).
    pub fn start_root(&mut self, name: &'static str, attrs: &[(&str, &str)]) {
        self.write_start(name, attrs);
        self.out.extend_from_slice(b" xmlns:m=\"");
        self.out.extend_from_slice(NS_MESSAGES.as_bytes());
        self.out.extend_from_slice(b"\" xmlns:t=\"");
        self.out.extend_from_slice(NS_TYPES.as_bytes());
        self.out.extend_from_slice(b"\">");
        self.open.push(name);
    }

    /// Opens an element.
    pub fn start(&mut self, name: &'static str, attrs: &[(&str, &str)]) {
        self.write_start(name, attrs);
        self.out.push(b'>');
        self.open.push(name);
    }

    /// Closes the innermost open element.
    pub fn end(&mut self) {
        if let Some(name) = self.open.pop() {
            self.out.extend_from_slice(b"</");
            self.out.extend_from_slice(name.as_bytes());
            self.out.push(b'>');
        }
    }

    /// Writes an empty element.
    pub fn empty(&mut self, name: &str, attrs: &[(&str, &str)]) {
        self.write_start(name, attrs);
        self.out.extend_from_slice(b"/>");
    }

    /// Writes an element holding only text.
    pub fn text(&mut self, name: &str, text: &str) {
        self.write_start(name, &[]);
        self.out.push(b'>');
        xml::escape_into(&mut self.out, text);
        self.out.extend_from_slice(b"</");
        self.out.extend_from_slice(name.as_bytes());
        self.out.push(b'>');
    }

    /// Writes an element holding text, when there is a value.
    pub fn opt_text(&mut self, name: &str, text: Option<&str>) {
        if let Some(t) = text {
            self.text(name, t);
        }
    }

    /// Writes `true`/`false`.
    pub fn bool(&mut self, name: &str, value: bool) {
        self.text(name, if value { "true" } else { "false" });
    }

    /// Writes an element from a parsed [`Element`] (used for MessageXml), under the
    /// `t:` prefix.
    pub fn element(&mut self, e: &Element) {
        let name = format!("t:{}", e.name);
        let attrs: Vec<(&str, &str)> = e
            .attrs
            .iter()
            .map(|(k, v)| (k.as_ref(), v.as_str()))
            .collect();
        self.write_start(&name, &attrs);
        self.out.push(b'>');
        xml::escape_into(&mut self.out, &e.text);
        for c in &e.children {
            self.element(c);
        }
        self.out.extend_from_slice(b"</");
        self.out.extend_from_slice(name.as_bytes());
        self.out.push(b'>');
    }

    pub(crate) fn out_mut(&mut self) -> &mut Vec<u8> {
        &mut self.out
    }

    fn raw(&mut self, s: &str) {
        self.out.extend_from_slice(s.as_bytes());
    }
}

/// Header values of a request (MS-OXWSCDATA 2.2.4.x RequestServerVersion,
/// ExchangeImpersonation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHeader {
    /// RequestServerVersion; Exchange2013_SP1 by default.
    pub version: ServerVersion,
    /// ExchangeImpersonation, when acting for another mailbox.
    pub impersonation: Option<Impersonation>,
}

impl Default for RequestHeader {
    fn default() -> Self {
        Self {
            version: ServerVersion::Exchange2013_SP1,
            impersonation: None,
        }
    }
}

fn envelope_start(w: &mut XmlWriter) {
    w.raw("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<soap:Envelope xmlns:soap=\"");
    w.raw(NS_SOAP);
    w.raw("\" xmlns:t=\"");
    w.raw(NS_TYPES);
    w.raw("\" xmlns:m=\"");
    w.raw(NS_MESSAGES);
    w.raw("\">");
}

/// Writes a request envelope: header, then the body written by `body`.
///
/// # Errors
/// Whatever `body` returns.
pub fn write_request_envelope(
    header: &RequestHeader,
    body: impl FnOnce(&mut XmlWriter) -> Result<(), EwsError>,
) -> Result<Vec<u8>, EwsError> {
    let mut w = XmlWriter::new();
    envelope_start(&mut w);
    w.raw("<soap:Header>");
    w.empty(
        "t:RequestServerVersion",
        &[("Version", header.version.as_str())],
    );
    if let Some(imp) = &header.impersonation {
        w.start("t:ExchangeImpersonation", &[]);
        w.start("t:ConnectingSID", &[]);
        let (name, value) = imp.element();
        w.text(name, value);
        w.end();
        w.end();
    }
    w.raw("</soap:Header><soap:Body>");
    body(&mut w)?;
    w.raw("</soap:Body></soap:Envelope>");
    Ok(w.into_bytes())
}

/// Writes a response envelope with a ServerVersionInfo header, then the body.
///
/// # Errors
/// Whatever `body` returns.
pub fn write_response_envelope(
    info: Option<&ServerVersionInfo>,
    body: impl FnOnce(&mut XmlWriter) -> Result<(), EwsError>,
) -> Result<Vec<u8>, EwsError> {
    let mut w = XmlWriter::new();
    envelope_start(&mut w);
    w.raw("<soap:Header>");
    if let Some(info) = info {
        let major = info.major.to_string();
        let minor = info.minor.to_string();
        let major_build = info.major_build.to_string();
        let minor_build = info.minor_build.to_string();
        let mut attrs = vec![
            ("MajorVersion", major.as_str()),
            ("MinorVersion", minor.as_str()),
            ("MajorBuildNumber", major_build.as_str()),
            ("MinorBuildNumber", minor_build.as_str()),
        ];
        if let Some(v) = &info.version {
            attrs.push(("Version", v.as_str()));
        }
        w.empty("t:ServerVersionInfo", &attrs);
    }
    w.raw("</soap:Header><soap:Body>");
    body(&mut w)?;
    w.raw("</soap:Body></soap:Envelope>");
    Ok(w.into_bytes())
}

/// Writes a SOAP fault envelope with an EWS detail, as Exchange does for ErrorServerBusy
/// and schema errors.
pub fn write_fault(fault: &SoapFault) -> Vec<u8> {
    let mut w = XmlWriter::new();
    envelope_start(&mut w);
    w.raw("<soap:Body><soap:Fault>");
    w.text("faultcode", &fault.faultcode);
    w.text("faultstring", &fault.faultstring);
    if fault.response_code.is_some()
        || fault.message.is_some()
        || !fault.message_xml.elements.is_empty()
    {
        w.raw("<detail>");
        if let Some(code) = &fault.response_code {
            w.raw("<e:ResponseCode xmlns:e=\"http://schemas.microsoft.com/exchange/services/2006/errors\">");
            xml::escape_into(&mut w.out, code.as_str());
            w.raw("</e:ResponseCode>");
        }
        if let Some(msg) = &fault.message {
            w.raw("<e:Message xmlns:e=\"http://schemas.microsoft.com/exchange/services/2006/errors\">");
            xml::escape_into(&mut w.out, msg);
            w.raw("</e:Message>");
        }
        if !fault.message_xml.elements.is_empty() {
            w.raw("<t:MessageXml>");
            for e in &fault.message_xml.elements {
                w.element(e);
            }
            w.raw("</t:MessageXml>");
        }
        w.raw("</detail>");
    }
    w.raw("</soap:Fault></soap:Body></soap:Envelope>");
    w.into_bytes()
}

/// Writes the common part of a response message (MS-OXWSCDATA 2.2.4.67): the element,
/// ResponseClass, MessageText, ResponseCode and MessageXml, in schema order; `content`
/// writes the operation-specific children (only for success and warning).
pub fn write_message<T>(
    w: &mut XmlWriter,
    element: &'static str,
    result: &Result<T, MessageError>,
    content: impl FnOnce(&mut XmlWriter, &T) -> Result<(), EwsError>,
) -> Result<(), EwsError> {
    match result {
        Ok(value) => {
            w.start(element, &[("ResponseClass", "Success")]);
            w.text("m:ResponseCode", "NoError");
            content(w, value)?;
        }
        Err(err) => {
            w.start(element, &[("ResponseClass", err.class.as_str())]);
            w.opt_text("m:MessageText", err.text.as_deref());
            w.text("m:ResponseCode", err.code.as_str());
            w.text("m:DescriptiveLinkKey", "0");
            if !err.message_xml.elements.is_empty() {
                w.start("m:MessageXml", &[]);
                for e in &err.message_xml.elements {
                    w.element(e);
                }
                w.end();
            }
            // Item and folder info messages require their (empty) container, as
            // Exchange writes it.
            match element {
                "m:GetItemResponseMessage"
                | "m:CreateItemResponseMessage"
                | "m:UpdateItemResponseMessage"
                | "m:MoveItemResponseMessage"
                | "m:CopyItemResponseMessage" => w.empty("m:Items", &[]),
                "m:GetFolderResponseMessage"
                | "m:CreateFolderResponseMessage"
                | "m:UpdateFolderResponseMessage"
                | "m:MoveFolderResponseMessage" => w.empty("m:Folders", &[]),
                _ => {}
            }
        }
    }
    w.end();
    Ok(())
}

/// A request or response envelope read up to the start of its body element.
pub struct EnvelopeReader<'a> {
    /// The reader, positioned just after the body element's start tag.
    pub reader: XmlReader<'a>,
    /// The SOAP header's children.
    pub header: Vec<Element>,
    /// The body element's start (without content).
    pub body: Element,
    /// Whether the body element was empty (`<x/>`).
    pub body_empty: bool,
}

impl<'a> EnvelopeReader<'a> {
    /// Reads the envelope of `input` up to its body element. A SOAP fault in the body is
    /// returned as [`EwsError::Fault`] with HTTP status 0 (the caller knows the status).
    ///
    /// # Errors
    /// [`EwsError::MalformedXml`], [`EwsError::Fault`], or [`EwsError::Unexpected`] when
    /// the document is not a SOAP envelope with a body element.
    pub fn open(input: &'a [u8], operation: &'static str) -> Result<Self, EwsError> {
        let unexpected = |expected: &'static str, found: String| EwsError::Unexpected {
            operation,
            expected,
            found,
        };
        let mut reader = XmlReader::new(input);
        let (root, root_empty) = loop {
            match reader.next_step()? {
                Step::Start { element, empty } => break (element, empty),
                Step::Text(_) => {}
                Step::End | Step::Eof => {
                    return Err(unexpected("a soap:Envelope", "no element".into()));
                }
            }
        };
        if root.ns != Ns::Soap || root.name != "Envelope" || root_empty {
            return Err(unexpected("a soap:Envelope", describe(&root)));
        }
        let mut header = Vec::new();
        loop {
            let Some((el, empty)) = reader.next_child()? else {
                return Err(unexpected("a soap:Body", "the end of the envelope".into()));
            };
            if el.ns == Ns::Soap && el.name == "Header" {
                let h = reader.complete(el, empty)?;
                header = h.children;
                continue;
            }
            if el.ns == Ns::Soap && el.name == "Body" {
                if empty {
                    return Err(unexpected("a body element", "an empty soap:Body".into()));
                }
                break;
            }
            reader.complete(el, empty)?;
        }
        let Some((body, body_empty)) = reader.next_child()? else {
            return Err(unexpected("a body element", "an empty soap:Body".into()));
        };
        if body.ns == Ns::Soap && body.name == "Fault" {
            let fault = reader.complete(body, body_empty)?;
            return Err(EwsError::Fault(Box::new(parse_fault(&fault, 0))));
        }
        Ok(Self {
            reader,
            header,
            body,
            body_empty,
        })
    }

    /// The ServerVersionInfo of a response header.
    pub fn server_version(&self) -> Option<ServerVersionInfo> {
        self.header
            .iter()
            .find(|e| e.is("ServerVersionInfo"))
            .map(ServerVersionInfo::from_element)
    }

    /// Reads the rest of the body element as a tree.
    ///
    /// # Errors
    /// As [`XmlReader::next_step`].
    pub fn body_tree(mut self) -> Result<(Element, Vec<Element>), EwsError> {
        let body = self.reader.complete(self.body, self.body_empty)?;
        finish(&mut self.reader)?;
        Ok((body, self.header))
    }
}

/// Reads the rest of a document, checking that it is well-formed and complete.
///
/// # Errors
/// [`EwsError::MalformedXml`] for a document that is cut short or has content after its
/// root element.
pub fn finish(reader: &mut XmlReader<'_>) -> Result<(), EwsError> {
    loop {
        match reader.next_step()? {
            Step::Eof if reader.depth() == 0 => return Ok(()),
            Step::Eof => {
                return Err(EwsError::MalformedXml {
                    offset: reader.position(),
                    reason: "the document ends before its root element is closed".into(),
                });
            }
            Step::Start { .. } if reader.depth() <= 1 => {
                return Err(EwsError::MalformedXml {
                    offset: reader.position(),
                    reason: "content after the root element".into(),
                });
            }
            _ => {}
        }
    }
}

fn describe(e: &Element) -> String {
    format!("<{}> ({:?} namespace)", e.name, e.ns)
}

/// Builds a [`SoapFault`] from a parsed `soap:Fault` element.
pub fn parse_fault(fault: &Element, http_status: u16) -> SoapFault {
    // faultcode, faultstring and detail are unqualified in SOAP 1.1; some servers qualify
    // them, so match the local name in any namespace.
    let any = |name: &str| fault.children.iter().find(|c| c.name == name);
    let faultcode = any("faultcode")
        .map(|c| c.text.trim().to_owned())
        .unwrap_or_default();
    let faultstring = any("faultstring")
        .map(|c| c.text.trim().to_owned())
        .unwrap_or_default();
    let detail = any("detail");
    let detail_child = |name: &str| detail.and_then(|d| d.children.iter().find(|c| c.name == name));
    let code_local = faultcode.rsplit(':').next().unwrap_or_default();
    let response_code = detail_child("ResponseCode")
        .map(|c| ResponseCode::parse(&c.text))
        .or_else(|| {
            code_local
                .starts_with("Error")
                .then(|| ResponseCode::parse(code_local))
        });
    let message = detail_child("Message").map(|c| c.text.trim().to_owned());
    let message_xml = MessageXml {
        elements: detail_child("MessageXml")
            .map(|m| m.children.clone())
            .unwrap_or_default(),
    };
    SoapFault {
        http_status,
        faultcode,
        faultstring,
        response_code,
        message,
        message_xml,
    }
}

/// One response message's common part.
pub struct MessageHead {
    /// ResponseClass.
    pub class: ResponseClass,
    /// ResponseCode (NoError when absent in a Success message).
    pub code: ResponseCode,
}

/// Reads the common part of a response message; `Err` holds the message's error when the
/// class is Error.
///
/// # Errors
/// The outer `Result` fails with [`EwsError::Unexpected`] when ResponseClass is missing or
/// unknown.
pub fn message_status(
    msg: &Element,
    index: usize,
    operation: &'static str,
) -> Result<Result<MessageHead, MessageError>, EwsError> {
    let class = msg
        .attr("ResponseClass")
        .and_then(ResponseClass::parse)
        .ok_or_else(|| EwsError::Unexpected {
            operation,
            expected: "a ResponseClass of Success, Warning or Error",
            found: format!("{:?}", msg.attr("ResponseClass")),
        })?;
    let code = msg
        .child_text("ResponseCode")
        .map_or(ResponseCode::NoError, ResponseCode::parse);
    if class == ResponseClass::Error {
        return Ok(Err(message_error(msg, class, code, index)));
    }
    Ok(Ok(MessageHead { class, code }))
}

fn message_error(
    msg: &Element,
    class: ResponseClass,
    code: ResponseCode,
    index: usize,
) -> MessageError {
    MessageError {
        class,
        code,
        text: msg.child_text("MessageText").map(str::to_owned),
        message_xml: MessageXml {
            elements: msg
                .child("MessageXml")
                .map(|m| m.children.clone())
                .unwrap_or_default(),
        },
        index,
        conflict_count: msg
            .child("ConflictResults")
            .and_then(|c| c.child_text("Count"))
            .and_then(|c| c.parse().ok()),
        subscription_ids: msg
            .child("ErrorSubscriptionIds")
            .map(|e| {
                e.children_named("SubscriptionId")
                    .map(|s| s.text.trim().to_owned())
                    .collect()
            })
            .unwrap_or_default(),
    }
}

/// The per-message error of a Warning message, for callers that want it.
pub fn warning_of(msg: &Element, index: usize) -> Option<MessageError> {
    let class = msg.attr("ResponseClass").and_then(ResponseClass::parse)?;
    if class != ResponseClass::Warning {
        return None;
    }
    let code = msg
        .child_text("ResponseCode")
        .map_or(ResponseCode::NoError, ResponseCode::parse);
    Some(message_error(msg, class, code, index))
}

/// Reads any EWS response envelope generically: the body element's name and each
/// response message's ResponseClass and ResponseCode. This is the "operation not
/// implemented" path for ResolveNames, ExpandDL, GetAttachment, push notifications and
/// the like.
///
/// # Errors
/// [`EwsError::MalformedXml`], [`EwsError::Fault`] or [`EwsError::Unexpected`].
pub fn parse_generic_response(input: &[u8]) -> Result<UnimplementedResponse, EwsError> {
    let env = EnvelopeReader::open(input, "(any)")?;
    let (body, _) = env.body_tree()?;
    Ok(unimplemented_of(body))
}

pub(crate) fn unimplemented_of(body: Element) -> UnimplementedResponse {
    let codes = body
        .child("ResponseMessages")
        .map(|rm| {
            rm.children
                .iter()
                .filter_map(|m| {
                    let class = m.attr("ResponseClass").and_then(ResponseClass::parse)?;
                    let code = m
                        .child_text("ResponseCode")
                        .map_or(ResponseCode::NoError, ResponseCode::parse);
                    Some((class, code))
                })
                .collect()
        })
        .unwrap_or_default();
    UnimplementedResponse {
        element: body.name.to_string(),
        codes,
        body,
    }
}

/// A request as the emulator reads it: header values and the body element.
#[derive(Debug, Clone)]
pub struct ParsedRequest {
    /// RequestServerVersion, when sent.
    pub version: Option<ServerVersion>,
    /// ExchangeImpersonation, when sent.
    pub impersonation: Option<Impersonation>,
    /// The body element (`GetFolder`, `SyncFolderItems`, ...).
    pub body: Element,
}

impl ParsedRequest {
    /// The operation name: the body element's local name.
    pub fn operation(&self) -> &str {
        &self.body.name
    }
}

/// Reads a request envelope (the emulator's side).
///
/// # Errors
/// [`EwsError::MalformedXml`] or [`EwsError::Unexpected`] for a body that is not a SOAP
/// request.
pub fn parse_request(input: &[u8]) -> Result<ParsedRequest, EwsError> {
    let env = match EnvelopeReader::open(input, "(request)") {
        Ok(env) => env,
        Err(EwsError::Fault(_)) => {
            return Err(EwsError::Unexpected {
                operation: "(request)",
                expected: "a request element",
                found: "a soap:Fault".into(),
            });
        }
        Err(e) => return Err(e),
    };
    let version = env
        .header
        .iter()
        .find(|e| e.is("RequestServerVersion"))
        .and_then(|e| e.attr("Version"))
        .and_then(ServerVersion::parse);
    let impersonation = env
        .header
        .iter()
        .find(|e| e.is("ExchangeImpersonation"))
        .and_then(|e| e.child("ConnectingSID"))
        .and_then(|c| c.children.first())
        .and_then(Impersonation::from_element);
    let (body, _) = env.body_tree()?;
    Ok(ParsedRequest {
        version,
        impersonation,
        body,
    })
}

/// Classifies a body before XML parsing: empty bodies, HTML pages and plain text are not
/// SOAP.
pub(crate) fn check_xml_body(
    operation: &'static str,
    status: u16,
    content_type: Option<&str>,
    body: &[u8],
) -> Result<(), EwsError> {
    let trimmed = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    let first = trimmed.iter().position(|b| !b.is_ascii_whitespace());
    let starts_xml = first.and_then(|i| trimmed.get(i..)).is_some_and(|rest| {
        rest.starts_with(b"<")
            && !starts_with_ignore_case(rest, b"<html")
            && !starts_with_ignore_case(rest, b"<!doctype html")
    });
    let html_type = content_type.is_some_and(|ct| ct.to_ascii_lowercase().contains("text/html"));
    if starts_xml && !html_type {
        return Ok(());
    }
    let snippet: String =
        String::from_utf8_lossy(body.get(..body.len().min(200)).unwrap_or_default()).into_owned();
    Err(EwsError::NotXml {
        operation,
        status,
        content_type: content_type.unwrap_or("none").to_owned(),
        snippet,
    })
}

fn starts_with_ignore_case(hay: &[u8], needle: &[u8]) -> bool {
    hay.get(..needle.len())
        .is_some_and(|h| h.eq_ignore_ascii_case(needle))
}
