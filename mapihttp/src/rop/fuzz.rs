//! Entry points shared by the cargo-fuzz targets and the stable tests that feed them
//! generated inputs. Each returns normally for any input; a panic is the bug.

use super::{
    RopBuffer, decode_request_buffer, decode_response_buffer_partial, try_encode_request_buffer,
    try_encode_response_buffer,
};

/// Decodes `data` as a ROP output buffer without context and as a ROP input buffer, and
/// checks that whatever decodes re-encodes without error to bytes that decode and
/// re-encode to the same bytes again (a fixed point after one normalisation).
///
/// # Panics
/// When a decoded buffer cannot be encoded (a length that the decoder accepted does not
/// fit back into its field), or the re-encoding is not stable. Both are codec bugs.
pub fn rop_buffers(data: &[u8]) {
    if let Ok(partial) = decode_response_buffer_partial(data) {
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
