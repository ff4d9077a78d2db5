//! The session client against a small EMSMDB mock on 127.0.0.1 written with the codec:
//! Connect and logon, replica resolution, batches, sequencing and cookies, reconnect
//! after a lost context, typed HTTP failures, ICS download and import with checkpoint
//! states, notifications and NotificationWait.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use exmux_core::auth::Credentials;
use exmux_core::{Clock, ManualClock, Secret};
use exmux_mapihttp::body::{
    ConnectRequest, ConnectResponse, ConnectSuccess, ErrorCodeSuccess, ExecuteRequest,
    ExecuteResponse, ExecuteSuccess, NotificationWaitResponse, NotificationWaitSuccess, WireBody,
};
use exmux_mapihttp::ext::{self, EncodeOptions};
use exmux_mapihttp::fxics::{FxProp, FxWriter, MessageChange, MessageContent};
use exmux_mapihttp::ids::{GlobCnt, Guid, LongTermId, ObjectId, Xid};
use exmux_mapihttp::idset::{IcsState, IdSet, Replica};
use exmux_mapihttp::notify::Notification;
use exmux_mapihttp::prop::{PropTag, PropValue, PropertyRow, RowCell, tags};
use exmux_mapihttp::rop::{
    self, LogonResponse, ResponseBody, RopBuffer, RopRequest, RopResponse, RopResult,
};
use exmux_mapihttp::session::{
    CodeNumbering, MapiSession, MessageImport, NoticeKind, SessionConfig, SessionError, SyncState,
    XidSource,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const REPL_GUID: Guid = Guid([0x11; 16]);
const LOGON_REPL_GUID: Guid = Guid([0x55; 16]);
const INBOX: u64 = 0x10;
const USER_DN: &str = "/o=exmux/ou=Exchange Administrative Group/cn=Recipients/cn=user1";
const PASSWORD: &str = "mock-password-7f3a";
const COOKIE_SECRET: &str = "8f2e7781cookie";

fn oid(counter: u64) -> ObjectId {
    ObjectId::from_parts(1, GlobCnt::new(counter).unwrap())
}

#[derive(Debug, Clone)]
struct Msg {
    mid: u64,
    cn: u64,
    change_key: Vec<u8>,
    pcl: Vec<u8>,
    subject: String,
    read: bool,
}

#[derive(Debug, Default)]
struct Mock {
    sid: u64,
    sequence: u64,
    contexts: u64,
    next_handle: u32,
    next_cn: u64,
    /// Handle -> what it is.
    objects: HashMap<u32, Obj>,
    messages: Vec<Msg>,
    deleted: Vec<u64>,
    /// Fault switches.
    expire_next: bool,
    stale_next: bool,
    busy_next: u32,
    no_code_next: bool,
    own_numbering: bool,
    events_queued: Vec<Notification>,
    nw_hold_until: Option<u64>,
    expire_after_first_buffer: bool,
    /// Executes to let through before the next one is refused as "session context not
    /// found"; `None` refuses none.
    expire_after_executes: Option<u32>,
    log: Vec<String>,
    authorizations: Vec<String>,
    cookies_seen: Vec<String>,
    request_ids: Vec<String>,
}

#[derive(Debug, Clone)]
enum Obj {
    Logon,
    Folder,
    Table {
        served: bool,
        hierarchy: bool,
    },
    Sync {
        state: IcsState,
        stream: Option<Vec<Vec<u8>>>,
    },
    Collector {
        state: IcsState,
    },
    ImportMsg {
        source_key: Vec<u8>,
        change_key: Vec<u8>,
        pcl: Vec<u8>,
        set: Vec<(PropTag, PropValue)>,
    },
    Transfer {
        chunks: Vec<Vec<u8>>,
    },
    Message,
    Subscription,
}

impl Mock {
    fn handle(&mut self, obj: Obj) -> u32 {
        self.next_handle += 1;
        self.objects.insert(self.next_handle, obj);
        self.next_handle
    }

    fn cn(&mut self) -> u64 {
        self.next_cn += 1;
        self.next_cn
    }

    fn download(&self, seen: &IcsState) -> Vec<u8> {
        let mut w = FxWriter::new();
        let mut state = seen.clone();
        for m in &self.messages {
            if seen.cnset_seen.contains(Replica::Guid(REPL_GUID), m.cn) {
                continue;
            }
            let header = vec![
                fx(
                    tags::PID_TAG_SOURCE_KEY,
                    PropValue::Binary(
                        Xid::from_globcnt(REPL_GUID, GlobCnt::new(m.mid).unwrap()).to_vec(),
                    ),
                ),
                fx(
                    tags::PID_TAG_LAST_MODIFICATION_TIME,
                    PropValue::Time(133_000_000_000_000_000),
                ),
                fx(
                    tags::PID_TAG_CHANGE_KEY,
                    PropValue::Binary(m.change_key.clone()),
                ),
                fx(
                    tags::PID_TAG_PREDECESSOR_CHANGE_LIST,
                    PropValue::Binary(m.pcl.clone()),
                ),
                fx(tags::PID_TAG_ASSOCIATED, PropValue::Bool(false)),
                fx(tags::PID_TAG_MID, PropValue::I64(oid(m.mid).0 as i64)),
                fx(tags::PID_TAG_MESSAGE_SIZE, PropValue::I32(100)),
                fx(
                    tags::PID_TAG_CHANGE_NUMBER,
                    PropValue::I64(oid(m.cn).0 as i64),
                ),
            ];
            let content = MessageContent {
                props: vec![
                    fx(tags::PID_TAG_SUBJECT, PropValue::Unicode(m.subject.clone())),
                    fx(
                        tags::PID_TAG_MESSAGE_FLAGS,
                        PropValue::I32(i32::from(m.read)),
                    ),
                    fx(
                        tags::PID_TAG_BODY,
                        PropValue::Unicode(format!("Body of {}", m.subject)),
                    ),
                ],
                recipients: vec![vec![
                    fx(tags::PID_TAG_RECIPIENT_TYPE, PropValue::I32(2)),
                    fx(
                        tags::PID_TAG_DISPLAY_NAME,
                        PropValue::Unicode("Carol".to_owned()),
                    ),
                    fx(
                        tags::PID_TAG_SMTP_ADDRESS,
                        PropValue::Unicode("carol@example.test".to_owned()),
                    ),
                ]],
                attachments: vec![exmux_mapihttp::fxics::Attachment {
                    props: vec![
                        fx(
                            tags::PID_TAG_ATTACH_LONG_FILENAME,
                            PropValue::Unicode("notes.txt".to_owned()),
                        ),
                        fx(
                            tags::PID_TAG_ATTACH_DATA_BINARY,
                            PropValue::Binary(b"attached".to_vec()),
                        ),
                    ],
                    embedded: None,
                }],
            };
            w.message_change(&MessageChange {
                header,
                progress: None,
                partial: false,
                content,
            });
            state.idset_given.insert(Replica::Guid(REPL_GUID), m.mid);
            state.cnset_seen.insert(Replica::Guid(REPL_GUID), m.cn);
        }
        let mut deleted = IdSet::new();
        for mid in &self.deleted {
            if seen.idset_given.contains(Replica::Guid(REPL_GUID), *mid) {
                deleted.insert(Replica::Id(1), *mid);
            }
        }
        w.deletions(&IdSet::new(), &deleted);
        w.state(&state, true).end();
        w.into_bytes()
    }

    fn execute(
        &mut self,
        rops: Vec<RopRequest>,
        mut handles: Vec<u32>,
    ) -> (Vec<RopResponse>, Vec<u32>) {
        let mut out = Vec::new();
        for rop in rops {
            let name = rop::rop_id::name(rop.rop_id());
            self.log.push(name.to_owned());
            let index = rop.response_handle_index();
            let input = |h: &Vec<u32>, i: u8| h.get(usize::from(i)).copied().unwrap_or(u32::MAX);
            let ok = |body| {
                RopResponse::Result(RopResult {
                    rop_id: rop.rop_id(),
                    handle_index: index,
                    return_value: 0,
                    body,
                })
            };
            let response = match &rop {
                RopRequest::Logon { output_handle, .. } => {
                    let h = self.handle(Obj::Logon);
                    handles[usize::from(*output_handle)] = h;
                    let mut folder_ids = [ObjectId(0); 13];
                    for (i, id) in folder_ids.iter_mut().enumerate() {
                        *id = oid(i as u64 + INBOX - 4);
                    }
                    ok(ResponseBody::Logon(Box::new(LogonResponse {
                        logon_flags: 1,
                        folder_ids,
                        response_flags: 1,
                        mailbox_guid: Guid([0x22; 16]),
                        repl_id: 5,
                        repl_guid: LOGON_REPL_GUID,
                        logon_time: [0, 0, 12, 5, 4, 12],
                        logon_year: 2026,
                        gwart_time: 0,
                        store_state: 0,
                    })))
                }
                RopRequest::LongTermIdFromId { object_id, .. } => {
                    assert_eq!(object_id.replid(), 1);
                    ok(ResponseBody::LongTermId(LongTermId {
                        database_guid: REPL_GUID,
                        globcnt: object_id.globcnt(),
                        pad: 0,
                    }))
                }
                RopRequest::OpenFolder {
                    output_handle,
                    folder_id: _,
                    input_handle,
                    ..
                } => {
                    if !self.objects.contains_key(&input(&handles, *input_handle)) {
                        RopResponse::Result(RopResult {
                            rop_id: rop.rop_id(),
                            handle_index: index,
                            return_value: rop::error_code::NULL_OBJECT,
                            body: ResponseBody::Empty,
                        })
                    } else {
                        let h = self.handle(Obj::Folder);
                        handles[usize::from(*output_handle)] = h;
                        ok(ResponseBody::OpenFolder {
                            has_rules: false,
                            ghost: None,
                        })
                    }
                }
                RopRequest::OpenMessage {
                    output_handle,
                    message_id: _,
                    ..
                } => {
                    let h = self.handle(Obj::Message);
                    handles[usize::from(*output_handle)] = h;
                    ok(ResponseBody::OpenMessage(Box::new(
                        rop::OpenMessageResponse {
                            has_named_properties: false,
                            subject_prefix: rop::TypedString::Absent,
                            normalized_subject: rop::TypedString::Absent,
                            recipient_count: 0,
                            recipient_columns: Vec::new(),
                            recipient_rows: Vec::new(),
                        },
                    )))
                }
                RopRequest::GetHierarchyTable { output_handle, .. }
                | RopRequest::GetContentsTable { output_handle, .. } => {
                    let hierarchy = matches!(rop, RopRequest::GetHierarchyTable { .. });
                    let h = self.handle(Obj::Table {
                        served: false,
                        hierarchy,
                    });
                    handles[usize::from(*output_handle)] = h;
                    ok(ResponseBody::RowCount(2))
                }
                RopRequest::SetColumns { .. } => ok(ResponseBody::TableStatus(0)),
                RopRequest::QueryRows { input_handle, .. } => {
                    let h = input(&handles, *input_handle);
                    let rows = match self.objects.get_mut(&h) {
                        Some(Obj::Table {
                            served,
                            hierarchy: true,
                        }) if !*served => {
                            *served = true;
                            vec![
                                PropertyRow {
                                    flagged: true,
                                    cells: folder_row(0x20, "Projects", 3),
                                },
                                PropertyRow {
                                    flagged: true,
                                    cells: folder_row(0x21, "Archive", 0),
                                },
                            ]
                        }
                        Some(Obj::Table {
                            served,
                            hierarchy: false,
                        }) if !*served => {
                            *served = true;
                            self.messages
                                .iter()
                                .map(|m| PropertyRow {
                                    flagged: false,
                                    cells: vec![
                                        RowCell::Value(PropValue::I64(oid(m.mid).0 as i64)),
                                        RowCell::Value(PropValue::Unicode(m.subject.clone())),
                                    ],
                                })
                                .collect()
                        }
                        _ => Vec::new(),
                    };
                    ok(ResponseBody::QueryRows { origin: 0, rows })
                }
                RopRequest::Release { input_handle, .. } => {
                    let h = input(&handles, *input_handle);
                    self.objects.remove(&h);
                    continue;
                }
                RopRequest::SetReadFlags {
                    message_ids,
                    read_flags,
                    ..
                } => {
                    let cn = self.cn();
                    for m in self
                        .messages
                        .iter_mut()
                        .filter(|m| message_ids.contains(&oid(m.mid)))
                    {
                        m.read = *read_flags & 0x04 == 0;
                        m.cn = cn;
                    }
                    ok(ResponseBody::PartialCompletion(false))
                }
                RopRequest::DeleteMessages { message_ids, .. } => {
                    let before = self.messages.len();
                    self.messages.retain(|m| !message_ids.contains(&oid(m.mid)));
                    let deleted: Vec<u64> = message_ids.iter().map(|m| m.globcnt().get()).collect();
                    self.deleted.extend(deleted);
                    ok(ResponseBody::PartialCompletion(
                        self.messages.len() + message_ids.len() != before,
                    ))
                }
                RopRequest::RegisterNotification { output_handle, .. } => {
                    let h = self.handle(Obj::Subscription);
                    handles[usize::from(*output_handle)] = h;
                    ok(ResponseBody::Empty)
                }
                RopRequest::SynchronizationConfigure { output_handle, .. } => {
                    let h = self.handle(Obj::Sync {
                        state: IcsState::default(),
                        stream: None,
                    });
                    handles[usize::from(*output_handle)] = h;
                    ok(ResponseBody::Empty)
                }
                RopRequest::SynchronizationOpenCollector { output_handle, .. } => {
                    let h = self.handle(Obj::Collector {
                        state: IcsState::default(),
                    });
                    handles[usize::from(*output_handle)] = h;
                    ok(ResponseBody::Empty)
                }
                RopRequest::SynchronizationUploadStateStreamBegin { .. }
                | RopRequest::SynchronizationUploadStateStreamEnd { .. } => ok(ResponseBody::Empty),
                RopRequest::SynchronizationUploadStateStreamContinue {
                    input_handle,
                    stream_data,
                    ..
                } => {
                    // The mock only stores the two sets it uses; the client sends them in
                    // order (IdsetGiven, CnsetSeen, SeenFAI, Read).
                    let h = input(&handles, *input_handle);
                    let decoded =
                        IdSet::decode(stream_data, exmux_mapihttp::idset::IdsetForm::ReplGuid)
                            .unwrap();
                    if let Some(Obj::Sync { state, .. } | Obj::Collector { state }) =
                        self.objects.get_mut(&h)
                    {
                        // A mock simplification: ids and change numbers share one counter
                        // space, so every uploaded set is merged into both.
                        for (replica, globs) in decoded.entries() {
                            for &(lo, hi) in globs.ranges() {
                                state.cnset_seen.insert_range(*replica, lo, hi);
                                state.idset_given.insert_range(*replica, lo, hi);
                            }
                        }
                    }
                    ok(ResponseBody::Empty)
                }
                RopRequest::FastTransferSourceGetBuffer { input_handle, .. } => {
                    if std::mem::take(&mut self.expire_after_first_buffer) {
                        self.expire_next = true;
                    }
                    let h = input(&handles, *input_handle);
                    let messages_stream = match self.objects.get(&h) {
                        Some(Obj::Sync {
                            state,
                            stream: None,
                        }) => Some(self.download(state)),
                        _ => None,
                    };
                    let chunk = match self.objects.get_mut(&h) {
                        Some(Obj::Sync { stream, .. }) => {
                            if let Some(bytes) = messages_stream {
                                // Cut the stream in two to exercise the Partial path.
                                let mid = bytes.len() / 2;
                                *stream = Some(vec![bytes[mid..].to_vec(), bytes[..mid].to_vec()]);
                            }
                            stream
                                .as_mut()
                                .and_then(Vec::pop)
                                .map(|c| (c, stream.as_ref().is_none_or(Vec::is_empty)))
                        }
                        Some(Obj::Transfer { chunks }) => {
                            chunks.pop().map(|c| (c, chunks.is_empty()))
                        }
                        _ => None,
                    };
                    match chunk {
                        Some((bytes, done)) => ok(ResponseBody::FastTransferBuffer {
                            transfer_status: if done { 3 } else { 1 },
                            in_progress_count: 0,
                            total_step_count: 0,
                            reserved: 0,
                            transfer_buffer: bytes,
                        }),
                        None => RopResponse::Result(RopResult {
                            rop_id: rop.rop_id(),
                            handle_index: index,
                            return_value: rop::error_code::NULL_OBJECT,
                            body: ResponseBody::Empty,
                        }),
                    }
                }
                RopRequest::SynchronizationImportMessageChange {
                    output_handle,
                    values,
                    ..
                } => {
                    let get = |tag| {
                        values
                            .iter()
                            .find(|v| v.tag == tag)
                            .map(|v| v.value.clone())
                    };
                    let bin = |v: Option<PropValue>| match v {
                        Some(PropValue::Binary(b)) => b,
                        _ => Vec::new(),
                    };
                    let obj = Obj::ImportMsg {
                        source_key: bin(get(tags::PID_TAG_SOURCE_KEY)),
                        change_key: bin(get(tags::PID_TAG_CHANGE_KEY)),
                        pcl: bin(get(tags::PID_TAG_PREDECESSOR_CHANGE_LIST)),
                        set: Vec::new(),
                    };
                    let h = self.handle(obj);
                    handles[usize::from(*output_handle)] = h;
                    self.objects.insert(
                        h + 1_000_000,
                        Obj::Collector {
                            state: IcsState::default(),
                        },
                    );
                    ok(ResponseBody::ObjectId(ObjectId(0)))
                }
                RopRequest::SetProperties {
                    input_handle,
                    values,
                    ..
                } => {
                    let h = input(&handles, *input_handle);
                    if let Some(Obj::ImportMsg { set, .. }) = self.objects.get_mut(&h) {
                        set.extend(values.iter().map(|v| (v.tag, v.value.clone())));
                    }
                    ok(ResponseBody::PropertyProblems(Vec::new()))
                }
                RopRequest::SaveChangesMessage { input_handle, .. } => {
                    let h = input(&handles, *input_handle);
                    let Some(Obj::ImportMsg {
                        source_key,
                        change_key,
                        pcl,
                        set,
                    }) = self.objects.get(&h).cloned()
                    else {
                        panic!("save of an unknown message");
                    };
                    let cn = self.cn();
                    let xid = Xid::decode(&source_key, 0).unwrap();
                    let mid = xid.globcnt().unwrap().get();
                    let subject = set
                        .iter()
                        .find(|(t, _)| *t == tags::PID_TAG_SUBJECT)
                        .and_then(|(_, v)| match v {
                            PropValue::Unicode(s) => Some(s.clone()),
                            _ => None,
                        });
                    match self.messages.iter_mut().find(|m| m.mid == mid) {
                        Some(m) => {
                            m.cn = cn;
                            m.change_key = change_key;
                            m.pcl = pcl;
                            if let Some(s) = subject {
                                m.subject = s;
                            }
                        }
                        None => self.messages.push(Msg {
                            mid,
                            cn,
                            change_key,
                            pcl,
                            subject: subject.unwrap_or_default(),
                            read: false,
                        }),
                    }
                    // Every collector of this context learns the new change number.
                    for obj in self.objects.values_mut() {
                        if let Obj::Collector { state } = obj {
                            state.cnset_seen.insert(Replica::Guid(REPL_GUID), cn);
                            state.idset_given.insert(Replica::Guid(REPL_GUID), mid);
                        }
                    }
                    ok(ResponseBody::SaveChangesMessage {
                        input_handle: *input_handle,
                        message_id: oid(mid),
                    })
                }
                RopRequest::SynchronizationGetTransferState {
                    input_handle,
                    output_handle,
                    ..
                } => {
                    let h = input(&handles, *input_handle);
                    let state = match self.objects.get(&h) {
                        Some(Obj::Collector { state }) => state.clone(),
                        _ => IcsState::default(),
                    };
                    let mut w = FxWriter::new();
                    w.state(&state, true);
                    let t = self.handle(Obj::Transfer {
                        chunks: vec![w.into_bytes()],
                    });
                    handles[usize::from(*output_handle)] = t;
                    ok(ResponseBody::Empty)
                }
                RopRequest::GetLocalReplicaIds { .. } => {
                    let cn = self.cn() + 1000;
                    ok(ResponseBody::LocalReplicaIds {
                        repl_guid: REPL_GUID,
                        global_count: GlobCnt::new(cn).unwrap(),
                    })
                }
                other => panic!("mock does not handle {other:?}"),
            };
            out.push(response);
        }
        for data in std::mem::take(&mut self.events_queued) {
            out.push(RopResponse::Notify {
                notification_handle: 0x99,
                logon_id: 0,
                data,
            });
        }
        (out, handles)
    }
}

fn fx(tag: PropTag, value: PropValue) -> FxProp {
    FxProp {
        tag,
        name: None,
        value,
    }
}

fn folder_row(id: u64, name: &str, count: i32) -> Vec<RowCell> {
    vec![
        RowCell::Value(PropValue::I64(oid(id).0 as i64)),
        RowCell::Value(PropValue::I64(oid(INBOX - 1).0 as i64)),
        RowCell::Value(PropValue::Unicode(name.to_owned())),
        RowCell::Missing { ptype: None },
        RowCell::Value(PropValue::I32(count)),
        RowCell::Value(PropValue::I32(0)),
        RowCell::Value(PropValue::Binary(
            Xid::from_globcnt(REPL_GUID, GlobCnt::new(id + 100).unwrap()).to_vec(),
        )),
    ]
}

struct Server {
    url: String,
    mock: Arc<Mutex<Mock>>,
    clock: ManualClock,
}

fn header(head: &str, name: &str) -> Option<String> {
    head.lines().find_map(|line| {
        let (n, v) = line.split_once(':')?;
        n.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().to_owned())
    })
}

