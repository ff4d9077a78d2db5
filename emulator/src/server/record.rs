//! Recording of every exchange in the layout of `captures/README.md`:
//! `<dir>/<protocol>/<NNN>-<operation>-<case>.<request|response>.<headers|body>`.
//!
//! Header files hold the start line and the header lines, separated by LF, with the
//! values of `Authorization`, `Proxy-Authorization`, `Cookie`, `Set-Cookie` and the
//! tokens of `WWW-Authenticate` replaced by `[redacted]`. Bodies are written as sent,
//! except where the handler marks them secret with [`RecordLabel::secret_bodies`].

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use bytes::Bytes;
use http::header::{AUTHORIZATION, COOKIE, PROXY_AUTHORIZATION, SET_COOKIE, WWW_AUTHENTICATE};
use http::{HeaderMap, HeaderName};
use tracing::warn;

/// The text that replaces a secret in a recording.
pub const REDACTED: &str = "[redacted]";

/// The largest streaming response body kept for a recording; beyond it the recorded
/// body is truncated and a warning logged.
const MAX_RECORDED_STREAM: usize = 64 * 1024 * 1024;

/// A label a handler puts into its response's extensions to name the recorded files
/// better than the server can guess.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordLabel {
    /// The operation name: `SyncFolderItems`, `Execute-RopLogon`.
    pub operation: Option<String>,
    /// A short lower-case tag for the case: `inbox-page1`, `server-busy`.
    pub case: Option<String>,
    /// When true, the request and response bodies are not written because they carry
    /// secrets (an OAuth2 token endpoint's codes and tokens).
    pub secret_bodies: bool,
}

/// Replaces the secret parts of a header value, as written to recordings.
pub fn redact_header(name: &HeaderName, value: &str) -> String {
    if name == AUTHORIZATION || name == PROXY_AUTHORIZATION {
        return match value.split_once(' ') {
            Some((scheme, _)) => format!("{scheme} {REDACTED}"),
            None => REDACTED.to_owned(),
        };
    }
    if name == COOKIE {
        return value
            .split(';')
            .map(|pair| match pair.trim().split_once('=') {
                Some((cookie, _)) => format!("{cookie}={REDACTED}"),
                None => REDACTED.to_owned(),
            })
            .collect::<Vec<_>>()
            .join("; ");
    }
    if name == SET_COOKIE {
        let (pair, attributes) = match value.split_once(';') {
            Some((pair, attributes)) => (pair, Some(attributes)),
            None => (value, None),
        };
        let cookie = match pair.split_once('=') {
            Some((cookie, _)) => format!("{}={REDACTED}", cookie.trim()),
            None => REDACTED.to_owned(),
        };
        return match attributes {
            Some(attributes) => format!("{cookie};{attributes}"),
            None => cookie,
        };
    }
    if name == WWW_AUTHENTICATE {
        return value
            .split(", ")
            .map(redact_challenge_part)
            .collect::<Vec<_>>()
            .join(", ");
    }
    value.to_owned()
}

/// Redacts the token68 of one challenge (`NTLM TlRM...`), keeping auth parameters such
/// as `realm="..."`, which are not secret.
fn redact_challenge_part(part: &str) -> String {
    let Some((scheme, rest)) = part.trim().split_once(' ') else {
        return part.to_owned();
    };
    let is_token68 = !rest.is_empty()
        && rest.trim_end_matches('=').bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/')
        });
    if is_token68 {
        format!("{scheme} {REDACTED}")
    } else {
        part.to_owned()
    }
}

/// Writes recordings into one folder.
#[derive(Debug)]
pub(crate) struct Recorder {
    dir: PathBuf,
    next: Mutex<HashMap<&'static str, u32>>,
}

/// One request waiting for its response before its files are written.
#[derive(Debug)]
pub(crate) struct PendingRecord {
    protocol: &'static str,
    operation: String,
    request_head: String,
    request_body: Bytes,
}

/// The response body of a recorded exchange, written when the body ends.
#[derive(Debug)]
pub(crate) struct BodyRecord {
    path: PathBuf,
    body: Vec<u8>,
    truncated: bool,
}

