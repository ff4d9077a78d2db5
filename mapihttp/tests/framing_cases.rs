#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Response framing tests. They cover the keep-alive preamble with and without line
//! ends, split at every byte, and the reader's limits. They classify the response heads
//! of the bug-report cases (a missing X-ResponseCode, a non-200 status, a refusal with
//! HTML) and check request headers and cookies.

use ::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use exmux_core::Secret;
use exmux_mapihttp::http::{
    self, FramingError, GuidCounter, HeadError, MetaTag, ReadEvent, ReaderLimits, RequestHeaders,
    RequestType, ResponseCode, ResponseHead, ResponseReader, SessionCookies,
};
use uuid::Uuid;

/// One response of an annotated exchange: the status and the indented header lines
/// that follow `< HTTP/1.1 ...`.
struct AnnotatedResponse {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<String>,
}

fn annotated_responses(text: &str) -> Vec<AnnotatedResponse> {
    let mut out: Vec<AnnotatedResponse> = Vec::new();
    let mut in_headers = false;
    for line in text.lines() {
        if let Some(at) = line.find("< HTTP/1.1 ") {
            let status: u16 = line[at + 11..at + 14].parse().unwrap();
            out.push(AnnotatedResponse {
                status: StatusCode::from_u16(status).unwrap(),
                headers: HeaderMap::new(),
                body: Vec::new(),
            });
            in_headers = true;
            continue;
        }
        let Some(current) = out.last_mut() else {
            continue;
        };
        let trimmed = line.trim();
        if trimmed.is_empty() {
            in_headers = false;
            continue;
        }
        if !line.starts_with(' ') {
            in_headers = false;
            continue;
        }
        if in_headers {
            if let Some((name, value)) = trimmed.split_once(": ")
                && let Ok(name) = HeaderName::from_bytes(name.as_bytes())
            {
                current
                    .headers
                    .append(name, HeaderValue::from_str(value).unwrap());
                continue;
            }
            in_headers = false;
        }
        current.body.push(trimmed.to_owned());
    }
    out
}

#[test]
fn missing_response_code_uses_http_status() {
    let Some(path) = exmux_testkit::shared_path("cases/inputs/C25-missing-x-responsecode.txt")
    else {
        return;
    };
    let responses = annotated_responses(&std::fs::read_to_string(path).unwrap());
    assert_eq!(responses.len(), 3, "variant A, variant B, the retry");

    let mut cookies = SessionCookies::default();
    cookies.set("sid", Secret::new("placeholder-sid-0001"));
    cookies.set("sequence", Secret::new("placeholder-seq-0007"));

    // Variant A: 503 from a front end.
    let a = ResponseHead::classify(responses[0].status, &responses[0].headers).unwrap_err();
    assert_eq!(
        a,
        HeadError::HttpStatus {
            status: 503,
            has_response_code: false
        }
    );
    assert!(a.is_retryable());
    assert!(!a.needs_authentication());
    // Variant B: 401 from the authentication layer.
    let b = ResponseHead::classify(responses[1].status, &responses[1].headers).unwrap_err();
    assert_eq!(
        b,
        HeadError::HttpStatus {
            status: 401,
            has_response_code: false
        }
    );
    assert!(b.needs_authentication());
    assert!(!b.is_retryable());
    for error in [&a, &b] {
        // Never an error with an empty MAPI code.
        let text = error.to_string();
        assert!(
            !text.contains("X-ResponseCode \n") && !text.contains("code ''"),
            "{text}"
        );
        assert!(text.contains("without X-ResponseCode"), "{text}");
    }
    // Neither moves the session cookies.
    for response in &responses[..2] {
        assert!(!cookies.apply_response(&response.headers));
    }
    let before = cookies.header_value().unwrap();
    assert!(
        before
            .to_str()
            .unwrap()
            .contains("sequence=placeholder-seq-0007")
    );

    // The retry: 200 with X-ResponseCode 0 proceeds and advances the sequence cookie.
    let head = ResponseHead::classify(responses[2].status, &responses[2].headers).unwrap();
    assert_eq!(head.pending_period_ms, 15_000);
    assert_eq!(head.request_type, Some(RequestType::Execute));
    assert!(cookies.apply_response(&responses[2].headers));
    let after = cookies.header_value().unwrap();
    assert!(after.is_sensitive());
    assert_eq!(
        after.to_str().unwrap(),
        "sid=placeholder-sid-0001; sequence=placeholder-seq-0008"
    );
    // The cookie values stay out of Debug output.
    assert!(!format!("{cookies:?}").contains("placeholder-seq"));

    // HTTP 200 without X-ResponseCode is its own outcome.
    let mut headers = HeaderMap::new();
    headers.insert("content-type", HeaderValue::from_static("text/html"));
    assert_eq!(
        ResponseHead::classify(StatusCode::OK, &headers),
        Err(HeadError::MissingResponseCode)
    );
}

