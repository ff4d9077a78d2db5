//! Request and response bodies of the mailbox endpoint (MS-OXCMAPIHTTP 2.2.4: Connect,
//! Execute, Disconnect, NotificationWait) and of the address book endpoint (2.2.5.1
//! Bind, 2.2.5.2 Unbind), both directions. PING (2.2.6) has no binary body.
//!
//! Every response type has two layouts: the success layout when StatusCode is 0 and the
//! short failure layout (StatusCode, AuxiliaryBufferSize, AuxiliaryBuffer) otherwise.
//! [`Response`] contains either. The ROP and auxiliary buffers are kept as the extended
//! buffer bytes they are on the wire; [`crate::ext`] opens them.

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::fmt;

use byteorder::{LittleEndian, WriteBytesExt};
use uuid::Uuid;

/// Error of a malformed body, or of a value that cannot be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BodyError {
    /// The body ends inside a field.
    #[error(
        "{body} body: field {field} needs {needed} bytes at offset {offset} but only \
         {available} remain; the body is cut short or a size field is wrong"
    )]
    Truncated {
        /// Name of the body being read.
        body: &'static str,
        /// Field being read.
        field: &'static str,
        /// Offset of the field.
        offset: usize,
        /// Bytes the field needs.
        needed: usize,
        /// Bytes left.
        available: usize,
    },
    /// A NUL-terminated string without its terminator.
    #[error("{body} body: string {field} at offset {offset} has no terminator")]
    Unterminated {
        /// Name of the body being read.
        body: &'static str,
        /// Field being read.
        field: &'static str,
        /// Offset of the string.
        offset: usize,
    },
    /// A string that is not valid text in its encoding.
    #[error("{body} body: string {field} at offset {offset} is not valid {encoding}")]
    BadString {
        /// Name of the body being read.
        body: &'static str,
        /// Field being read.
        field: &'static str,
        /// Offset of the string.
        offset: usize,
        /// "UTF-8" or "UTF-16".
        encoding: &'static str,
    },
    /// Bytes after the last field.
    #[error("{body} body: {count} unexpected bytes after the last field at offset {offset}")]
    TrailingBytes {
        /// Name of the body being read.
        body: &'static str,
        /// Offset of the first extra byte.
        offset: usize,
        /// Number of extra bytes.
        count: usize,
    },
    /// A body that must be empty is not.
    #[error("{body} body: must be empty but has {len} bytes")]
    NotEmpty {
        /// Name of the body being read.
        body: &'static str,
        /// Its length.
        len: usize,
    },
    /// A value that cannot be written (a string with a NUL inside, a buffer over 4 GiB).
    #[error("{body} body: field {field} cannot be encoded: {reason}")]
    Unencodable {
        /// Name of the body being written.
        body: &'static str,
        /// Field at fault.
        field: &'static str,
        /// Why.
        reason: &'static str,
    },
}

