//! Entry points shared by the cargo-fuzz targets and the stable tests that feed them
//! generated inputs. Each returns normally for any input; a panic is the bug.

use super::{
    RecipientRow, ResponseBody, RopBuffer, RopRequest, RopResponse, decode_request_buffer,
    decode_response_buffer_partial, try_encode_request_buffer, try_encode_response_buffer,
};
use crate::prop::PropTag;

/// Checks that a RecipientRow which decodes re-encodes, and that its encoding is a fixed
/// point after one normalisation (booleans and lossy UTF-16 may change the first time).
fn recipient_row(bytes: &[u8], columns: &[PropTag]) {
    let Ok(row) = RecipientRow::decode(bytes, columns, 0) else {
        return;
    };
    let first = row.to_bytes(columns);
    let Ok(first) = first else {
        panic!("decoded RecipientRow does not encode: {first:?}");
    };
    let again = RecipientRow::decode(&first, columns, 0);
    let Ok(again) = again else {
        panic!("re-encoded RecipientRow does not decode: {again:?}");
    };
    assert_eq!(
        again.to_bytes(columns).ok(),
        Some(first),
        "RecipientRow encoding is not stable"
    );
}

/// Decodes `data` as a ROP output buffer without context and as a ROP input buffer, and
/// checks that whatever decodes re-encodes without error to bytes that decode and
/// re-encode to the same bytes again (a fixed point after one normalisation). The
/// RecipientRows of RopModifyRecipients and RopOpenMessage get the same check.
///
/// # Panics
/// When a decoded buffer cannot be encoded (a length that the decoder accepted does not
/// fit back into its field), or the re-encoding is not stable. Both are codec bugs.
pub fn rop_buffers(data: &[u8]) {
    if let Ok(partial) = decode_response_buffer_partial(data) {
        for rop in &partial.rops {
            let body = match rop {
                RopResponse::Result(result) => &result.body,
                _ => continue,
            };
            let message = match body {
                ResponseBody::OpenMessage(message) => message,
                ResponseBody::OpenEmbeddedMessage { message, .. } => message,
                _ => continue,
            };
            for row in &message.recipient_rows {
                recipient_row(&row.recipient_row, &message.recipient_columns);
            }
        }
        let first = try_encode_response_buffer(&RopBuffer {
            rops: partial.rops,
            handles: partial.handles,
        });
        let Ok(first) = first else {
            panic!("decoded response buffer does not encode: {first:?}");
        };
        let again = decode_response_buffer_partial(&first);
        let Ok(again) = again else {
            panic!("re-encoded response buffer does not decode: {again:?}");
        };
        assert_eq!(
            again.stopped, None,
            "re-encoded response buffer stops early"
        );
        let second = try_encode_response_buffer(&RopBuffer {
            rops: again.rops,
            handles: again.handles,
        });
        let Ok(second) = second else {
            panic!("re-decoded response buffer does not encode: {second:?}");
        };
        assert_eq!(first, second, "response encoding is not stable");
    }
    if let Ok(requests) = decode_request_buffer(data) {
        for rop in &requests.rops {
            if let RopRequest::ModifyRecipients { columns, rows, .. } = rop {
                for row in rows {
                    recipient_row(&row.recipient_row, columns);
                }
            }
        }
        let first = try_encode_request_buffer(&requests);
        let Ok(first) = first else {
            panic!("decoded request buffer does not encode: {first:?}");
        };
        let again = decode_request_buffer(&first);
        let Ok(again) = again else {
            panic!("re-encoded request buffer does not decode: {again:?}");
        };
        assert_eq!(
            try_encode_request_buffer(&again).ok(),
            Some(first),
            "request encoding is not stable"
        );
    }
}
