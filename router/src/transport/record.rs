//! [`CaptureRecorder`]: writes every HTTP exchange of the EWS client and the MAPI/HTTP
//! session into a folder, in the layout of `captures/README.md`, so a user can attach a
//! recording to a bug report and replay it with `exmux decode`.
//!
//! ```text
//! <dir>/<ews|mapi>/<NNN>-<operation>-<case>.<request|response>.<headers|body>
//! ```
//!
//! Both clients replace the secret header values before the recorder receives them, and
//! the bodies carry no credentials. EWS response bodies are written as they arrive, so
//! a streaming subscription is on disk while it runs.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use exmux_ews::client::record as ews_record;
use exmux_mapihttp::session::record as mapi_record;

/// Writes the exchanges of both backends into one folder; see the module
/// documentation. Pass it in [`TransportOptions::recorder`](super::TransportOptions).
#[derive(Debug)]
pub struct CaptureRecorder {
    dir: PathBuf,
    // The next sequence number per protocol folder.
    next: Mutex<BTreeMap<&'static str, u32>>,
    // Write failures, logged on the first and counted afterwards.
    failures: AtomicU64,
}

impl CaptureRecorder {
    /// Creates the recorder, creating `dir` when it does not exist.
    ///
    /// # Errors
    /// The I/O error of creating `dir`.
    pub fn create(dir: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        Ok(Self {
            dir: dir.to_path_buf(),
            next: Mutex::new(BTreeMap::new()),
            failures: AtomicU64::new(0),
        })
    }

    /// Returns the folder the recordings go to.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Returns the number of recordings that could not be written.
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    // Returns the file stem of the next exchange of `protocol`, creating its folder.
    fn stem(
        &self,
        protocol: &'static str,
        operation: &str,
        case: &str,
    ) -> std::io::Result<PathBuf> {
        let number = {
            let mut next = self
                .next
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let counter = next.entry(protocol).or_insert(0);
            *counter += 1;
            *counter
        };
        let folder = self.dir.join(protocol);
        std::fs::create_dir_all(&folder)?;
        Ok(folder.join(format!(
            "{number:03}-{}-{}",
            file_safe(operation),
            file_safe(case)
        )))
    }

    fn failed(&self, error: &std::io::Error) {
        if self.failures.fetch_add(1, Ordering::Relaxed) == 0 {
            tracing::warn!(
                %error,
                dir = %self.dir.display(),
                "writing a recording failed; later failures are only counted"
            );
        }
    }
}

impl ews_record::Recorder for CaptureRecorder {
    fn record(&self, exchange: ews_record::Exchange) -> Option<Box<dyn ews_record::BodySink>> {
        let result = (|| -> std::io::Result<Option<Box<dyn ews_record::BodySink>>> {
            let stem = self.stem("ews", exchange.operation, &case_of(exchange.status, None))?;
            let request_head = head(
                &format!("{} {} HTTP/1.1", exchange.method, exchange.target),
                &exchange.request_headers,
            );
            std::fs::write(with_suffix(&stem, "request.headers"), request_head)?;
            std::fs::write(with_suffix(&stem, "request.body"), &exchange.request_body)?;
            let Some(status) = exchange.status else {
                return Ok(None);
            };
            std::fs::write(
                with_suffix(&stem, "response.headers"),
                head(&status_line(status), &exchange.response_headers),
            )?;
            let file = File::create(with_suffix(&stem, "response.body"))?;
            Ok(Some(Box::new(FileSink {
                file,
                failed: false,
            })))
        })();
        result.unwrap_or_else(|error| {
            self.failed(&error);
            None
        })
    }
}