/// A checked little-endian reader over a body.
struct Cursor<'a> {
    body: &'static str,
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn new(body: &'static str, bytes: &'a [u8]) -> Self {
        Self {
            body,
            bytes,
            pos: 0,
        }
    }

    fn take(&mut self, field: &'static str, n: usize) -> Result<&'a [u8], BodyError> {
        let slice = self
            .pos
            .checked_add(n)
            .and_then(|end| self.bytes.get(self.pos..end))
            .ok_or(BodyError::Truncated {
                body: self.body,
                field,
                offset: self.pos,
                needed: n,
                available: self.bytes.len().saturating_sub(self.pos),
            })?;
        self.pos += n;
        Ok(slice)
    }

    fn u8(&mut self, field: &'static str) -> Result<u8, BodyError> {
        Ok(self.take(field, 1)?.first().copied().unwrap_or(0))
    }

    fn u32(&mut self, field: &'static str) -> Result<u32, BodyError> {
        let bytes: [u8; 4] = self.take(field, 4)?.try_into().unwrap_or([0; 4]);
        Ok(u32::from_le_bytes(bytes))
    }

    fn guid(&mut self, field: &'static str) -> Result<Uuid, BodyError> {
        let bytes: [u8; 16] = self.take(field, 16)?.try_into().unwrap_or([0; 16]);
        Ok(Uuid::from_bytes_le(bytes))
    }

    /// Reads a u32 length and that many bytes. The length is checked against the
    /// remaining input before anything is allocated.
    fn sized(
        &mut self,
        size_field: &'static str,
        field: &'static str,
    ) -> Result<Vec<u8>, BodyError> {
        let len = self.u32(size_field)? as usize;
        Ok(self.take(field, len)?.to_vec())
    }

    // NOTE: 8-bit strings (UserDn, DnPrefix) are read as UTF-8. Legacy DNs are ASCII in
    // every capture seen, but a DN in the connection's code page with bytes above 0x7F
    // is rejected as BadString rather than decoded.
    fn string8(&mut self, field: &'static str) -> Result<String, BodyError> {
        let rest = self.bytes.get(self.pos..).unwrap_or(&[]);
        let end = rest
            .iter()
            .position(|&b| b == 0)
            .ok_or(BodyError::Unterminated {
                body: self.body,
                field,
                offset: self.pos,
            })?;
        let text = rest.get(..end).unwrap_or(&[]);
        let value = std::str::from_utf8(text)
            .map_err(|_| BodyError::BadString {
                body: self.body,
                field,
                offset: self.pos,
                encoding: "UTF-8",
            })?
            .to_owned();
        self.pos += end + 1;
        Ok(value)
    }

    fn string16(&mut self, field: &'static str) -> Result<String, BodyError> {
        let start = self.pos;
        let rest = self.bytes.get(start..).unwrap_or(&[]);
        let mut units = Vec::new();
        let mut terminated = false;
        for pair in rest.chunks_exact(2) {
            let unit = u16::from_le_bytes([
                pair.first().copied().unwrap_or(0),
                pair.get(1).copied().unwrap_or(0),
            ]);
            if unit == 0 {
                terminated = true;
                break;
            }
            units.push(unit);
        }
        if !terminated {
            return Err(BodyError::Unterminated {
                body: self.body,
                field,
                offset: start,
            });
        }
        let value = String::from_utf16(&units).map_err(|_| BodyError::BadString {
            body: self.body,
            field,
            offset: start,
            encoding: "UTF-16",
        })?;
        self.pos += units.len() * 2 + 2;
        Ok(value)
    }

    fn finish(self) -> Result<(), BodyError> {
        if self.pos < self.bytes.len() {
            return Err(BodyError::TrailingBytes {
                body: self.body,
                offset: self.pos,
                count: self.bytes.len() - self.pos,
            });
        }
        Ok(())
    }
}

/// A little-endian writer that reports unencodable values by body and field.
struct Writer<'o> {
    body: &'static str,
    out: &'o mut Vec<u8>,
}

impl Writer<'_> {
    fn u8(&mut self, value: u8) {
        self.out.push(value);
    }

    fn u32(&mut self, value: u32) {
        // Writing into a Vec cannot fail.
        let _ = self.out.write_u32::<LittleEndian>(value);
    }

    fn i32(&mut self, value: i32) {
        let _ = self.out.write_i32::<LittleEndian>(value);
    }

    fn guid(&mut self, value: &Uuid) {
        self.out.extend_from_slice(&value.to_bytes_le());
    }

    fn sized(&mut self, field: &'static str, bytes: &[u8]) -> Result<(), BodyError> {
        let len = u32::try_from(bytes.len()).map_err(|_| BodyError::Unencodable {
            body: self.body,
            field,
            reason: "longer than 4 GiB",
        })?;
        self.u32(len);
        self.out.extend_from_slice(bytes);
        Ok(())
    }

    fn string8(&mut self, field: &'static str, value: &str) -> Result<(), BodyError> {
        if value.as_bytes().contains(&0) {
            return Err(BodyError::Unencodable {
                body: self.body,
                field,
                reason: "contains a NUL character",
            });
        }
        self.out.extend_from_slice(value.as_bytes());
        self.out.push(0);
        Ok(())
    }

    fn string16(&mut self, field: &'static str, value: &str) -> Result<(), BodyError> {
        if value.contains('\0') {
            return Err(BodyError::Unencodable {
                body: self.body,
                field,
                reason: "contains a NUL character",
            });
        }
        for unit in value.encode_utf16() {
            self.out.extend_from_slice(&unit.to_le_bytes());
        }
        self.out.extend_from_slice(&[0, 0]);
        Ok(())
    }
}