fn preamble(body: &[u8]) -> Vec<u8> {
    let mut out = b"PROCESSING\r\nPENDING\r\nDONE\r\nX-ElapsedTime: 1\r\nX-StartTime: Fri, 04 Dec 2026 12:00:00 GMT\r\n\r\n".to_vec();
    out.extend_from_slice(body);
    out
}

async fn respond(
    stream: &mut tokio::net::TcpStream,
    status: &str,
    headers: &[(String, String)],
    body: &[u8],
) {
    let mut text = format!("HTTP/1.1 {status}\r\nContent-Length: {}\r\n", body.len());
    for (n, v) in headers {
        text.push_str(&format!("{n}: {v}\r\n"));
    }
    text.push_str("\r\n");
    let mut bytes = text.into_bytes();
    bytes.extend_from_slice(body);
    let _ = stream.write_all(&bytes).await;
}

async fn serve_one(mut stream: tokio::net::TcpStream, mock: Arc<Mutex<Mock>>, clock: ManualClock) {
    let mut buf = Vec::new();
    loop {
        // Read one request: headers, then Content-Length bytes.
        let head_end = loop {
            if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break pos + 4;
            }
            let mut chunk = [0u8; 8192];
            let n = match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        let len: usize = header(&head, "content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        while buf.len() < head_end + len {
            let mut chunk = [0u8; 8192];
            let n = match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            buf.extend_from_slice(&chunk[..n]);
        }
        let body = buf[head_end..head_end + len].to_vec();
        buf.drain(..head_end + len);

        let kind = header(&head, "x-requesttype").unwrap_or_default();
        let cookie = header(&head, "cookie").unwrap_or_default();
        let code_headers = |code: u32| {
            vec![
                ("X-ResponseCode".to_owned(), code.to_string()),
                ("X-RequestType".to_owned(), kind.clone()),
                (
                    "Content-Type".to_owned(),
                    "application/mapi-http".to_owned(),
                ),
                ("X-PendingPeriod".to_owned(), "15000".to_owned()),
            ]
        };

        if kind.eq_ignore_ascii_case("NotificationWait") {
            // Park until the test's clock passes the hold time or events are queued.
            loop {
                let (hold, queued) = {
                    let m = mock.lock().unwrap();
                    (m.nw_hold_until, !m.events_queued.is_empty())
                };
                if queued || hold.is_none_or(|until| clock.now_millis() >= until) {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            let pending = !mock.lock().unwrap().events_queued.is_empty();
            let reply = NotificationWaitResponse::Success(NotificationWaitSuccess {
                error_code: 0,
                event_pending: u32::from(pending),
                aux: Vec::new(),
            })
            .encode()
            .unwrap();
            respond(&mut stream, "200 OK", &code_headers(0), &preamble(&reply)).await;
            continue;
        }

        let (status, headers, reply) = {
            let mut m = mock.lock().unwrap();
            answer(&mut m, &kind, &cookie, &head, &body)
        };
        respond(&mut stream, status, &headers, &reply).await;
    }
}

fn answer(
    m: &mut Mock,
    kind: &str,
    cookie: &str,
    head: &str,
    body: &[u8],
) -> (&'static str, Vec<(String, String)>, Vec<u8>) {
    let code_headers = |code: u32| {
        vec![
            ("X-ResponseCode".to_owned(), code.to_string()),
            ("X-RequestType".to_owned(), kind.to_owned()),
            (
                "Content-Type".to_owned(),
                "application/mapi-http".to_owned(),
            ),
            ("X-PendingPeriod".to_owned(), "15000".to_owned()),
        ]
    };
    m.log.push(kind.to_owned());
    m.cookies_seen.push(cookie.to_owned());
    if let Some(auth) = header(head, "authorization") {
        m.authorizations.push(auth);
    }
    if let Some(id) = header(head, "x-requestid") {
        m.request_ids.push(id);
    }
    if m.busy_next > 0 {
        m.busy_next -= 1;
        // A proxy's cookie must not replace the context's sequence cookie.
        return (
            "503 Service Unavailable",
            vec![
                ("Content-Type".to_owned(), "text/html".to_owned()),
                (
                    "Set-Cookie".to_owned(),
                    "sequence=from-the-proxy".to_owned(),
                ),
            ],
            b"<html>busy</html>".to_vec(),
        );
    }
    if std::mem::take(&mut m.no_code_next) {
        return (
            "200 OK",
            vec![("Content-Type".to_owned(), "text/html".to_owned())],
            b"<html>proxy</html>".to_vec(),
        );
    }
    let sid = format!("sid=ctx{}-{COOKIE_SECRET}", m.sid);
    let seq = format!("sequence={}", m.sequence);
    let connect = kind.eq_ignore_ascii_case("Connect");
    if kind.eq_ignore_ascii_case("PING") {
        return ("200 OK", code_headers(0), preamble(&[]));
    }
    if kind.eq_ignore_ascii_case("Execute")
        && let Some(left) = m.expire_after_executes
    {
        if left == 0 {
            m.expire_after_executes = None;
            m.expire_next = true;
        } else {
            m.expire_after_executes = Some(left - 1);
        }
    }
    if !connect {
        let refuse = if std::mem::take(&mut m.expire_next) {
            Some(if m.own_numbering { 2 } else { 10 })
        } else if std::mem::take(&mut m.stale_next)
            || !cookie.contains(&seq)
            || !cookie.contains(&sid)
        {
            Some(if m.own_numbering { 7 } else { 15 })
        } else {
            None
        };
        if let Some(code) = refuse {
            let mut h = code_headers(code);
            h[2] = ("Content-Type".to_owned(), "text/html".to_owned());
            return ("200 OK", h, b"<html>refused</html>".to_vec());
        }
    }
    m.sequence += 1;
    let mut headers = code_headers(0);
    let reply = if connect {
        let request = ConnectRequest::decode(body).unwrap();
        assert_eq!(request.user_dn, USER_DN);
        m.contexts += 1;
        m.sid += 1;
        m.objects.clear();
        ConnectResponse::Success(ConnectSuccess {
            error_code: 0,
            polls_max: 60000,
            retry_count: 6,
            retry_delay: 10000,
            dn_prefix: String::new(),
            display_name: "User One".to_owned(),
            aux: Vec::new(),
        })
        .encode()
        .unwrap()
    } else if kind.eq_ignore_ascii_case("Disconnect") {
        exmux_mapihttp::body::DisconnectResponse::Success(ErrorCodeSuccess::default())
            .encode()
            .unwrap()
    } else {
        let request = ExecuteRequest::decode(body).unwrap();
        let payload = ext::decode_payload(&request.rop_buffer).unwrap();
        let buffer = rop::decode_request_buffer(&payload).unwrap();
        let (responses, handles) = m.execute(buffer.rops, buffer.handles);
        let out = rop::encode_response_buffer(&RopBuffer {
            rops: responses,
            handles,
        });
        let mut rop_buffer = Vec::new();
        // Obfuscated, as a server may send it when the client allows it.
        ext::encode_segment(
            &out,
            EncodeOptions {
                compress: true,
                xor: true,
            },
            true,
            &mut rop_buffer,
        )
        .unwrap();
        ExecuteResponse::Success(ExecuteSuccess {
            error_code: 0,
            flags: 0,
            rop_buffer,
            aux: Vec::new(),
        })
        .encode()
        .unwrap()
    };
    headers.push((
        "Set-Cookie".to_owned(),
        format!("sid=ctx{}-{COOKIE_SECRET}", m.sid),
    ));
    headers.push(("Set-Cookie".to_owned(), format!("sequence={}", m.sequence)));
    ("200 OK", headers, preamble(&reply))
}

async fn start() -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mock = Arc::new(Mutex::new(Mock {
        next_cn: 500,
        ..Mock::default()
    }));
    let clock = ManualClock::new(1_800_000_000_000);
    let (m, c) = (Arc::clone(&mock), clock.clone());
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(serve_one(stream, Arc::clone(&m), c.clone()));
        }
    });
    Server {
        url: format!("http://{addr}/mapi/emsmdb/?MailboxId=user1@example.test"),
        mock,
        clock,
    }
}

