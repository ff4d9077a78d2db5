#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Request and response bodies: the documented vectors decode to their values and
//! re-encode identically, failure layouts, malformed bodies, and round-trip properties
//! for every body type.

use std::path::Path;

use exmux_mapihttp::body::{
    self, BindRequest, BindResponse, BindSuccess, BodyError, ConnectRequest, ConnectResponse,
    ConnectSuccess, DisconnectRequest, DisconnectResponse, ErrorCodeSuccess, ExecuteRequest,
    ExecuteResponse, ExecuteSuccess, FailureResponse, NotificationWaitRequest,
    NotificationWaitResponse, NotificationWaitSuccess, Ping, Response, Stat, UnbindRequest,
    UnbindResponse, WireBody,
};
use exmux_mapihttp::ext;
use proptest::prelude::*;
use uuid::Uuid;

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

const DN: &str =
    "/o=Example/ou=Exchange Administrative Group (FYDIBOHF23SPDLT)/cn=Recipients/cn=alice";

#[test]
fn synthetic_vectors_decode() {
    let Some(dir) = exmux_testkit::shared_path("captures/mapi") else {
        return;
    };

    let bytes = hex_file(&dir.join("mapihttp-connect-request-synthetic-1.hex"));
    let connect = ConnectRequest::decode(&bytes).unwrap();
    assert_eq!(
        connect,
        ConnectRequest {
            user_dn: DN.into(),
            flags: 0,
            default_code_page: 1252,
            lcid_sort: 0x409,
            lcid_string: 0x409,
            aux: Vec::new(),
        }
    );
    assert_eq!(connect.encode().unwrap(), bytes);

    let bytes = hex_file(&dir.join("mapihttp-connect-response-synthetic-1.hex"));
    let response = ConnectResponse::decode(&bytes).unwrap();
    assert_eq!(
        response,
        Response::Success(ConnectSuccess {
            error_code: 0,
            polls_max: 60_000,
            retry_count: 6,
            retry_delay: 10_000,
            dn_prefix: "/o=Example/ou=Exchange Administrative Group (FYDIBOHF23SPDLT)".into(),
            display_name: "Alice Example".into(),
            aux: Vec::new(),
        })
    );
    assert_eq!(response.encode().unwrap(), bytes);

    let bytes = hex_file(&dir.join("mapihttp-execute-request-logon-synthetic-1.hex"));
    let execute = ExecuteRequest::decode(&bytes).unwrap();
    assert_eq!(
        execute.flags,
        body::execute_flags::NO_COMPRESSION | body::execute_flags::NO_XOR_MAGIC
    );
    assert_eq!(execute.max_rop_out, 0x40000);
    assert!(execute.aux.is_empty());
    let segments = ext::decode_chain(&execute.rop_buffer).unwrap();
    assert_eq!(segments[0].header.size, 105);
    let rops = &segments[0].payload;
    // RopSize 0x65, RopLogon (0xFE), and the handle table [0xFFFFFFFF].
    assert_eq!(&rops[..3], &[0x65, 0x00, 0xFE]);
    assert_eq!(&rops[rops.len() - 4..], &[0xFF; 4]);
    assert_eq!(execute.encode().unwrap(), bytes);

    let bytes = hex_file(&dir.join("mapihttp-notificationwait-response-synthetic-1.hex"));
    let wait = NotificationWaitResponse::decode(&bytes).unwrap();
    let Response::Success(success) = &wait else {
        panic!("success layout expected");
    };
    assert!(success.has_events());
    assert_eq!(success.error_code, 0);
    assert_eq!(wait.encode().unwrap(), bytes);
}

#[test]
fn nonzero_status_reads_failure_layout() {
    let bytes = [0x0F, 0, 0, 0, 2, 0, 0, 0, 0xAA, 0xBB];
    for decoded in [
        ExecuteResponse::decode(&bytes).map(|r| matches!(r, Response::Failure(_))),
        ConnectResponse::decode(&bytes).map(|r| matches!(r, Response::Failure(_))),
        BindResponse::decode(&bytes).map(|r| matches!(r, Response::Failure(_))),
    ] {
        assert_eq!(decoded, Ok(true));
    }
    let failure = ExecuteResponse::decode(&bytes).unwrap();
    assert_eq!(
        failure,
        Response::Failure(FailureResponse {
            status_code: 15,
            aux: vec![0xAA, 0xBB]
        })
    );
    assert_eq!(failure.encode().unwrap(), bytes);
    // A failure with status 0 cannot be written: it would read back as success.
    let bad = ExecuteResponse::Failure(FailureResponse {
        status_code: 0,
        aux: Vec::new(),
    });
    assert!(matches!(
        bad.encode(),
        Err(BodyError::Unencodable {
            field: "StatusCode",
            ..
        })
    ));
}