/// A body that can be read from and written to its wire form.
pub trait WireBody: Sized {
    /// Name used in errors, e.g. "Connect request".
    const NAME: &'static str;

    /// Decodes the whole of `bytes`.
    ///
    /// # Errors
    ///
    /// [`BodyError`] for a truncated field, an unterminated or invalid string, or bytes
    /// after the last field.
    fn decode(bytes: &[u8]) -> Result<Self, BodyError>;

    /// Appends the wire form to `out`.
    ///
    /// # Errors
    ///
    /// [`BodyError::Unencodable`] for a string containing NUL or a buffer over 4 GiB.
    fn encode_into(&self, out: &mut Vec<u8>) -> Result<(), BodyError>;

    /// Returns the wire form.
    ///
    /// # Errors
    ///
    /// As [`WireBody::encode_into`].
    fn encode(&self) -> Result<Vec<u8>, BodyError> {
        let mut out = Vec::new();
        self.encode_into(&mut out)?;
        Ok(out)
    }
}

/// A response body: the success layout, or the failure layout when StatusCode is not 0.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub enum Response<T> {
    /// StatusCode 0: the request type's success layout.
    Success(T),
    /// StatusCode not 0: the common failure layout.
    Failure(FailureResponse),
}

/// The failure layout shared by every response type (e.g. MS-OXCMAPIHTTP 2.2.4.1.3).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FailureResponse {
    /// Non-zero status of the request.
    pub status_code: u32,
    /// Auxiliary extended buffer from the server.
    #[serde(serialize_with = "crate::bytes_serde::text_or_hex")]
    pub aux: Vec<u8>,
}

/// Success layouts that [`Response`] can carry.
pub trait SuccessBody: Sized {
    /// Name used in errors, e.g. "Connect response".
    const NAME: &'static str;

    /// Reads the fields after StatusCode.
    #[doc(hidden)]
    fn read_after_status(cursor: &mut SuccessCursor<'_, '_>) -> Result<Self, BodyError>;

    /// Writes the fields after StatusCode.
    #[doc(hidden)]
    fn write_after_status(&self, writer: &mut SuccessWriter<'_, '_>) -> Result<(), BodyError>;
}

/// Opaque reader handed to [`SuccessBody`] implementations.
#[doc(hidden)]
pub struct SuccessCursor<'c, 'a>(&'c mut Cursor<'a>);

/// Opaque writer handed to [`SuccessBody`] implementations.
#[doc(hidden)]
pub struct SuccessWriter<'w, 'o>(&'w mut Writer<'o>);

impl<T: SuccessBody> WireBody for Response<T> {
    const NAME: &'static str = T::NAME;

    fn decode(bytes: &[u8]) -> Result<Self, BodyError> {
        let mut cursor = Cursor::new(T::NAME, bytes);
        let status_code = cursor.u32("StatusCode")?;
        let response = if status_code == 0 {
            Response::Success(T::read_after_status(&mut SuccessCursor(&mut cursor))?)
        } else {
            let aux = cursor.sized("AuxiliaryBufferSize", "AuxiliaryBuffer")?;
            Response::Failure(FailureResponse { status_code, aux })
        };
        cursor.finish()?;
        Ok(response)
    }

    fn encode_into(&self, out: &mut Vec<u8>) -> Result<(), BodyError> {
        let mut writer = Writer { body: T::NAME, out };
        match self {
            Response::Success(success) => {
                writer.u32(0);
                success.write_after_status(&mut SuccessWriter(&mut writer))
            }
            Response::Failure(failure) => {
                if failure.status_code == 0 {
                    return Err(BodyError::Unencodable {
                        body: T::NAME,
                        field: "StatusCode",
                        reason: "a failure response needs a non-zero status",
                    });
                }
                writer.u32(failure.status_code);
                writer.sized("AuxiliaryBuffer", &failure.aux)
            }
        }
    }
}