#[test]
fn context_not_found_is_refusal() {
    let Some(path) = exmux_testkit::shared_path("cases/inputs/C26-context-not-found-code10.txt")
    else {
        return;
    };
    let responses = annotated_responses(&std::fs::read_to_string(path).unwrap());
    let refusal = responses
        .iter()
        .find(|r| r.headers.contains_key("x-responsecode"))
        .unwrap();
    assert_eq!(refusal.status, StatusCode::OK);
    let error = ResponseHead::classify(refusal.status, &refusal.headers).unwrap_err();
    assert_eq!(
        error,
        HeadError::Refused {
            code: ResponseCode::ContextNotFound
        }
    );
    let HeadError::Refused { code } = error else {
        unreachable!()
    };
    assert!(code.needs_reconnect());
    assert_eq!(code.as_u32(), 10);
    // The body is HTML, never read as a MAPI/HTTP body.
    let body = refusal.body.join("\r\n");
    assert!(body.starts_with("<html>"), "{body}");
    assert_eq!(
        http::parse_body(body.as_bytes()),
        Err(FramingError::HtmlBody)
    );
    // The other codes on the same recovery path.
    for value in [6, 13, 15] {
        assert!(ResponseCode::from_u32(value).needs_reconnect(), "{value}");
    }
    assert!(!ResponseCode::from_u32(9).needs_reconnect());
    assert_eq!(ResponseCode::from_u32(77), ResponseCode::Other(77));
    // HTTP 200, X-ResponseCode 0, but an HTML page: its own outcome too.
    let mut headers = HeaderMap::new();
    headers.insert("x-responsecode", HeaderValue::from_static("0"));
    headers.insert(
        "content-type",
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    assert!(matches!(
        ResponseHead::classify(StatusCode::OK, &headers),
        Err(HeadError::HtmlBody { .. })
    ));
    headers.insert("x-responsecode", HeaderValue::from_static("ten"));
    assert!(matches!(
        ResponseHead::classify(StatusCode::OK, &headers),
        Err(HeadError::BadResponseCode { .. })
    ));
}

#[test]
fn synthetic_execute_framing_parts() {
    let Some(path) =
        exmux_testkit::shared_path("captures/mapi/mapihttp-execute-http-response-synthetic-1.txt")
    else {
        return;
    };
    let text = std::fs::read_to_string(path).unwrap();
    // Lines carry a literal `\r\n`; the blank line separates the HTTP head from the body.
    let wire = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| l.replace("\\r\\n", "\r\n"))
        .collect::<String>();
    let (head, body) = wire.split_once("\r\n\r\n").unwrap();
    let mut headers = HeaderMap::new();
    for line in head.split("\r\n").skip(1) {
        let (name, value) = line.split_once(": ").unwrap();
        headers.append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    let head = ResponseHead::classify(StatusCode::OK, &headers).unwrap();
    assert_eq!(head.expiration_ms, Some(900_000));
    assert_eq!(
        head.server_application.as_deref(),
        Some("Exchange/15.02.1544.004")
    );
    let id: GuidCounter = headers["x-requestid"].to_str().unwrap().parse().unwrap();
    assert_eq!(id.counter, 42);

    let framed = http::parse_body(body.as_bytes()).unwrap();
    assert_eq!(framed.keep_alives, 2);
    assert_eq!(framed.headers.elapsed_time, Some(31_250));
    assert_eq!(
        framed.headers.start_time.as_deref(),
        Some("Thu, 04 Dec 2025 19:30:00 GMT")
    );
    assert!(framed.body.starts_with(b"<body: StatusCode u32"));
}

fn stream() -> Vec<u8> {
    // A bare PENDING without a line end, then PROCESSING repeated before DONE, as one
    // real server sends them.
    let mut bytes = b"PROCESSING\r\nPENDING".to_vec();
    bytes.extend_from_slice(b"PROCESSING\r\nDONE\r\nX-ElapsedTime: 2\r\nX-StartTime: Fri, 04 Dec 2026 20:08:24 GMT\r\n\r\n");
    bytes.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0]);
    bytes
}