fn session(server: &Server) -> MapiSession {
    let mut config = SessionConfig::new(
        server.url.clone(),
        USER_DN,
        Credentials::Basic {
            username: "user1@example.test".to_owned(),
            password: Secret::new(PASSWORD),
        },
        reqwest::Client::new(),
    );
    config.clock = Arc::new(server.clock.clone());
    config.retry_delay = Duration::from_millis(5);
    MapiSession::new(config)
}

fn add_message(server: &Server, mid: u64, subject: &str) {
    let mut m = server.mock.lock().unwrap();
    let cn = m.cn();
    m.messages.push(Msg {
        mid,
        cn,
        change_key: Xid::from_globcnt(REPL_GUID, GlobCnt::new(cn).unwrap()).to_vec(),
        pcl: Vec::new(),
        subject: subject.to_owned(),
        read: false,
    });
}

#[tokio::test]
async fn connect_resolves_replicas_by_long_term_id() {
    let server = start().await;
    let session = session(&server);
    let info = session.connect().await.unwrap();
    // The logon's pair (5, 0x55...) is not what the ids use; the lookup is.
    assert_eq!(info.replica_guid(info.inbox()), Some(REPL_GUID));
    assert_eq!(info.logon_replica, (5, LOGON_REPL_GUID));
    assert_eq!(
        session.cookie_names(),
        vec!["sid".to_owned(), "sequence".to_owned()]
    );
    let log = server.mock.lock().unwrap().log.clone();
    assert_eq!(&log[..4], &["Connect", "Execute", "RopLogon", "Execute"]);
    assert!(log.contains(&"RopLongTermIdFromId".to_owned()));
    let m = server.mock.lock().unwrap();
    assert!(m.authorizations.iter().all(|a| a.starts_with("Basic ")));
    // X-RequestId counters strictly increase.
    let counters: Vec<u64> = m
        .request_ids
        .iter()
        .map(|id| id.rsplit(':').next().unwrap().parse().unwrap())
        .collect();
    assert!(counters.windows(2).all(|w| w[0] < w[1]), "{counters:?}");
}