/// Connect request (MS-OXCMAPIHTTP 2.2.4.1.1).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ConnectRequest {
    /// The user's legacy DN (`/o=.../cn=Recipients/cn=...`).
    pub user_dn: String,
    /// Connect flags (0 for a normal user).
    pub flags: u32,
    /// Code page for 8-bit strings, e.g. 1252.
    pub default_code_page: u32,
    /// Locale for sorting, e.g. 0x409.
    pub lcid_sort: u32,
    /// Locale for everything else, e.g. 0x409.
    pub lcid_string: u32,
    /// Auxiliary extended buffer (empty for none).
    #[serde(serialize_with = "crate::bytes_serde::text_or_hex")]
    pub aux: Vec<u8>,
}

impl WireBody for ConnectRequest {
    const NAME: &'static str = "Connect request";

    fn decode(bytes: &[u8]) -> Result<Self, BodyError> {
        let mut c = Cursor::new(Self::NAME, bytes);
        let value = Self {
            user_dn: c.string8("UserDn")?,
            flags: c.u32("Flags")?,
            default_code_page: c.u32("DefaultCodePage")?,
            lcid_sort: c.u32("LcidSort")?,
            lcid_string: c.u32("LcidString")?,
            aux: c.sized("AuxiliaryBufferSize", "AuxiliaryBuffer")?,
        };
        c.finish()?;
        Ok(value)
    }

    fn encode_into(&self, out: &mut Vec<u8>) -> Result<(), BodyError> {
        let mut w = Writer {
            body: Self::NAME,
            out,
        };
        w.string8("UserDn", &self.user_dn)?;
        w.u32(self.flags);
        w.u32(self.default_code_page);
        w.u32(self.lcid_sort);
        w.u32(self.lcid_string);
        w.sized("AuxiliaryBuffer", &self.aux)
    }
}

/// Connect success response (MS-OXCMAPIHTTP 2.2.4.1.2). A server may report a failed
/// connect here with StatusCode 0 and a non-zero `error_code`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ConnectSuccess {
    /// EcDoConnectEx result; 0 is success.
    pub error_code: u32,
    /// Milliseconds between polls the server suggests.
    pub polls_max: u32,
    /// Retries the client should make.
    pub retry_count: u32,
    /// Milliseconds between retries.
    pub retry_delay: u32,
    /// DN prefix for the user's DN.
    pub dn_prefix: String,
    /// The user's display name.
    pub display_name: String,
    /// Auxiliary extended buffer.
    #[serde(serialize_with = "crate::bytes_serde::text_or_hex")]
    pub aux: Vec<u8>,
}

impl SuccessBody for ConnectSuccess {
    const NAME: &'static str = "Connect response";

    fn read_after_status(c: &mut SuccessCursor<'_, '_>) -> Result<Self, BodyError> {
        let c = &mut *c.0;
        Ok(Self {
            error_code: c.u32("ErrorCode")?,
            polls_max: c.u32("PollsMax")?,
            retry_count: c.u32("RetryCount")?,
            retry_delay: c.u32("RetryDelay")?,
            dn_prefix: c.string8("DnPrefix")?,
            display_name: c.string16("DisplayName")?,
            aux: c.sized("AuxiliaryBufferSize", "AuxiliaryBuffer")?,
        })
    }

    fn write_after_status(&self, w: &mut SuccessWriter<'_, '_>) -> Result<(), BodyError> {
        let w = &mut *w.0;
        w.u32(self.error_code);
        w.u32(self.polls_max);
        w.u32(self.retry_count);
        w.u32(self.retry_delay);
        w.string8("DnPrefix", &self.dn_prefix)?;
        w.string16("DisplayName", &self.display_name)?;
        w.sized("AuxiliaryBuffer", &self.aux)
    }
}

