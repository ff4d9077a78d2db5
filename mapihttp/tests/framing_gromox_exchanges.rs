#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Every exchange recorded against a real open-source server decodes through each layer:
//! the HTTP head classification, the incremental body reader (fed the recorded chunks),
//! the request and response bodies, the extended buffers and the ROP buffers inside
//! them. Each layer re-encodes to the same bytes where the encoding is unique.

use std::path::{Path, PathBuf};

use exmux_mapihttp::body::{
    BindRequest, BindResponse, ConnectRequest, ConnectResponse, DisconnectRequest,
    DisconnectResponse, ExecuteRequest, ExecuteResponse, NotificationWaitRequest,
    NotificationWaitResponse, Ping, Response, WireBody,
};
use exmux_mapihttp::ext::{self, EncodeOptions};
use exmux_mapihttp::http::{
    self, GuidCounter, HeadError, ReadEvent, RequestHeaders, RequestType, ResponseCode,
    ResponseHead, ResponseReader, SessionCookies,
};
use exmux_mapihttp::rop;
use http_types::{HeaderMap, HeaderName, HeaderValue, StatusCode};

use ::http as http_types;

struct Message {
    first_line: String,
    headers: HeaderMap,
}

fn read_head(path: &Path) -> Message {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    let first_line = lines.next().unwrap().to_owned();
    let mut headers = HeaderMap::new();
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        headers.append(
            HeaderName::from_bytes(name.trim().as_bytes()).unwrap(),
            HeaderValue::from_str(value.trim()).unwrap(),
        );
    }
    Message {
        first_line,
        headers,
    }
}

fn hex_file(path: &Path) -> Vec<u8> {
    let text: String = std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .collect::<Vec<_>>()
        .join(" ");
    let digits: String = text.chars().filter(|c| c.is_ascii_hexdigit()).collect();
    (0..digits.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&digits[i..i + 2], 16).unwrap())
        .collect()
}

/// Splits HTTP/1.1 chunked framing into its chunks.
fn chunks(wire: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut pos = 0;
    loop {
        let line_end = pos + wire[pos..].windows(2).position(|w| w == b"\r\n").unwrap();
        let size = usize::from_str_radix(
            std::str::from_utf8(&wire[pos..line_end]).unwrap().trim(),
            16,
        )
        .unwrap();
        pos = line_end + 2;
        if size == 0 {
            return out;
        }
        out.push(wire[pos..pos + size].to_vec());
        pos += size + 2;
    }
}

fn prefixes(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            name.strip_suffix(".request.headers").map(str::to_owned)
        })
        .collect();
    names.sort();
    names
}

fn dir() -> Option<PathBuf> {
    exmux_testkit::shared_path("captures/mapi-gromox")
}

fn file(dir: &Path, prefix: &str, suffix: &str) -> PathBuf {
    dir.join(format!("{prefix}.{suffix}"))
}

/// Decodes a request body by type and checks it re-encodes identically; returns the
/// ROP payload of an Execute request.
fn check_request(kind: &RequestType, body: &[u8]) -> Option<Vec<u8>> {
    fn same<T: WireBody>(body: &[u8]) -> T {
        let value = T::decode(body).unwrap();
        assert_eq!(
            value.encode().unwrap(),
            body,
            "{} re-encodes identically",
            T::NAME
        );
        value
    }
    match kind {
        RequestType::Connect => {
            let connect: ConnectRequest = same(body);
            assert!(connect.user_dn.starts_with("/o="), "{}", connect.user_dn);
            None
        }
        RequestType::Execute => {
            let execute: ExecuteRequest = same(body);
            Some(ext::decode_payload(&execute.rop_buffer).unwrap())
        }
        RequestType::Disconnect => {
            let _: DisconnectRequest = same(body);
            None
        }
        RequestType::NotificationWait => {
            let wait: NotificationWaitRequest = same(body);
            assert_eq!(wait.flags, 0);
            None
        }
        RequestType::Ping => {
            let _: Ping = same(body);
            None
        }
        RequestType::Bind => {
            let bind: BindRequest = same(body);
            let state = bind.state.unwrap();
            assert_eq!((state.code_page, state.sort_locale), (1252, 0x409));
            None
        }
        other => panic!("unexpected request type {other}"),
    }
}

