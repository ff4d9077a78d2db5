//! `exmux decode`: a captured EWS SOAP message or MAPI/HTTP body, decoded down to its
//! elements, ROPs and properties.
//!
//! A MAPI/HTTP file may contain the body alone or start with the HTTP start line and
//! headers, as `captures/` `.headers` and `.body` files joined or a proxy's dump. The
//! request type then comes from `X-RequestType` (MS-OXCMAPIHTTP 2.2.3.1.6).

use exmux_ews::xml::{Element, parse_document};
use exmux_mapihttp::body::{
    BindRequest, ConnectRequest, ConnectResponse, DisconnectRequest, DisconnectResponse,
    ExecuteRequest, ExecuteResponse, NotificationWaitRequest, NotificationWaitResponse,
    Response as MapiResponse, WireBody,
};
use exmux_mapihttp::http::{RequestType, parse_body};
use serde_json::{Value, json};

/// The content type of a captured file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    /// An EWS SOAP request or response.
    Ews,
    /// A MAPI/HTTP request body.
    MapiRequest,
    /// A MAPI/HTTP response body.
    MapiResponse,
}

/// An error decoding a captured file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The EWS message is not well-formed XML.
    #[error("not a well-formed EWS message: {0}; check that the file contains one SOAP envelope")]
    Ews(String),
    /// The MAPI/HTTP body does not fit its request type's layout.
    #[error(
        "not a MAPI/HTTP {request_type} {direction} body: {message}; pass --request-type if the file has no X-RequestType header"
    )]
    Mapi {
        /// The request type tried.
        request_type: String,
        /// `request` or `response`.
        direction: &'static str,
        /// The decoder's message.
        message: String,
    },
}

/// A decoded file: its structure as JSON, and the same as indented text.
#[derive(Clone, Debug, PartialEq)]
pub struct Decoded {
    /// The structure.
    pub json: Value,
}

fn element_json(element: &Element) -> Value {
    let attrs: serde_json::Map<String, Value> = element
        .attrs
        .iter()
        .map(|(name, value)| (name.to_string(), Value::String(value.clone())))
        .collect();
    let mut object = serde_json::Map::new();
    object.insert("name".into(), Value::String(element.name.to_string()));
    if !attrs.is_empty() {
        object.insert("attributes".into(), Value::Object(attrs));
    }
    let text = element.text.trim();
    if !text.is_empty() {
        object.insert("text".into(), Value::String(text.to_owned()));
    }
    if !element.children.is_empty() {
        object.insert(
            "children".into(),
            Value::Array(element.children.iter().map(element_json).collect()),
        );
    }
    Value::Object(object)
}