/// Connect response, success or failure layout.
pub type ConnectResponse = Response<ConnectSuccess>;

/// Execute flags (MS-OXCRPC 3.1.4.2, pulFlags).
pub mod execute_flags {
    /// The server must not compress the response.
    pub const NO_COMPRESSION: u32 = 0x0000_0001;
    /// The server must not obfuscate the response.
    pub const NO_XOR_MAGIC: u32 = 0x0000_0002;
    /// The response may hold several chained segments.
    pub const CHAIN: u32 = 0x0000_0004;
}

/// Execute request (MS-OXCMAPIHTTP 2.2.4.2.1).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ExecuteRequest {
    /// See [`execute_flags`].
    pub flags: u32,
    /// The ROP request extended buffer (RPC_HEADER_EXT and payload).
    #[serde(serialize_with = "crate::bytes_serde::text_or_hex")]
    pub rop_buffer: Vec<u8>,
    /// Largest response ROP buffer the client accepts.
    pub max_rop_out: u32,
    /// Auxiliary extended buffer.
    #[serde(serialize_with = "crate::bytes_serde::text_or_hex")]
    pub aux: Vec<u8>,
}

impl WireBody for ExecuteRequest {
    const NAME: &'static str = "Execute request";

    fn decode(bytes: &[u8]) -> Result<Self, BodyError> {
        let mut c = Cursor::new(Self::NAME, bytes);
        let value = Self {
            flags: c.u32("Flags")?,
            rop_buffer: c.sized("RopBufferSize", "RopBuffer")?,
            max_rop_out: c.u32("MaxRopOut")?,
            aux: c.sized("AuxiliaryBufferSize", "AuxiliaryBuffer")?,
        };
        c.finish()?;
        Ok(value)
    }

    fn encode_into(&self, out: &mut Vec<u8>) -> Result<(), BodyError> {
        let mut w = Writer {
            body: Self::NAME,
            out,
        };
        w.u32(self.flags);
        w.sized("RopBuffer", &self.rop_buffer)?;
        w.u32(self.max_rop_out);
        w.sized("AuxiliaryBuffer", &self.aux)
    }
}

/// Execute success response (MS-OXCMAPIHTTP 2.2.4.2.2).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ExecuteSuccess {
    /// EcDoRpcExt2 result; non-zero means the whole batch failed.
    pub error_code: u32,
    /// Reserved; 0 from the servers seen so far.
    pub flags: u32,
    /// The ROP response extended buffer (one or more segments).
    #[serde(serialize_with = "crate::bytes_serde::text_or_hex")]
    pub rop_buffer: Vec<u8>,
    /// Auxiliary extended buffer.
    #[serde(serialize_with = "crate::bytes_serde::text_or_hex")]
    pub aux: Vec<u8>,
}

impl SuccessBody for ExecuteSuccess {
    const NAME: &'static str = "Execute response";

    fn read_after_status(c: &mut SuccessCursor<'_, '_>) -> Result<Self, BodyError> {
        let c = &mut *c.0;
        Ok(Self {
            error_code: c.u32("ErrorCode")?,
            flags: c.u32("Flags")?,
            rop_buffer: c.sized("RopBufferSize", "RopBuffer")?,
            aux: c.sized("AuxiliaryBufferSize", "AuxiliaryBuffer")?,
        })
    }

    fn write_after_status(&self, w: &mut SuccessWriter<'_, '_>) -> Result<(), BodyError> {
        let w = &mut *w.0;
        w.u32(self.error_code);
        w.u32(self.flags);
        w.sized("RopBuffer", &self.rop_buffer)?;
        w.sized("AuxiliaryBuffer", &self.aux)
    }
}

/// Execute response, success or failure layout.
pub type ExecuteResponse = Response<ExecuteSuccess>;

/// Disconnect request (MS-OXCMAPIHTTP 2.2.4.3.1).
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub struct DisconnectRequest {
    /// Auxiliary extended buffer.
    #[serde(serialize_with = "crate::bytes_serde::text_or_hex")]
    pub aux: Vec<u8>,
}