#[test]
fn every_exchange_decodes() {
    let Some(dir) = dir() else {
        return;
    };
    let prefixes = prefixes(&dir);
    assert!(prefixes.len() >= 20, "found {} exchanges", prefixes.len());
    let mut rop_payloads_checked = 0;
    for prefix in &prefixes {
        let request = read_head(&file(&dir, prefix, "request.headers"));
        let ids = RequestHeaders::from_header_map(&request.headers).unwrap();
        // The identifying headers are rebuilt byte for byte.
        let rebuilt = ids.to_header_map(&SessionCookies::default()).unwrap();
        for name in [
            "x-requesttype",
            "x-requestid",
            "x-clientinfo",
            "x-clientapplication",
            "content-type",
        ] {
            assert_eq!(
                rebuilt.get(name),
                request.headers.get(name),
                "{prefix}: {name}"
            );
        }

        let request_body = std::fs::read(file(&dir, prefix, "request.body")).unwrap();
        let request_rops = check_request(&ids.request_type, &request_body);
        if let Some(rops) = request_rops {
            let expected = hex_file(&file(&dir, prefix, "request.rops.hex"));
            assert_eq!(rops, expected, "{prefix}: request ROP payload");
            let requests =
                rop::decode_request_buffer(&rops).unwrap_or_else(|e| panic!("{prefix}: {e}"));
            assert_eq!(rop::encode_request_buffer(&requests), rops, "{prefix}");
        }

        let response = read_head(&file(&dir, prefix, "response.headers"));
        let status: u16 = response
            .first_line
            .split(' ')
            .nth(1)
            .unwrap()
            .parse()
            .unwrap();
        let head = ResponseHead::classify(StatusCode::from_u16(status).unwrap(), &response.headers);
        let response_body = std::fs::read(file(&dir, prefix, "response.body")).unwrap();
        let head = match head {
            Ok(head) => head,
            Err(HeadError::Refused { code }) => {
                // gromox numbers its codes its own way: 7 is its stale-sequence code.
                assert_eq!(prefix.as_str(), "37-Execute-stale-sequence-cookie");
                assert_eq!(code, ResponseCode::MissingHeader);
                assert_eq!(
                    http::parse_body(&response_body),
                    Err(http::FramingError::HtmlBody)
                );
                let mut cookies = SessionCookies::default();
                assert!(
                    cookies.apply_response(&response.headers),
                    "carries X-ResponseCode"
                );
                continue;
            }
            Err(other) => panic!("{prefix}: {other}"),
        };
        assert_eq!(
            head.request_type.as_ref(),
            Some(&ids.request_type),
            "{prefix}"
        );
        assert_eq!(head.pending_period_ms, 30_000);
        assert_eq!(head.expiration_ms, Some(900_000));

        // The recorded chunks, fed one at a time, give the same binary body as the
        // de-chunked copy.
        let framed = http::parse_body(&response_body).unwrap();
        assert!(framed.keep_alives >= 1, "{prefix}: PROCESSING first");
        assert!(framed.headers.start_time.is_some(), "{prefix}");
        let wire_path = file(&dir, prefix, "response.wire");
        if wire_path.exists() {
            let mut reader = ResponseReader::default();
            for chunk in chunks(&std::fs::read(&wire_path).unwrap()) {
                reader.feed(&chunk).unwrap();
                while !matches!(
                    reader.next_event().unwrap(),
                    ReadEvent::NeedMore | ReadEvent::InBody
                ) {}
            }
            assert_eq!(reader.finish().unwrap(), framed.body, "{prefix}: chunked");
        }

        let body = &framed.body;
        match ids.request_type {
            RequestType::Connect => {
                let Response::Success(connect) = ConnectResponse::decode(body).unwrap() else {
                    panic!("{prefix}: failure layout");
                };
                assert_eq!(connect.error_code, 0);
                assert_eq!(ConnectResponse::Success(connect).encode().unwrap(), *body);
            }
            RequestType::Execute => {
                let Response::Success(execute) = ExecuteResponse::decode(body).unwrap() else {
                    panic!("{prefix}: failure layout");
                };
                assert_eq!((execute.error_code, execute.flags), (0, 0), "{prefix}");
                let segments = ext::decode_chain(&execute.rop_buffer).unwrap();
                let payload: Vec<u8> = segments.iter().flat_map(|s| s.payload.clone()).collect();
                let expected = hex_file(&file(&dir, prefix, "response.rops.hex"));
                assert_eq!(payload, expected, "{prefix}: response ROP payload");
                // The ROP layer decodes the same bytes, with the batch's requests as context,
                // and writes them back unchanged.
                let request_rops =
                    ext::decode_payload(&ExecuteRequest::decode(&request_body).unwrap().rop_buffer)
                        .unwrap();
                let requests = rop::decode_request_buffer(&request_rops).unwrap();
                let context = rop::ResponseContext {
                    requests: &requests.rops,
                    ..Default::default()
                };
                assert_eq!(segments.len(), 1, "{prefix}: one segment per reply here");
                let responses = rop::decode_response_buffer(&payload, &context)
                    .unwrap_or_else(|e| panic!("{prefix}: {e}"));
                assert!(!responses.rops.is_empty(), "{prefix}");
                assert_eq!(rop::encode_response_buffer(&responses), payload, "{prefix}");
                rop_payloads_checked += 1;
                // Uncompressed, unobfuscated segments re-encode to the same bytes.
                let parts: Vec<&[u8]> = segments.iter().map(|s| s.payload.as_slice()).collect();
                let again = ext::encode_chain(&parts, EncodeOptions::default()).unwrap();
                assert_eq!(again, execute.rop_buffer, "{prefix}");
                assert_eq!(ExecuteResponse::Success(execute).encode().unwrap(), *body);
            }
            RequestType::Disconnect => {
                let decoded = DisconnectResponse::decode(body).unwrap();
                assert!(matches!(&decoded, Response::Success(s) if s.error_code == 0));
                assert_eq!(decoded.encode().unwrap(), *body);
            }
            RequestType::NotificationWait => {
                let Response::Success(wait) = NotificationWaitResponse::decode(body).unwrap()
                else {
                    panic!("{prefix}: failure layout");
                };
                assert!(wait.has_events(), "{prefix}: woken by a change");
                assert_eq!(framed.keep_alives, 2, "{prefix}: PROCESSING repeated");
                assert_eq!(framed.headers.elapsed_time, Some(2));
            }
            RequestType::Ping => {
                assert!(body.is_empty(), "{prefix}: PING has no binary body");
                Ping::decode(body).unwrap();
            }
            RequestType::Bind => {
                let Response::Success(bind) = BindResponse::decode(body).unwrap() else {
                    panic!("{prefix}: failure layout");
                };
                assert_eq!(
                    bind.server_guid.to_string(),
                    "b0e02124-b4d0-47fe-aa9f-5f53bd78a861"
                );
                assert_eq!(BindResponse::Success(bind).encode().unwrap(), *body);
            }
            ref other => panic!("{prefix}: unexpected {other}"),
        }
    }
    assert!(rop_payloads_checked >= 14, "{rop_payloads_checked}");
}