impl Recorder {
    pub(crate) fn new(dir: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        Ok(Self {
            dir: dir.to_path_buf(),
            next: Mutex::new(HashMap::new()),
        })
    }

    /// Captures the request; nothing is written until the response head is known.
    pub(crate) fn begin(&self, parts: &http::request::Parts, body: &Bytes) -> PendingRecord {
        let path = parts.uri.path();
        let protocol = protocol_of(path);
        let mut head = format!(
            "{} {} {:?}\n",
            parts.method,
            parts.uri.path_and_query().map_or(path, |pq| pq.as_str()),
            parts.version
        );
        write_headers(&mut head, &parts.headers);
        PendingRecord {
            protocol,
            operation: operation_of(protocol, &parts.headers, body, path),
            request_head: head,
            request_body: body.clone(),
        }
    }

    /// Writes the request files and the response headers; returns where the response
    /// body goes, or `None` when writing failed or the bodies are secret.
    pub(crate) fn respond(
        &self,
        pending: PendingRecord,
        status: Option<http::StatusCode>,
        response_headers: Option<&HeaderMap>,
        label: Option<&RecordLabel>,
    ) -> Option<BodyRecord> {
        let number = {
            let mut next = self
                .next
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let counter = next.entry(pending.protocol).or_insert(0);
            *counter += 1;
            *counter
        };
        let operation = label
            .and_then(|label| label.operation.clone())
            .unwrap_or(pending.operation);
        let case = label
            .and_then(|label| label.case.clone())
            .unwrap_or_else(|| case_of(status));
        let secret_bodies = label.is_some_and(|label| label.secret_bodies);
        let folder = self.dir.join(pending.protocol);
        let stem = folder.join(format!(
            "{number:03}-{}-{}",
            file_safe(&operation),
            file_safe(&case)
        ));

        let result = (|| -> std::io::Result<Option<BodyRecord>> {
            std::fs::create_dir_all(&folder)?;
            std::fs::write(with_suffix(&stem, "request.headers"), &pending.request_head)?;
            if !secret_bodies {
                std::fs::write(with_suffix(&stem, "request.body"), &pending.request_body)?;
            }
            let (Some(status), Some(headers)) = (status, response_headers) else {
                return Ok(None);
            };
            let mut head = format!(
                "HTTP/1.1 {} {}\n",
                status.as_u16(),
                status.canonical_reason().unwrap_or("")
            );
            write_headers(&mut head, headers);
            std::fs::write(with_suffix(&stem, "response.headers"), head)?;
            if secret_bodies {
                return Ok(None);
            }
            Ok(Some(BodyRecord {
                path: with_suffix(&stem, "response.body"),
                body: Vec::new(),
                truncated: false,
            }))
        })();
        result.unwrap_or_else(|error| {
            warn!(%error, folder = %folder.display(), "writing a recording failed");
            None
        })
    }
}

impl BodyRecord {
    pub(crate) fn push(&mut self, chunk: &[u8]) {
        if self.body.len().saturating_add(chunk.len()) > MAX_RECORDED_STREAM {
            self.truncated = true;
            return;
        }
        self.body.extend_from_slice(chunk);
    }
}

impl Drop for BodyRecord {
    fn drop(&mut self) {
        if self.truncated {
            warn!(path = %self.path.display(), "recorded response body truncated at 64 MiB");
        }
        if let Err(error) = std::fs::write(&self.path, &self.body) {
            warn!(%error, path = %self.path.display(), "writing a recorded body failed");
        }
    }
}

fn write_headers(out: &mut String, headers: &HeaderMap) {
    for (name, value) in headers {
        let text = String::from_utf8_lossy(value.as_bytes());
        let _ = writeln!(
            out,
            "{}: {}",
            canonical_name(name),
            redact_header(name, &text)
        );
    }
}

/// Capitalizes each dash-separated word of a header name (`x-requesttype` becomes
/// `X-Requesttype`), because hyper stores names in lower case.
fn canonical_name(name: &HeaderName) -> String {
    name.as_str()
        .split('-')
        .map(|word| {
            let mut chars = word.chars();
            match chars.next() {
                Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
                None => String::new(),
            }
        })
        .collect::<Vec<_>>()
        .join("-")
}