impl WireBody for DisconnectRequest {
    const NAME: &'static str = "Disconnect request";

    fn decode(bytes: &[u8]) -> Result<Self, BodyError> {
        let mut c = Cursor::new(Self::NAME, bytes);
        let value = Self {
            aux: c.sized("AuxiliaryBufferSize", "AuxiliaryBuffer")?,
        };
        c.finish()?;
        Ok(value)
    }

    fn encode_into(&self, out: &mut Vec<u8>) -> Result<(), BodyError> {
        Writer {
            body: Self::NAME,
            out,
        }
        .sized("AuxiliaryBuffer", &self.aux)
    }
}

/// Success layout with only ErrorCode and the auxiliary buffer: Disconnect (2.2.4.3.2)
/// and Unbind (2.2.5.2.2).
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub struct ErrorCodeSuccess {
    /// Result of the operation.
    pub error_code: u32,
    /// Auxiliary extended buffer.
    #[serde(serialize_with = "crate::bytes_serde::text_or_hex")]
    pub aux: Vec<u8>,
}

impl SuccessBody for ErrorCodeSuccess {
    const NAME: &'static str = "Disconnect or Unbind response";

    fn read_after_status(c: &mut SuccessCursor<'_, '_>) -> Result<Self, BodyError> {
        let c = &mut *c.0;
        Ok(Self {
            error_code: c.u32("ErrorCode")?,
            aux: c.sized("AuxiliaryBufferSize", "AuxiliaryBuffer")?,
        })
    }

    fn write_after_status(&self, w: &mut SuccessWriter<'_, '_>) -> Result<(), BodyError> {
        let w = &mut *w.0;
        w.u32(self.error_code);
        w.sized("AuxiliaryBuffer", &self.aux)
    }
}

/// Disconnect response, success or failure layout.
pub type DisconnectResponse = Response<ErrorCodeSuccess>;

/// NotificationWait request (MS-OXCMAPIHTTP 2.2.4.4.1).
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub struct NotificationWaitRequest {
    /// Reserved, 0.
    pub flags: u32,
    /// Auxiliary extended buffer.
    #[serde(serialize_with = "crate::bytes_serde::text_or_hex")]
    pub aux: Vec<u8>,
}

impl WireBody for NotificationWaitRequest {
    const NAME: &'static str = "NotificationWait request";

    fn decode(bytes: &[u8]) -> Result<Self, BodyError> {
        let mut c = Cursor::new(Self::NAME, bytes);
        let value = Self {
            flags: c.u32("Flags")?,
            aux: c.sized("AuxiliaryBufferSize", "AuxiliaryBuffer")?,
        };
        c.finish()?;
        Ok(value)
    }

    fn encode_into(&self, out: &mut Vec<u8>) -> Result<(), BodyError> {
        let mut w = Writer {
            body: Self::NAME,
            out,
        };
        w.u32(self.flags);
        w.sized("AuxiliaryBuffer", &self.aux)
    }
}

/// NotificationWait success response (MS-OXCMAPIHTTP 2.2.4.4.2).
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub struct NotificationWaitSuccess {
    /// Result of the wait.
    pub error_code: u32,
    /// Bit 0x1 set when notifications are queued: send an Execute to collect them.
    pub event_pending: u32,
    /// Auxiliary extended buffer.
    #[serde(serialize_with = "crate::bytes_serde::text_or_hex")]
    pub aux: Vec<u8>,
}

impl NotificationWaitSuccess {
    /// Returns true when the server has notifications queued for this session.
    pub fn has_events(&self) -> bool {
        self.event_pending & 0x1 != 0
    }
}

impl SuccessBody for NotificationWaitSuccess {
    const NAME: &'static str = "NotificationWait response";

    fn read_after_status(c: &mut SuccessCursor<'_, '_>) -> Result<Self, BodyError> {
        let c = &mut *c.0;
        Ok(Self {
            error_code: c.u32("ErrorCode")?,
            event_pending: c.u32("EventPending")?,
            aux: c.sized("AuxiliaryBufferSize", "AuxiliaryBuffer")?,
        })
    }