#[test]
fn keep_alives_read_at_every_split() {
    let bytes = stream();
    let whole = http::parse_body(&bytes).unwrap();
    assert_eq!(whole.keep_alives, 3);
    assert_eq!(whole.headers.elapsed_time, Some(2));
    assert_eq!(whole.body.len(), 16);
    for split in 0..=bytes.len() {
        let mut reader = ResponseReader::default();
        let mut events = Vec::new();
        for piece in [&bytes[..split], &bytes[split..]] {
            reader.feed(piece).unwrap();
            loop {
                match reader.next_event().unwrap() {
                    ReadEvent::NeedMore | ReadEvent::InBody => break,
                    event => events.push(event),
                }
            }
        }
        let tags: Vec<_> = events
            .iter()
            .filter_map(|e| match e {
                ReadEvent::KeepAlive(tag) => Some(*tag),
                _ => None,
            })
            .collect();
        assert_eq!(
            tags,
            [MetaTag::Processing, MetaTag::Pending, MetaTag::Processing],
            "split {split}"
        );
        assert_eq!(reader.finish().unwrap(), whole.body, "split {split}");
    }
    // Byte by byte.
    let mut reader = ResponseReader::default();
    for byte in &bytes {
        reader.feed(std::slice::from_ref(byte)).unwrap();
        while !matches!(
            reader.next_event().unwrap(),
            ReadEvent::NeedMore | ReadEvent::InBody
        ) {}
    }
    assert_eq!(reader.finish().unwrap(), whole.body);
}

#[test]
fn incomplete_corrupt_over_limit_differ() {
    let bytes = stream();
    // Need more: the reader says so and finish() reports where it stopped.
    let mut reader = ResponseReader::default();
    reader.feed(&bytes[..25]).unwrap();
    assert_eq!(
        reader.next_event().unwrap(),
        ReadEvent::KeepAlive(MetaTag::Processing)
    );
    assert_eq!(
        reader.next_event().unwrap(),
        ReadEvent::KeepAlive(MetaTag::Pending)
    );
    assert_eq!(reader.next_event().unwrap(), ReadEvent::NeedMore);
    assert!(matches!(
        reader.finish(),
        Err(FramingError::Incomplete {
            state: "waiting for DONE",
            ..
        })
    ));
    let mut reader = ResponseReader::default();
    reader
        .feed(b"PROCESSING\r\nDONE\r\nX-ElapsedTime: 1\r\n")
        .unwrap();
    assert!(matches!(
        reader.finish(),
        Err(FramingError::Incomplete {
            state: "reading the additional headers",
            ..
        })
    ));

    // Corrupt.
    assert!(matches!(
        http::parse_body(b"PROCESSING\r\nHELLO"),
        Err(FramingError::Corrupt { offset: 12, .. })
    ));
    assert!(matches!(
        http::parse_body(b"DONEX"),
        Err(FramingError::Corrupt { .. })
    ));
    assert!(matches!(
        http::parse_body(b"DONE\r\nno colon here\r\n\r\n"),
        Err(FramingError::Corrupt { .. })
    ));
    assert_eq!(
        http::parse_body(b"<!DOCTYPE HTML>"),
        Err(FramingError::HtmlBody)
    );

    // Over limit: headers, then body.
    let limits = ReaderLimits {
        max_header_bytes: 40,
        max_body_bytes: 8,
    };
    let mut reader = ResponseReader::new(limits);
    reader.feed(&bytes).unwrap();
    let mut outcome = Ok(ReadEvent::NeedMore);
    for _ in 0..10 {
        outcome = reader.next_event();
        if outcome.is_err() {
            break;
        }
    }
    assert_eq!(
        outcome,
        Err(FramingError::OverLimit {
            part: "additional headers",
            limit: 40
        })
    );
    let limits = ReaderLimits {
        max_header_bytes: 1024,
        max_body_bytes: 8,
    };
    let mut reader = ResponseReader::new(limits);
    reader.feed(&bytes[..bytes.len() - 16]).unwrap();
    while !matches!(
        reader.next_event().unwrap(),
        ReadEvent::NeedMore | ReadEvent::InBody
    ) {}
    assert_eq!(
        reader.feed(&[0; 16]),
        Err(FramingError::OverLimit {
            part: "body",
            limit: 8
        })
    );

    // PING: the preamble alone, no binary body.
    let framed =
        http::parse_body(b"PROCESSING\r\nDONE\r\nX-ElapsedTime: 0\r\nX-StartTime: x\r\n\r\n")
            .unwrap();
    assert!(framed.body.is_empty());
}