/// Splits an optional HTTP start line and header block from the body. Returns the
/// headers (name lower-cased) and the body.
pub fn split_http(bytes: &[u8]) -> (Vec<(String, String)>, &[u8]) {
    let starts_http = bytes.starts_with(b"HTTP/")
        || [&b"POST "[..], b"GET ", b"PUT "]
            .iter()
            .any(|method| bytes.starts_with(method));
    if !starts_http {
        return (Vec::new(), bytes);
    }
    // The header block ends at the first empty line, whatever its line ending: a
    // recording's `.headers` file has LF lines, and a body joined to it by hand may
    // follow a CRLF blank line. Only the header part is scanned, never the binary body.
    let mut head_len = bytes.len();
    let mut body_start = bytes.len();
    let mut line_start = 0;
    while let Some(offset) = bytes.get(line_start..).and_then(|rest| find(rest, b"\n")) {
        let line_end = line_start + offset;
        let line = bytes.get(line_start..line_end).unwrap_or_default();
        if line_start > 0 && (line.is_empty() || line == b"\r") {
            head_len = line_start;
            body_start = line_end + 1;
            break;
        }
        line_start = line_end + 1;
    }
    let head = String::from_utf8_lossy(bytes.get(..head_len).unwrap_or_default());
    let headers = head
        .lines()
        .skip(1)
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    let body = bytes.get(body_start..).unwrap_or_default();
    (headers, body)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

/// The largest file `exmux decode` reads. Captured bodies are far smaller: the session's
/// own response limit is 64 MiB.
pub const MAX_INPUT: u64 = 64 << 20;

/// Reads the file to decode, refusing one larger than [`MAX_INPUT`] before reading it.
///
/// # Errors
/// The reason, with the fix.
pub fn read_input(path: &std::path::Path) -> Result<Vec<u8>, String> {
    use std::io::Read as _;
    let file = std::fs::File::open(path).map_err(|error| format!("{error}; check the path"))?;
    let mut bytes = Vec::new();
    // `take` bounds special files such as /dev/zero, whose metadata length is 0.
    file.take(MAX_INPUT + 1)
        .read_to_end(&mut bytes)
        .map_err(|error| format!("{error}; check the path"))?;
    if bytes.len() as u64 > MAX_INPUT {
        return Err(format!(
            "it is larger than {} MiB; decode one captured body at a time",
            MAX_INPUT >> 20
        ));
    }
    Ok(bytes)
}

/// Returns the `X-RequestType` of the `.headers` file that `--record` writes beside a
/// `.body` file, if there is one.
pub fn sibling_request_type(body: &std::path::Path) -> Option<String> {
    let name = body.file_name()?.to_str()?;
    let stem = name.strip_suffix(".body")?;
    let headers = std::fs::read(body.with_file_name(format!("{stem}.headers"))).ok()?;
    if headers.len() > 1 << 20 {
        return None;
    }
    String::from_utf8_lossy(&headers).lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.trim()
            .eq_ignore_ascii_case("x-requesttype")
            .then(|| value.trim().to_owned())
    })
}

/// Converts a decoded structure to JSON through its `Serialize` form.
fn to_json<T: serde::Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap_or_else(|error| json!(format!("not shown: {error}")))
}

/// Converts an Execute body to JSON with its ROP and auxiliary buffers given by length,
/// because the ROPs they carry are decoded on their own.
fn execute_json<T: serde::Serialize>(value: &T) -> Value {
    let mut json = to_json(value);
    if let Value::Object(map) = &mut json {
        for field in ["rop_buffer", "aux"] {
            if let Some(Value::Array(bytes)) = map.remove(field) {
                map.insert(format!("{field}_len"), json!(bytes.len()));
            }
        }
    }
    json
}