#[tokio::test]
async fn hierarchy_table_rows_are_typed() {
    let server = start().await;
    let session = session(&server);
    let info = session.connect().await.unwrap();
    let rows = session
        .hierarchy_table(info.ipm_subtree(), true)
        .await
        .unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].display_name, "Projects");
    assert_eq!(rows[0].folder_id, oid(0x20));
    assert_eq!(rows[0].content_count, Some(3));
    assert_eq!(rows[0].container_class, None);
    assert_eq!(rows[1].display_name, "Archive");
}

#[tokio::test]
async fn context_not_found_replays_read() {
    let server = start().await;
    let session = session(&server);
    let info = session.connect().await.unwrap();
    server.mock.lock().unwrap().expire_next = true;
    let rows = session
        .hierarchy_table(info.ipm_subtree(), false)
        .await
        .unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(session.reconnect_count(), 1);
    let m = server.mock.lock().unwrap();
    assert_eq!(m.contexts, 2);
    // The reconnect's Connect carried the old context's cookies.
    let connect_cookies: Vec<&String> = m
        .log
        .iter()
        .filter(|k| k.as_str() != "RopLogon")
        .zip(m.cookies_seen.iter())
        .filter(|(k, _)| k.as_str() == "Connect")
        .map(|(_, c)| c)
        .collect();
    assert!(connect_cookies.len() >= 2, "{connect_cookies:?}");
}