    fn write_after_status(&self, w: &mut SuccessWriter<'_, '_>) -> Result<(), BodyError> {
        let w = &mut *w.0;
        w.u32(self.error_code);
        w.u32(self.event_pending);
        w.sized("AuxiliaryBuffer", &self.aux)
    }
}

/// NotificationWait response, success or failure layout.
pub type NotificationWaitResponse = Response<NotificationWaitSuccess>;

/// PING request and response (MS-OXCMAPIHTTP 2.2.6): no binary body in either
/// direction, only the HTTP headers and the response's meta-tags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct Ping;

impl WireBody for Ping {
    const NAME: &'static str = "PING";

    fn decode(bytes: &[u8]) -> Result<Self, BodyError> {
        if !bytes.is_empty() {
            return Err(BodyError::NotEmpty {
                body: Self::NAME,
                len: bytes.len(),
            });
        }
        Ok(Ping)
    }

    fn encode_into(&self, _out: &mut Vec<u8>) -> Result<(), BodyError> {
        Ok(())
    }
}

/// The STAT structure of the address book (MS-OXNSPI 2.2.8), 36 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct Stat {
    /// Sort order of the table.
    pub sort_type: u32,
    /// Minimal entry id of the container.
    pub container_id: u32,
    /// Minimal entry id of the current row.
    pub current_rec: u32,
    /// Offset from the current row.
    pub delta: i32,
    /// Approximate position as a fraction numerator.
    pub num_pos: u32,
    /// Rows in the table.
    pub total_recs: u32,
    /// Code page of 8-bit strings.
    pub code_page: u32,
    /// Locale of templates.
    pub template_locale: u32,
    /// Locale for sorting.
    pub sort_locale: u32,
}

/// Bind request of the address book endpoint (MS-OXCMAPIHTTP 2.2.5.1.1).
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub struct BindRequest {
    /// Bind flags (MS-OXNSPI NspiBind).
    pub flags: u32,
    /// The address book state, when HasState is non-zero (written back as HasState 1).
    pub state: Option<Stat>,
    /// Auxiliary extended buffer.
    #[serde(serialize_with = "crate::bytes_serde::text_or_hex")]
    pub aux: Vec<u8>,
}

impl WireBody for BindRequest {
    const NAME: &'static str = "Bind request";

    fn decode(bytes: &[u8]) -> Result<Self, BodyError> {
        let mut c = Cursor::new(Self::NAME, bytes);
        let flags = c.u32("Flags")?;
        let state = if c.u8("HasState")? != 0 {
            Some(Stat {
                sort_type: c.u32("State.SortType")?,
                container_id: c.u32("State.ContainerID")?,
                current_rec: c.u32("State.CurrentRec")?,
                delta: c.u32("State.Delta")? as i32,
                num_pos: c.u32("State.NumPos")?,
                total_recs: c.u32("State.TotalRecs")?,
                code_page: c.u32("State.CodePage")?,
                template_locale: c.u32("State.TemplateLocale")?,
                sort_locale: c.u32("State.SortLocale")?,
            })
        } else {
            None
        };
        let aux = c.sized("AuxiliaryBufferSize", "AuxiliaryBuffer")?;
        c.finish()?;
        Ok(Self { flags, state, aux })
    }

    fn encode_into(&self, out: &mut Vec<u8>) -> Result<(), BodyError> {
        let mut w = Writer {
            body: Self::NAME,
            out,
        };
        w.u32(self.flags);
        match &self.state {
            Some(stat) => {
                w.u8(1);
                w.u32(stat.sort_type);
                w.u32(stat.container_id);
                w.u32(stat.current_rec);
                w.i32(stat.delta);
                w.u32(stat.num_pos);
                w.u32(stat.total_recs);
                w.u32(stat.code_page);
                w.u32(stat.template_locale);
                w.u32(stat.sort_locale);
            }
            None => w.u8(0),
        }
        w.sized("AuxiliaryBuffer", &self.aux)
    }
}