#[test]
fn compressed_xored_request_decodes() {
    let Some(dir) = dir() else {
        return;
    };
    let prefix = "08-Execute-multi-flags0-request-compressed-xored";
    let body = std::fs::read(file(&dir, prefix, "request.body")).unwrap();
    let execute = ExecuteRequest::decode(&body).unwrap();
    assert_eq!(execute.flags, 0);
    let segments = ext::decode_chain(&execute.rop_buffer).unwrap();
    assert_eq!(segments[0].header.flags.0, 0x0007);
    let plain = std::fs::read(file(
        &dir,
        "06-Execute-multi-logon-openfolder-contents-plain",
        "request.body",
    ))
    .unwrap();
    let plain = ExecuteRequest::decode(&plain).unwrap();
    assert_eq!(
        segments[0].payload,
        ext::decode_payload(&plain.rop_buffer).unwrap()
    );
}

#[test]
fn request_ids_format_and_parse() {
    let id: GuidCounter = "{C30D0620-00B8-4EE4-8CA0-E1F285EB8326}:2".parse().unwrap();
    assert_eq!(id.counter, 2);
    assert_eq!(
        id.next().to_string(),
        "{C30D0620-00B8-4EE4-8CA0-E1F285EB8326}:3"
    );
    for bad in [
        "C30D0620-00B8-4EE4-8CA0-E1F285EB8326:2",
        "{C30D0620}:2",
        "{C30D0620-00B8-4EE4-8CA0-E1F285EB8326}",
        "{C30D0620-00B8-4EE4-8CA0-E1F285EB8326}:x",
    ] {
        assert!(bad.parse::<GuidCounter>().is_err(), "{bad}");
    }
    assert_eq!(RequestType::parse("BIND"), RequestType::Bind);
    assert_eq!(RequestType::parse("ping"), RequestType::Ping);
    assert_eq!(
        RequestType::parse("GetMatches"),
        RequestType::Other("GetMatches".into())
    );
}