#[tokio::test]
async fn split_write_reports_applied_part() {
    use exmux_mapihttp::session::{Batch, HandleRef, Replay};

    let server = start().await;
    let session = session(&server);
    session.connect().await.unwrap();
    // Four 10 KiB values do not fit in one 32 KiB request buffer, so the batch goes out
    // in two Execute requests, and the second one is refused.
    let mut batch = Batch::new();
    let logon = batch.input(HandleRef::Logon);
    for _ in 0..4 {
        batch.push(RopRequest::SetProperties {
            logon_id: 0,
            input_handle: logon,
            values: vec![exmux_mapihttp::prop::TaggedValue {
                tag: PropTag(0x6700_0102),
                value: PropValue::Binary(vec![0x5A; 10 * 1024]),
            }],
        });
    }
    server.mock.lock().unwrap().expire_after_executes = Some(1);
    let error = session
        .execute("write in parts", &batch, Replay::Never)
        .await
        .unwrap_err();

    let SessionError::WritePartlyApplied {
        applied,
        total,
        code,
        ..
    } = error
    else {
        panic!("expected WritePartlyApplied, got {error}");
    };
    assert_eq!(total, 4);
    assert_eq!(
        applied, 3,
        "the first Execute carried three of the four requests"
    );
    assert_eq!(code, exmux_mapihttp::http::ResponseCode::ContextNotFound);
    assert_eq!(session.reconnect_count(), 1);
    let log = server.mock.lock().unwrap().log.clone();
    let processed = log
        .iter()
        .filter(|kind| kind.as_str() == "RopSetProperties")
        .count();
    assert_eq!(
        processed, 3,
        "nothing was sent again after the reconnect: {log:?}"
    );
}