#[test]
fn malformed_bodies_are_typed_errors() {
    // RopBufferSize larger than what follows: no allocation, a truncation error.
    let bytes = [0, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, 1, 2];
    assert!(matches!(
        ExecuteRequest::decode(&bytes),
        Err(BodyError::Truncated {
            field: "RopBuffer",
            needed: 0xFFFF_FFFF,
            available: 2,
            ..
        })
    ));
    // UserDn without its terminator.
    assert!(matches!(
        ConnectRequest::decode(b"/o=Example"),
        Err(BodyError::Unterminated {
            field: "UserDn",
            ..
        })
    ));
    // Trailing bytes.
    assert!(matches!(
        DisconnectRequest::decode(&[0, 0, 0, 0, 9]),
        Err(BodyError::TrailingBytes { count: 1, .. })
    ));
    // PING has no body.
    assert!(matches!(
        Ping::decode(&[0]),
        Err(BodyError::NotEmpty { len: 1, .. })
    ));
    // A DN with a NUL cannot be written.
    let bad = ConnectRequest {
        user_dn: "a\0b".into(),
        flags: 0,
        default_code_page: 0,
        lcid_sort: 0,
        lcid_string: 0,
        aux: Vec::new(),
    };
    assert!(matches!(
        bad.encode(),
        Err(BodyError::Unencodable {
            field: "UserDn",
            ..
        })
    ));
    // An odd-length, unterminated UTF-16 display name.
    let mut connect = vec![0u8; 20];
    connect.extend_from_slice(b"/o=x\0");
    connect.extend_from_slice(&[b'A', 0, b'B']);
    assert!(matches!(
        ConnectResponse::decode(&connect),
        Err(BodyError::Unterminated {
            field: "DisplayName",
            ..
        })
    ));
}

#[test]
fn bind_and_unbind_layouts() {
    let bind = BindRequest {
        flags: 0,
        state: Some(Stat {
            code_page: 1252,
            template_locale: 0x409,
            sort_locale: 0x409,
            ..Stat::default()
        }),
        aux: Vec::new(),
    };
    let bytes = bind.encode().unwrap();
    assert_eq!(bytes.len(), 4 + 1 + 36 + 4);
    assert_eq!(BindRequest::decode(&bytes).unwrap(), bind);
    let without_state = BindRequest {
        flags: 0,
        state: None,
        aux: Vec::new(),
    };
    assert_eq!(without_state.encode().unwrap(), [0, 0, 0, 0, 0, 0, 0, 0, 0]);

    let unbind = UnbindRequest {
        reserved: 0,
        aux: Vec::new(),
    };
    assert_eq!(unbind.encode().unwrap(), [0; 8]);
    // One server returns ErrorCode 1 for a successful Unbind, and it decodes as sent.
    let response = [0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0];
    assert_eq!(
        UnbindResponse::decode(&response).unwrap(),
        Response::Success(ErrorCodeSuccess {
            error_code: 1,
            aux: Vec::new()
        })
    );
}

#[test]
fn fuzz_entry_generated_inputs() {
    let seeds: Vec<Vec<u8>> = vec![
        ConnectRequest {
            user_dn: DN.into(),
            flags: 0,
            default_code_page: 1252,
            lcid_sort: 0x409,
            lcid_string: 0x409,
            aux: vec![1, 2, 3],
        }
        .encode()
        .unwrap(),
        ExecuteResponse::Success(ExecuteSuccess {
            error_code: 0,
            flags: 0,
            rop_buffer: vec![0, 0, 4, 0, 2, 0, 2, 0, 2, 0],
            aux: Vec::new(),
        })
        .encode()
        .unwrap(),
        BindRequest {
            flags: 0,
            state: Some(Stat::default()),
            aux: Vec::new(),
        }
        .encode()
        .unwrap(),
    ];
    let mut state = 0x0123_4567_89AB_CDEFu64;
    for round in 0..3000usize {
        let mut data = seeds[round % seeds.len()].clone();
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let at = (state as usize) % data.len();
        data[at] = (state >> 40) as u8;
        if round % 3 == 0 {
            data.truncate((state as usize >> 20) % (data.len() + 1));
        }
        body::fuzz_check(&data);
    }
}

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..max)
}