#[test]
fn server_preamble_writer_reads_back() {
    let mut out = Vec::new();
    http::write_preamble(3, 17, "Fri, 04 Dec 2026 20:08:24 GMT", &mut out);
    out.extend_from_slice(b"\x00\x01");
    let framed = http::parse_body(&out).unwrap();
    assert_eq!(framed.keep_alives, 4);
    assert_eq!(framed.headers.elapsed_time, Some(17));
    assert_eq!(framed.body, [0, 1]);
}

#[test]
fn request_headers_hide_cookies() {
    let mut cookies = SessionCookies::default();
    assert!(cookies.is_empty());
    let headers = RequestHeaders {
        request_type: RequestType::NotificationWait,
        request_id: GuidCounter {
            guid: Uuid::from_u128(0xC30D0620_00B8_4EE4_8CA0_E1F285EB8326),
            counter: 7,
        },
        client_info: GuidCounter {
            guid: Uuid::from_u128(0x75DEA55E_71AC_42A8_B882_5F6F403E7375),
            counter: 1,
        },
        client_application: "exmux/0.1".into(),
    };
    let map = headers.to_header_map(&cookies).unwrap();
    assert_eq!(map["content-type"], "application/mapi-http");
    assert_eq!(map["x-requesttype"], "NotificationWait");
    assert_eq!(
        map["x-requestid"],
        "{C30D0620-00B8-4EE4-8CA0-E1F285EB8326}:7"
    );
    assert_eq!(
        map["x-clientinfo"],
        "{75DEA55E-71AC-42A8-B882-5F6F403E7375}:1"
    );
    assert!(!map.contains_key("cookie"), "no cookie before Connect");
    assert_eq!(RequestHeaders::from_header_map(&map).unwrap(), headers);

    let mut response = HeaderMap::new();
    response.insert("x-responsecode", HeaderValue::from_static("0"));
    response.append(
        "set-cookie",
        HeaderValue::from_static("sid=abc; path=/mapi"),
    );
    response.append("set-cookie", HeaderValue::from_static("sequence=s1"));
    assert!(cookies.apply_response(&response));
    assert_eq!(cookies.names().collect::<Vec<_>>(), ["sid", "sequence"]);
    let map = headers.to_header_map(&cookies).unwrap();
    assert_eq!(map["cookie"], "sid=abc; sequence=s1");
    assert!(map["cookie"].is_sensitive());
    assert!(
        !format!("{map:?}").contains("abc"),
        "sensitive values are not printed"
    );

    let mut missing = map.clone();
    missing.remove("x-requestid");
    assert!(RequestHeaders::from_header_map(&missing).is_err());
    let bad = RequestHeaders {
        client_application: "bad\nvalue".into(),
        ..headers
    };
    assert!(bad.to_header_map(&cookies).is_err());
}

#[test]
fn fuzz_entry_generated_inputs() {
    let seed = stream();
    let mut state = 0x5555_AAAA_1234_9876u64;
    for round in 0..4000usize {
        let mut data = seed.clone();
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        data[0] = (state >> 8) as u8;
        let at = (state as usize >> 16) % data.len();
        data[at] = b"\r\nPROCESINGDX:<\x00"[(state >> 48) as usize % 16];
        if round % 4 == 0 {
            data.truncate((state as usize >> 24) % data.len());
        }
        http::fuzz_check(&data);
    }
}