#[tokio::test]
async fn stale_sequence_write_not_replayed() {
    let server = start().await;
    let session = session(&server);
    add_message(&server, 0x500, "hello");
    session.connect().await.unwrap();
    server.mock.lock().unwrap().stale_next = true;
    let error = session
        .delete_messages(oid(INBOX), &[oid(0x500)])
        .await
        .unwrap_err();
    assert!(
        matches!(error, SessionError::WriteNotReplayed { .. }),
        "{error}"
    );
    assert_eq!(session.reconnect_count(), 1);
    // The message is still there: the write was not repeated behind the caller's back.
    assert_eq!(server.mock.lock().unwrap().messages.len(), 1);
    // The session works again.
    session
        .delete_messages(oid(INBOX), &[oid(0x500)])
        .await
        .unwrap();
    assert!(server.mock.lock().unwrap().messages.is_empty());
}

#[tokio::test]
async fn server_specific_codes_reconnect_by_class() {
    let server = start().await;
    let mut config_session = session(&server);
    {
        let mut config = config_session.config().clone();
        config.numbering = CodeNumbering::ServerSpecific;
        config_session = MapiSession::new(config);
    }
    let session = config_session;
    let info = session.connect().await.unwrap();
    {
        let mut m = server.mock.lock().unwrap();
        m.own_numbering = true;
        m.expire_next = true;
    }
    session
        .hierarchy_table(info.ipm_subtree(), false)
        .await
        .unwrap();
    assert_eq!(session.reconnect_count(), 1);
}

#[tokio::test]
async fn proxy_responses_typed_cookies_kept() {
    let server = start().await;
    let session = session(&server);
    let info = session.connect().await.unwrap();

    // A read is retried after a 503 (from in front of the server) with the same context.
    server.mock.lock().unwrap().busy_next = 1;
    session
        .hierarchy_table(info.ipm_subtree(), false)
        .await
        .unwrap();
    assert_eq!(session.reconnect_count(), 0);

    // A write is not: the caller gets a typed, retryable error.
    server.mock.lock().unwrap().no_code_next = true;
    let error = session
        .delete_messages(oid(INBOX), &[oid(1)])
        .await
        .unwrap_err();
    assert!(matches!(error, SessionError::Unavailable { .. }), "{error}");
    assert!(error.is_retryable());
    assert!(!error.to_string().contains(PASSWORD));

    // Three 503s in a row exhaust the attempts of a read.
    server.mock.lock().unwrap().busy_next = 3;
    let error = session
        .hierarchy_table(info.ipm_subtree(), false)
        .await
        .unwrap_err();
    assert!(matches!(error, SessionError::Unavailable { .. }), "{error}");
    // The context survived all of it.
    assert_eq!(server.mock.lock().unwrap().contexts, 1);
}

#[tokio::test]
async fn held_folder_is_reopened_after_a_reconnect() {
    let server = start().await;
    let session = session(&server);
    session.connect().await.unwrap();
    let folder = session.open_folder(oid(INBOX)).await.unwrap();
    server.mock.lock().unwrap().expire_next = true;
    let mut batch = exmux_mapihttp::session::Batch::new();
    let slot = batch.input(exmux_mapihttp::session::HandleRef::Object(folder));
    batch.push(RopRequest::SetReadFlags {
        logon_id: 0,
        input_handle: slot,
        want_asynchronous: false,
        read_flags: 0,
        message_ids: vec![],
    });
    let result = session
        .execute("mark read", &batch, exmux_mapihttp::session::Replay::Safe)
        .await
        .unwrap();
    assert_eq!(result.result(0).unwrap().return_value, 0);
    let log = server.mock.lock().unwrap().log.clone();
    assert_eq!(
        log.iter().filter(|l| l.as_str() == "RopOpenFolder").count(),
        2,
        "{log:?}"
    );
    session.release(folder).await.unwrap();
}