/// Decodes `bytes` as `kind`. `request_type` overrides the `X-RequestType` header of a
/// MAPI/HTTP file; without either, `Execute` is assumed.
///
/// # Errors
/// [`DecodeError`] naming the layout that did not fit.
pub fn decode(
    kind: Kind,
    bytes: &[u8],
    request_type: Option<&str>,
) -> Result<Decoded, DecodeError> {
    let (headers, body) = split_http(bytes);
    if kind == Kind::Ews {
        let root = parse_document(body).map_err(|error| DecodeError::Ews(error.to_string()))?;
        let operation = root
            .children
            .iter()
            .find(|child| child.name == "Body")
            .and_then(|body| body.children.first())
            .map(|element| element.name.to_string());
        return Ok(Decoded {
            json: json!({
                "protocol": "ews",
                "operation": operation,
                "headers": headers_json(&headers),
                "envelope": element_json(&root),
            }),
        });
    }

    let header_type = headers
        .iter()
        .find(|(name, _)| name == "x-requesttype")
        .map(|(_, value)| value.as_str());
    let type_name = request_type.or(header_type).unwrap_or("Execute");
    let request_type = RequestType::parse(type_name);
    let direction = if kind == Kind::MapiRequest {
        "request"
    } else {
        "response"
    };
    let fail = |message: String| DecodeError::Mapi {
        request_type: type_name.to_owned(),
        direction,
        message,
    };

    let mut out = serde_json::Map::new();
    out.insert("protocol".into(), json!("mapi"));
    out.insert("request_type".into(), json!(type_name));
    out.insert("direction".into(), json!(direction));
    out.insert("headers".into(), headers_json(&headers));

    let binary = if kind == Kind::MapiResponse {
        // A response body starts with the PROCESSING/PENDING/DONE preamble
        // (MS-OXCMAPIHTTP 2.2.7); a body saved without it is taken as it is.
        match parse_body(body) {
            Ok(framed) => {
                out.insert("keep_alives".into(), json!(framed.keep_alives));
                out.insert("additional_headers".into(), to_json(&framed.headers));
                framed.body
            }
            Err(_) => body.to_vec(),
        }
    } else {
        body.to_vec()
    };

    match (kind, request_type) {
        (Kind::MapiRequest, RequestType::Execute) => {
            let request = ExecuteRequest::decode(&binary).map_err(|e| fail(e.to_string()))?;
            out.insert("body".into(), execute_json(&request));
            let payload = exmux_mapihttp::ext::decode_payload(&request.rop_buffer)
                .map_err(|e| fail(format!("rgbIn: {e}")))?;
            let rops = exmux_mapihttp::rop::decode_request_buffer(&payload)
                .map_err(|e| fail(format!("ROP buffer: {e}")))?;
            out.insert(
                "rops".into(),
                Value::Array(rops.rops.iter().map(to_json).collect()),
            );
            out.insert("handles".into(), json!(rops.handles));
        }
        (Kind::MapiResponse, RequestType::Execute) => {
            let response = ExecuteResponse::decode(&binary).map_err(|e| fail(e.to_string()))?;
            if let MapiResponse::Success(success) = &response {
                let payload = exmux_mapihttp::ext::decode_payload(&success.rop_buffer)
                    .map_err(|e| fail(format!("rgbOut: {e}")))?;
                let partial = exmux_mapihttp::rop::decode_response_buffer_partial(&payload)
                    .map_err(|e| fail(format!("ROP buffer: {e}")))?;
                out.insert(
                    "rops".into(),
                    Value::Array(partial.rops.iter().map(to_json).collect()),
                );
                out.insert("handles".into(), json!(partial.handles));
                if let Some(stopped) = &partial.stopped {
                    out.insert("rops_stopped".into(), to_json(stopped));
                }
            }
            let body = match &response {
                MapiResponse::Success(success) => execute_json(success),
                other => to_json(other),
            };
            out.insert("body".into(), body);
        }
        (Kind::MapiRequest, RequestType::Connect) => {
            let body = ConnectRequest::decode(&binary).map_err(|e| fail(e.to_string()))?;
            out.insert("body".into(), to_json(&body));
        }
        (Kind::MapiResponse, RequestType::Connect) => {
            let body = ConnectResponse::decode(&binary).map_err(|e| fail(e.to_string()))?;
            out.insert("body".into(), to_json(&body));
        }
        (Kind::MapiRequest, RequestType::Disconnect) => {
            let body = DisconnectRequest::decode(&binary).map_err(|e| fail(e.to_string()))?;
            out.insert("body".into(), to_json(&body));
        }
        (Kind::MapiResponse, RequestType::Disconnect) => {
            let body = DisconnectResponse::decode(&binary).map_err(|e| fail(e.to_string()))?;
            out.insert("body".into(), to_json(&body));
        }
        (Kind::MapiRequest, RequestType::NotificationWait) => {
            let body = NotificationWaitRequest::decode(&binary).map_err(|e| fail(e.to_string()))?;
            out.insert("body".into(), to_json(&body));
        }
        (Kind::MapiResponse, RequestType::NotificationWait) => {
            let body =
                NotificationWaitResponse::decode(&binary).map_err(|e| fail(e.to_string()))?;
            out.insert("body".into(), to_json(&body));
        }
        (Kind::MapiRequest, RequestType::Bind) => {
            let body = BindRequest::decode(&binary).map_err(|e| fail(e.to_string()))?;
            out.insert("body".into(), to_json(&body));
        }
        _ => {
            out.insert("body_len".into(), json!(binary.len()));
            out.insert(
                "note".into(),
                json!("this request type's body is not decoded further"),
            );
        }
    }
    Ok(Decoded {
        json: Value::Object(out),
    })
}