fn with_suffix(stem: &Path, suffix: &str) -> PathBuf {
    let mut name = stem.as_os_str().to_owned();
    name.push(".");
    name.push(suffix);
    PathBuf::from(name)
}

fn protocol_of(path: &str) -> &'static str {
    let lower = path.to_ascii_lowercase();
    if lower.starts_with("/ews/") {
        "ews"
    } else if lower.starts_with("/mapi/") {
        "mapi"
    } else if lower.starts_with("/autodiscover") {
        "autodiscover"
    } else {
        "http"
    }
}

/// Guesses the operation: the `SOAPAction` header or the first element inside the SOAP
/// `Body` for EWS, `X-RequestType` for MAPI/HTTP, else the last path segment.
fn operation_of(protocol: &str, headers: &HeaderMap, body: &Bytes, path: &str) -> String {
    if protocol == "ews" {
        if let Some(action) = headers.get("soapaction").and_then(|v| v.to_str().ok()) {
            let action = action.trim_matches('"');
            if let Some(name) = action.rsplit('/').next().filter(|name| !name.is_empty()) {
                return name.to_owned();
            }
        }
        if let Some(name) = first_body_element(body) {
            return name;
        }
    }
    if protocol == "mapi"
        && let Some(kind) = headers.get("x-requesttype").and_then(|v| v.to_str().ok())
    {
        return kind.to_owned();
    }
    path.rsplit('/')
        .find(|segment| !segment.is_empty())
        .unwrap_or("root")
        .to_owned()
}

/// Finds the local name of the first element after the SOAP `Body` start tag.
fn first_body_element(body: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(body.get(..body.len().min(64 * 1024))?).ok()?;
    let body_start = text.find(":Body").or_else(|| text.find("<Body"))?;
    let after = text.get(body_start..)?;
    let after = after.get(after.find('>')? + 1..)?;
    let tag = after.get(after.find('<')? + 1..)?;
    let name: String = tag
        .chars()
        .take_while(|c| !c.is_whitespace() && *c != '>' && *c != '/')
        .collect();
    let local = name.rsplit(':').next()?.to_owned();
    (!local.is_empty()).then_some(local)
}

fn case_of(status: Option<http::StatusCode>) -> String {
    match status {
        None => "dropped".to_owned(),
        Some(status) if status.is_success() => "ok".to_owned(),
        Some(http::StatusCode::UNAUTHORIZED) => "unauthorized".to_owned(),
        Some(status) => format!("status{}", status.as_u16()),
    }
}

fn file_safe(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorization_keeps_scheme_only() {
        assert_eq!(
            redact_header(&AUTHORIZATION, "Basic dXNlcjpwYXNz"),
            "Basic [redacted]"
        );
        assert_eq!(redact_header(&AUTHORIZATION, "opaque"), "[redacted]");
    }

    #[test]
    fn cookies_keep_names_only() {
        assert_eq!(
            redact_header(&COOKIE, "MapiContext=abc; MapiSequence=1"),
            "MapiContext=[redacted]; MapiSequence=[redacted]"
        );
        assert_eq!(
            redact_header(&SET_COOKIE, "sid=s3cr3t; path=/mapi/; HttpOnly"),
            "sid=[redacted]; path=/mapi/; HttpOnly"
        );
    }

    #[test]
    fn challenge_tokens_redacted_params_kept() {
        assert_eq!(
            redact_header(
                &WWW_AUTHENTICATE,
                "NTLM TlRMTVNTUAACAAAA==, Basic realm=\"x\", Negotiate"
            ),
            "NTLM [redacted], Basic realm=\"x\", Negotiate"
        );
    }

    #[test]
    fn body_element_found_after_soap_body() {
        let body = Bytes::from_static(
            b"<s:Envelope><s:Header/><s:Body><m:GetItem xmlns:m=\"x\"/></s:Body></s:Envelope>",
        );
        assert_eq!(first_body_element(&body).as_deref(), Some("GetItem"));
    }
}