#[tokio::test]
async fn contents_sync_change_keys_deletions() {
    let server = start().await;
    let session = session(&server);
    add_message(&server, 0x501, "first");
    add_message(&server, 0x502, "second");
    let first = session
        .sync_contents(oid(INBOX), &SyncState::default())
        .await
        .unwrap();
    assert_eq!(first.changes.len(), 2);
    let change = &first.changes[0];
    assert_eq!(change.message_id, Some(oid(0x501)));
    assert_eq!(change.change_xid.unwrap().namespace, REPL_GUID);
    assert_eq!(change.read, Some(false));

    // Nothing new: an empty download.
    let again = session
        .sync_contents(oid(INBOX), &first.state)
        .await
        .unwrap();
    assert!(again.changes.is_empty());

    // Stored state survives a round trip through bytes.
    let stored = SyncState::from_bytes(&first.state.to_bytes()).unwrap();
    assert_eq!(stored, first.state);

    // A deletion arrives as no-longer-in-scope (as the real server sends soft deletes).
    server
        .mock
        .lock()
        .unwrap()
        .messages
        .retain(|m| m.mid != 0x501);
    server.mock.lock().unwrap().deleted.push(0x501);
    let third = session.sync_contents(oid(INBOX), &stored).await.unwrap();
    assert_eq!(third.no_longer_in_scope, vec![oid(0x501)]);
}

#[tokio::test]
async fn expiry_mid_download_loses_nothing() {
    let server = start().await;
    let session = session(&server);
    add_message(&server, 0x601, "a");
    add_message(&server, 0x602, "b");
    session.connect().await.unwrap();
    // The download needs two GetBuffer calls; the context expires right after the
    // server returns the first one.
    server.mock.lock().unwrap().expire_after_first_buffer = true;
    let sync = session
        .sync_contents(oid(INBOX), &SyncState::default())
        .await
        .unwrap();
    let mut mids: Vec<_> = sync.changes.iter().filter_map(|c| c.message_id).collect();
    mids.sort_by_key(|m| m.0);
    mids.dedup();
    assert_eq!(mids.len(), 2);
    assert_eq!(session.reconnect_count(), 1);
    // The download started over: three GetBuffer calls in all.
    let buffers = server
        .mock
        .lock()
        .unwrap()
        .log
        .iter()
        .filter(|l| l.as_str() == "RopFastTransferSourceGetBuffer")
        .count();
    assert_eq!(buffers, 3);
}

#[tokio::test]
async fn checkpoint_excludes_own_imports() {
    let server = start().await;
    let mine = session(&server);
    let theirs = session(&server);
    add_message(&server, 0x701, "original");
    let base = mine
        .sync_contents(oid(INBOX), &SyncState::default())
        .await
        .unwrap();
    let item = &base.changes[0];

    // exmux's namespace and another client's.
    let exmux = XidSource::new(Guid([0xE1; 16]), 41);
    let other = XidSource::new(Guid([0x07; 16]), 0);

    let xid = exmux.next();
    assert_eq!(xid.globcnt().unwrap().get(), 42);
    let imported = mine
        .import_message_change(
            oid(INBOX),
            &base.state,
            MessageImport {
                source_key: item.source_key.clone(),
                previous: item.predecessors.clone().unwrap_or_default(),
                change_key: xid,
                set: vec![exmux_mapihttp::prop::TaggedValue {
                    tag: tags::PID_TAG_SUBJECT,
                    value: PropValue::Unicode("flagged by exmux".to_owned()),
                }],
                last_modified: 133_000_000_000_000_000,
            },
        )
        .await
        .unwrap();
    assert_eq!(imported.change_key, Some(xid));
    assert!(
        imported
            .predecessors
            .as_ref()
            .unwrap()
            .xids()
            .contains(&xid)
    );

    // The server stored exmux's change key verbatim.
    let stored_key = server.mock.lock().unwrap().messages[0].change_key.clone();
    assert_eq!(stored_key, xid.to_vec());

    // Our own import is not downloaded again from the checkpoint.
    let after_own = mine
        .sync_contents(oid(INBOX), &imported.state)
        .await
        .unwrap();
    assert!(after_own.changes.is_empty(), "{:?}", after_own.changes);

    // Another session imports with another GUID: that change does appear.
    let theirs_base = theirs
        .sync_contents(oid(INBOX), &SyncState::default())
        .await
        .unwrap();
    let their_xid = other.next();
    theirs
        .import_message_change(
            oid(INBOX),
            &theirs_base.state,
            MessageImport {
                source_key: item.source_key.clone(),
                previous: theirs_base.changes[0]
                    .predecessors
                    .clone()
                    .unwrap_or_default(),
                change_key: their_xid,
                set: vec![],
                last_modified: 133_000_000_000_000_001,
            },
        )
        .await
        .unwrap();
    let after_theirs = mine
        .sync_contents(oid(INBOX), &imported.state)
        .await
        .unwrap();
    assert_eq!(after_theirs.changes.len(), 1);
    assert_eq!(
        after_theirs.changes[0].change_xid.unwrap().namespace,
        Guid([0x07; 16])
    );
    // Its predecessor list still includes exmux's change: the router can tell it saw ours.
    let pcl = after_theirs.changes[0].predecessors.clone().unwrap();
    assert!(pcl.xids().iter().any(|x| x.namespace == Guid([0xE1; 16])));
}

#[tokio::test]
async fn new_message_reserves_source_key() {
    let server = start().await;
    let session = session(&server);
    let exmux = XidSource::new(Guid([0xE1; 16]), 0);
    let (structured, props) = exmux_mapihttp::session::mime::parse(b"From: A <a@example.test>\r\nTo: B <b@example.test>\r\nSubject: created from MIME\r\nDate: Fri, 04 Dec 2026 12:00:00 +0000\r\nMessage-ID: <x1@example.test>\r\n\r\nbody text\r\n").unwrap();
    assert_eq!(structured.recipients.len(), 1);
    let created = session
        .import_new_message(
            oid(INBOX),
            &SyncState::default(),
            exmux.next(),
            props,
            133_000_000_000_000_000,
        )
        .await
        .unwrap();
    assert!(created.message_id.is_some());
    let m = server.mock.lock().unwrap();
    assert_eq!(m.messages.len(), 1);
    assert_eq!(m.messages[0].subject, "created from MIME");
}

#[tokio::test]
async fn set_read_flags_marks_messages() {
    let server = start().await;
    let session = session(&server);
    add_message(&server, 0x801, "x");
    session
        .set_read_flags(oid(INBOX), &[oid(0x801)], true)
        .await
        .unwrap();
    assert!(server.mock.lock().unwrap().messages[0].read);
    session
        .set_read_flags(oid(INBOX), &[oid(0x801)], false)
        .await
        .unwrap();
    assert!(!server.mock.lock().unwrap().messages[0].read);
}