fn headers_json(headers: &[(String, String)]) -> Value {
    Value::Object(
        headers
            .iter()
            .map(|(name, value)| (name.clone(), Value::String(value.clone())))
            .collect(),
    )
}

/// Renders a decoded structure as indented text.
pub fn to_text(value: &Value) -> String {
    let mut out = String::new();
    write_text(value, 0, &mut out);
    out
}

fn write_text(value: &Value, depth: usize, out: &mut String) {
    let indent = "  ".repeat(depth);
    match value {
        Value::Object(map) if map.contains_key("name") => {
            // An XML element: name, attributes and text on one line, children below.
            let name = map.get("name").and_then(Value::as_str).unwrap_or_default();
            out.push_str(&indent);
            out.push_str(name);
            if let Some(Value::Object(attrs)) = map.get("attributes") {
                for (key, value) in attrs {
                    out.push_str(&format!(" {key}={}", value.as_str().unwrap_or_default()));
                }
            }
            if let Some(text) = map.get("text").and_then(Value::as_str) {
                out.push_str(": ");
                out.push_str(text);
            }
            out.push('\n');
            if let Some(Value::Array(children)) = map.get("children") {
                for child in children {
                    write_text(child, depth + 1, out);
                }
            }
        }
        Value::Object(map) => {
            for (key, value) in map {
                match value {
                    Value::Object(inner) if inner.is_empty() => {}
                    Value::Array(items) if items.iter().all(Value::is_number) => {
                        out.push_str(&format!("{indent}{key}: {value}\n"));
                    }
                    Value::Object(_) | Value::Array(_) => {
                        out.push_str(&format!("{indent}{key}:\n"));
                        write_text(value, depth + 1, out);
                    }
                    Value::String(text) if text.contains('\n') => {
                        out.push_str(&format!("{indent}{key}:\n"));
                        for line in text.lines() {
                            out.push_str(&format!("{indent}  {line}\n"));
                        }
                    }
                    Value::String(text) => out.push_str(&format!("{indent}{key}: {text}\n")),
                    other => out.push_str(&format!("{indent}{key}: {other}\n")),
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                write_text(item, depth, out);
            }
        }
        Value::String(text) => {
            for line in text.lines() {
                out.push_str(&format!("{indent}{line}\n"));
            }
        }
        other => out.push_str(&format!("{indent}{other}\n")),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::split_http;

    #[test]
    fn split_http_mixed_line_endings() {
        let body = b"\x00\x01\r\n\r\n\x02";
        for head in [
            &b"POST /mapi/emsmdb/ HTTP/1.1\r\nX-RequestType: Execute\r\n\r\n"[..],
            b"POST /mapi/emsmdb/ HTTP/1.1\nX-RequestType: Execute\n\n",
            // LF header lines (as a recording writes them) joined by a CRLF blank line.
            b"POST /mapi/emsmdb/ HTTP/1.1\nX-RequestType: Execute\n\r\n",
        ] {
            let mut bytes = head.to_vec();
            bytes.extend_from_slice(body);
            let (headers, rest) = split_http(&bytes);
            assert_eq!(
                headers,
                [("x-requesttype".to_owned(), "Execute".to_owned())],
                "{head:?}"
            );
            assert_eq!(rest, body, "{head:?}");
        }
    }

    #[test]
    fn split_http_without_start_line() {
        let (headers, rest) = split_http(b"\x00\x01\n\n");
        assert!(headers.is_empty());
        assert_eq!(rest, b"\x00\x01\n\n");
    }
}