/// Bind success response (MS-OXCMAPIHTTP 2.2.5.1.2).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct BindSuccess {
    /// NspiBind result.
    pub error_code: u32,
    /// The server's GUID (Microsoft byte order on the wire).
    pub server_guid: Uuid,
    /// Auxiliary extended buffer.
    #[serde(serialize_with = "crate::bytes_serde::text_or_hex")]
    pub aux: Vec<u8>,
}

impl SuccessBody for BindSuccess {
    const NAME: &'static str = "Bind response";

    fn read_after_status(c: &mut SuccessCursor<'_, '_>) -> Result<Self, BodyError> {
        let c = &mut *c.0;
        Ok(Self {
            error_code: c.u32("ErrorCode")?,
            server_guid: c.guid("ServerGuid")?,
            aux: c.sized("AuxiliaryBufferSize", "AuxiliaryBuffer")?,
        })
    }

    fn write_after_status(&self, w: &mut SuccessWriter<'_, '_>) -> Result<(), BodyError> {
        let w = &mut *w.0;
        w.u32(self.error_code);
        w.guid(&self.server_guid);
        w.sized("AuxiliaryBuffer", &self.aux)
    }
}

/// Bind response, success or failure layout.
pub type BindResponse = Response<BindSuccess>;

/// Unbind request (MS-OXCMAPIHTTP 2.2.5.2.1).
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub struct UnbindRequest {
    /// Reserved, 0.
    pub reserved: u32,
    /// Auxiliary extended buffer.
    #[serde(serialize_with = "crate::bytes_serde::text_or_hex")]
    pub aux: Vec<u8>,
}

impl WireBody for UnbindRequest {
    const NAME: &'static str = "Unbind request";

    fn decode(bytes: &[u8]) -> Result<Self, BodyError> {
        let mut c = Cursor::new(Self::NAME, bytes);
        let value = Self {
            reserved: c.u32("Reserved")?,
            aux: c.sized("AuxiliaryBufferSize", "AuxiliaryBuffer")?,
        };
        c.finish()?;
        Ok(value)
    }

    fn encode_into(&self, out: &mut Vec<u8>) -> Result<(), BodyError> {
        let mut w = Writer {
            body: Self::NAME,
            out,
        };
        w.u32(self.reserved);
        w.sized("AuxiliaryBuffer", &self.aux)
    }
}

/// Unbind response, success or failure layout. Note that one server (gromox) returns
/// ErrorCode 1 on success.
pub type UnbindResponse = Response<ErrorCodeSuccess>;

/// Fuzz entry point, shared by the cargo-fuzz target and a stable test: decodes `data`
/// as every request and response body and checks that whatever decodes is stable
/// through encode and decode again. (Bytes are not always identical: a Bind request's
/// HasState may be any non-zero byte on the wire and is written back as 1.)
///
/// # Panics
///
/// Panics only when such a round trip breaks, which is the bug the fuzzer looks for.
#[doc(hidden)]
#[allow(clippy::panic)]
pub fn fuzz_check(data: &[u8]) {
    fn round<T: WireBody + PartialEq + fmt::Debug>(data: &[u8]) {
        let Ok(value) = T::decode(data) else {
            return;
        };
        match value.encode().map(|bytes| T::decode(&bytes)) {
            Ok(Ok(again)) if again == value => {}
            other => panic!(
                "{} round trip is not stable: {value:?} -> {other:?}",
                T::NAME
            ),
        }
    }
    round::<ConnectRequest>(data);
    round::<ConnectResponse>(data);
    round::<ExecuteRequest>(data);
    round::<ExecuteResponse>(data);
    round::<DisconnectRequest>(data);
    round::<DisconnectResponse>(data);
    round::<NotificationWaitRequest>(data);
    round::<NotificationWaitResponse>(data);
    round::<Ping>(data);
    round::<BindRequest>(data);
    round::<BindResponse>(data);
    round::<UnbindRequest>(data);
    round::<UnbindResponse>(data);
}