#[tokio::test]
async fn notices_from_execute_and_wait() {
    let server = start().await;
    let session = session(&server);
    let mut notices = session.notices();
    session
        .register_notifications(0x04 | 0x08 | 0x10)
        .await
        .unwrap();

    // Appended to an ordinary Execute.
    server
        .mock
        .lock()
        .unwrap()
        .events_queued
        .push(Notification {
            flags: 0x8010,
            folder_id: Some(oid(INBOX)),
            message_id: Some(oid(0x901)),
            tag_count: Some(0),
            ..Notification::default()
        });
    session.collect_notifications().await.unwrap();
    let notice = notices.recv().await.unwrap();
    assert_eq!(notice.kind, NoticeKind::Modified);
    assert_eq!(notice.message_id, Some(oid(0x901)));

    // A NotificationWait held for six minutes of the injected clock, then completed.
    server.mock.lock().unwrap().nw_hold_until = Some(server.clock.now_millis() + 6 * 60 * 1000);
    let waiter = session.start_notification_wait();
    tokio::time::sleep(Duration::from_millis(50)).await;
    server
        .mock
        .lock()
        .unwrap()
        .events_queued
        .push(Notification {
            flags: 0x8004,
            folder_id: Some(oid(INBOX)),
            message_id: Some(oid(0x902)),
            tag_count: Some(0),
            ..Notification::default()
        });
    server.clock.advance(Duration::from_secs(6 * 60));
    let notice = tokio::time::timeout(Duration::from_secs(10), notices.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(notice.kind, NoticeKind::Created);
    assert_eq!(notice.message_id, Some(oid(0x902)));
    drop(waiter);
}

#[tokio::test]
async fn ping_and_disconnect() {
    let server = start().await;
    let session = session(&server);
    session.connect().await.unwrap();
    session.ping().await.unwrap();
    let names = session.cookie_names();
    session.clone().close().await.unwrap();
    assert_eq!(names.len(), 2);
    let log = server.mock.lock().unwrap().log.clone();
    assert!(log.contains(&"PING".to_owned()));
    assert_eq!(log.last().unwrap(), "Disconnect");
    assert!(session.cookie_names().is_empty());
}

#[tokio::test]
async fn compose_mime_from_a_structured_message() {
    let (mut message, _) = exmux_mapihttp::session::mime::parse(b"From: A <a@example.test>\r\nTo: B <b@example.test>\r\nSubject: round trip\r\n\r\nhello\r\n").unwrap();
    message
        .attachments
        .push(exmux_mapihttp::session::StructuredAttachment {
            file_name: Some("a.bin".to_owned()),
            mime_type: Some("application/octet-stream".to_owned()),
            content_id: Some("a1@example.test".to_owned()),
            data: vec![1, 2, 3],
        });
    let mime = exmux_mapihttp::session::mime::compose(&message).unwrap();
    let (back, _) = exmux_mapihttp::session::mime::parse(&mime).unwrap();
    assert_eq!(back.subject.as_deref(), Some("round trip"));
    assert_eq!(
        back.from,
        Some((Some("A".to_owned()), "a@example.test".to_owned()))
    );
    assert_eq!(back.recipients, message.recipients);
    assert_eq!(back.body_text.as_deref().map(str::trim), Some("hello"));
    assert_eq!(back.attachments.len(), 1);
    assert_eq!(back.attachments[0].data, vec![1, 2, 3]);
    assert_eq!(
        back.attachments[0].content_id.as_deref(),
        Some("a1@example.test")
    );
}

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn secrets_stay_out_of_logs_and_errors() {
    use base64::Engine as _;
    // A global subscriber: a scoped one misses events whose call sites other test
    // threads registered first. Every test of this binary then logs into the buffer,
    // which only widens the check.
    static CAPTURED: std::sync::OnceLock<Captured> = std::sync::OnceLock::new();
    let captured = CAPTURED
        .get_or_init(|| {
            let captured = Captured::default();
            let writer = captured.clone();
            let subscriber = tracing_subscriber::fmt()
                .with_max_level(tracing::Level::TRACE)
                .with_writer(move || writer.clone())
                .with_ansi(false)
                .finish();
            tracing::subscriber::set_global_default(subscriber).unwrap();
            captured
        })
        .clone();

    let server = start().await;
    let session = session(&server);
    add_message(&server, 0x300, "logged");
    let info = session.connect().await.unwrap();
    session
        .sync_contents(info.inbox(), &SyncState::default())
        .await
        .unwrap();
    server.mock.lock().unwrap().expire_next = true;
    session
        .hierarchy_table(info.ipm_subtree(), false)
        .await
        .unwrap();
    server.mock.lock().unwrap().no_code_next = true;
    let error = session
        .delete_messages(info.inbox(), &[oid(0x300)])
        .await
        .unwrap_err();
    session.disconnect().await.unwrap();

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("reconnecting"), "the reconnect is logged");
    let basic =
        base64::engine::general_purpose::STANDARD.encode(format!("user1@example.test:{PASSWORD}"));
    for secret in [PASSWORD, basic.as_str(), COOKIE_SECRET] {
        assert!(!logs.contains(secret), "a secret reached the logs");
        assert!(
            !format!("{error} {error:?}").contains(secret),
            "a secret reached an error"
        );
    }
}

#[tokio::test]
async fn downloaded_change_composes_mime() {
    let server = start().await;
    let session = session(&server);
    add_message(&server, 0x950, "with recipients");
    let sync = session
        .sync_contents(oid(INBOX), &SyncState::default())
        .await
        .unwrap();
    let message = exmux_mapihttp::session::StructuredMessage::from_change(&sync.changes[0].raw);
    assert_eq!(message.recipients.len(), 1);
    assert_eq!(message.recipients[0].recipient_type, 2);
    let mime = exmux_mapihttp::session::mime::compose(&message).unwrap();
    let (back, _) = exmux_mapihttp::session::mime::parse(&mime).unwrap();
    assert_eq!(back.subject.as_deref(), Some("with recipients"));
    assert_eq!(back.recipients, message.recipients);
    assert_eq!(back.attachments.len(), 1);
    assert_eq!(back.attachments[0].file_name.as_deref(), Some("notes.txt"));
    assert_eq!(back.attachments[0].data, b"attached".to_vec());
}

#[tokio::test]
async fn keepalive_pings_an_idle_session() {
    let server = start().await;
    let session = session(&server);
    session.connect().await.unwrap();
    let task = session.spawn_keepalive(Duration::from_secs(60), Duration::from_millis(5));
    tokio::time::sleep(Duration::from_millis(30)).await;
    let pings = |server: &Server| {
        server
            .mock
            .lock()
            .unwrap()
            .log
            .iter()
            .filter(|l| l.as_str() == "PING")
            .count()
    };
    assert_eq!(pings(&server), 0, "no PING before the session is idle");
    server.clock.advance(Duration::from_secs(61));
    let mut waited = 0;
    while pings(&server) == 0 && waited < 200 {
        tokio::time::sleep(Duration::from_millis(5)).await;
        waited += 1;
    }
    assert_eq!(pings(&server), 1);
    task.abort();
}