impl mapi_record::Recorder for CaptureRecorder {
    fn record(&self, exchange: &mapi_record::Exchange<'_>) {
        let result = (|| -> std::io::Result<()> {
            let case = case_of(exchange.status, Some(exchange.purpose));
            let stem = self.stem("mapi", &exchange.operation, &case)?;
            std::fs::write(
                with_suffix(&stem, "request.headers"),
                head(
                    &format!("POST {} HTTP/1.1", exchange.target),
                    &exchange.request_headers,
                ),
            )?;
            std::fs::write(with_suffix(&stem, "request.body"), exchange.request_body)?;
            let Some(status) = exchange.status else {
                return Ok(());
            };
            std::fs::write(
                with_suffix(&stem, "response.headers"),
                head(&status_line(status), &exchange.response_headers),
            )?;
            std::fs::write(with_suffix(&stem, "response.body"), exchange.response_body)
        })();
        if let Err(error) = result {
            self.failed(&error);
        }
    }
}

/// An EWS response body file, appended to chunk by chunk.
struct FileSink {
    file: File,
    failed: bool,
}

impl ews_record::BodySink for FileSink {
    fn write(&mut self, chunk: &[u8]) {
        if self.failed {
            return;
        }
        if let Err(error) = self.file.write_all(chunk) {
            self.failed = true;
            tracing::warn!(%error, "writing a recorded response body failed; the rest of it is skipped");
        }
    }
}

/// Formats the start line and the header lines, LF-separated, as the header files
/// contain them.
fn head(start_line: &str, headers: &[(String, String)]) -> String {
    let mut out = format!("{start_line}\n");
    for (name, value) in headers {
        let _ = writeln!(out, "{}: {value}", canonical_name(name));
    }
    out
}

fn status_line(status: u16) -> String {
    let reason = http_reason(status);
    format!("HTTP/1.1 {status} {reason}")
}

fn http_reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        302 => "Found",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "",
    }
}

/// Capitalizes each dash-separated word of a header name (`x-requesttype` becomes
/// `X-Requesttype`), because the HTTP library stores names in lower case.
fn canonical_name(name: &str) -> String {
    name.split('-')
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

/// Returns the case tag: `dropped` without a response, the purpose or `ok` on success,
/// `unauthorized`, or `status` and the code.
fn case_of(status: Option<u16>, purpose: Option<&str>) -> String {
    match status {
        None => "dropped".to_owned(),
        Some(200..=299) => purpose.unwrap_or("ok").to_ascii_lowercase(),
        Some(401) => "unauthorized".to_owned(),
        Some(status) => format!("status{status}"),
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

fn with_suffix(stem: &Path, suffix: &str) -> PathBuf {
    let mut name = stem.as_os_str().to_owned();
    name.push(".");
    name.push(suffix);
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn case_names_status_and_purpose() {
        assert_eq!(case_of(None, None), "dropped");
        assert_eq!(case_of(Some(200), None), "ok");
        assert_eq!(case_of(Some(200), Some("open folder")), "open folder");
        assert_eq!(case_of(Some(401), Some("open folder")), "unauthorized");
        assert_eq!(case_of(Some(503), None), "status503");
        assert_eq!(file_safe("open folder"), "open-folder");
    }

    #[test]
    fn head_capitalizes_names() {
        let text = head(
            "HTTP/1.1 200 OK",
            &[("x-requesttype".into(), "Execute".into())],
        );
        assert_eq!(text, "HTTP/1.1 200 OK\nX-Requesttype: Execute\n");
    }

    #[test]
    fn numbers_count_per_protocol() {
        let dir = tempfile::tempdir().unwrap();
        let recorder = CaptureRecorder::create(dir.path()).unwrap();
        let first = recorder.stem("ews", "GetItem", "ok").unwrap();
        let second = recorder.stem("ews", "GetItem", "ok").unwrap();
        let mapi = recorder.stem("mapi", "Connect", "connect").unwrap();
        assert!(first.ends_with("ews/001-GetItem-ok"));
        assert!(second.ends_with("ews/002-GetItem-ok"));
        assert!(mapi.ends_with("mapi/001-Connect-connect"));
    }
}