fn text8() -> impl Strategy<Value = String> {
    "[ -~]{0,80}"
}

fn text16() -> impl Strategy<Value = String> {
    any::<String>().prop_map(|s| s.replace('\0', ""))
}

fn failure() -> impl Strategy<Value = FailureResponse> {
    (1u32.., bytes(40)).prop_map(|(status_code, aux)| FailureResponse { status_code, aux })
}

fn response<T: std::fmt::Debug>(
    success: impl Strategy<Value = T>,
) -> impl Strategy<Value = Response<T>> {
    prop_oneof![
        success.prop_map(Response::Success),
        failure().prop_map(Response::Failure)
    ]
}

fn check<T: WireBody + PartialEq + std::fmt::Debug>(value: &T) -> Result<(), TestCaseError> {
    let bytes = value.encode().unwrap();
    prop_assert_eq!(&T::decode(&bytes).unwrap(), value);
    Ok(())
}

proptest! {
    #[test]
    fn connect_round_trips(
        request in (text8(), any::<u32>(), any::<u32>(), any::<u32>(), any::<u32>(), bytes(40)),
        success in (any::<u32>(), any::<u32>(), any::<u32>(), any::<u32>(), text8(), text16(), bytes(40)),
        failed in any::<bool>(),
    ) {
        check(&ConnectRequest {
            user_dn: request.0, flags: request.1, default_code_page: request.2,
            lcid_sort: request.3, lcid_string: request.4, aux: request.5,
        })?;
        let ok = ConnectSuccess {
            error_code: success.0, polls_max: success.1, retry_count: success.2,
            retry_delay: success.3, dn_prefix: success.4, display_name: success.5, aux: success.6,
        };
        let value = if failed {
            ConnectResponse::Failure(FailureResponse { status_code: 1, aux: Vec::new() })
        } else {
            ConnectResponse::Success(ok)
        };
        check(&value)?;
    }

    #[test]
    fn execute_round_trips(
        request in (any::<u32>(), bytes(300), any::<u32>(), bytes(40)),
        response_value in response((any::<u32>(), any::<u32>(), bytes(300), bytes(40))
            .prop_map(|(error_code, flags, rop_buffer, aux)| ExecuteSuccess { error_code, flags, rop_buffer, aux })),
    ) {
        check(&ExecuteRequest { flags: request.0, rop_buffer: request.1, max_rop_out: request.2, aux: request.3 })?;
        check(&response_value)?;
    }

    #[test]
    fn disconnect_and_unbind_round_trip(
        aux in bytes(40),
        reserved in any::<u32>(),
        disconnect in response((any::<u32>(), bytes(40)).prop_map(|(error_code, aux)| ErrorCodeSuccess { error_code, aux })),
    ) {
        check(&DisconnectRequest { aux: aux.clone() })?;
        check(&UnbindRequest { reserved, aux })?;
        check::<DisconnectResponse>(&disconnect)?;
        check::<UnbindResponse>(&disconnect)?;
    }

    #[test]
    fn notification_wait_round_trips(
        flags in any::<u32>(),
        aux in bytes(40),
        response_value in response((any::<u32>(), any::<u32>(), bytes(40))
            .prop_map(|(error_code, event_pending, aux)| NotificationWaitSuccess { error_code, event_pending, aux })),
    ) {
        check(&NotificationWaitRequest { flags, aux })?;
        check(&response_value)?;
    }

    #[test]
    fn bind_round_trips(
        flags in any::<u32>(),
        stat in proptest::option::of(any::<[u32; 9]>()),
        aux in bytes(40),
        response_value in response((any::<u32>(), any::<[u8; 16]>(), bytes(40))
            .prop_map(|(error_code, guid, aux)| BindSuccess { error_code, server_guid: Uuid::from_bytes(guid), aux })),
    ) {
        let state = stat.map(|v| Stat {
            sort_type: v[0], container_id: v[1], current_rec: v[2], delta: v[3] as i32,
            num_pos: v[4], total_recs: v[5], code_page: v[6], template_locale: v[7], sort_locale: v[8],
        });
        check(&BindRequest { flags, state, aux })?;
        check(&response_value)?;
        check(&Ping)?;
    }
}
