//! Entry points shared by the cargo-fuzz targets and the stable tests that feed them
//! generated inputs. Each returns normally for any input; a panic is the bug.

use super::{
    RopBuffer, decode_request_buffer, decode_response_buffer_partial, encode_request_buffer,
    encode_response_buffer,
};

/// Decodes `data` as a ROP output buffer without context and as a ROP input buffer, and
/// checks that whatever decodes re-encodes to bytes that decode and re-encode to the same
/// bytes again (a fixed point after one normalisation).
///
/// # Panics
/// When the re-encoding is not stable, which is a codec bug.
pub fn rop_buffers(data: &[u8]) {
    if let Ok(partial) = decode_response_buffer_partial(data) {
        let first = encode_response_buffer(&RopBuffer {
            rops: partial.rops,
            handles: partial.handles,
        });
        let again = decode_response_buffer_partial(&first);
        let Ok(again) = again else {
            panic!("re-encoded response buffer does not decode: {again:?}");
        };
        assert_eq!(
            again.stopped, None,
            "re-encoded response buffer stops early"
        );
        let second = encode_response_buffer(&RopBuffer {
            rops: again.rops,
            handles: again.handles,
        });
        assert_eq!(first, second, "response encoding is not stable");
    }
    if let Ok(requests) = decode_request_buffer(data) {
        let first = encode_request_buffer(&requests);
        let again = decode_request_buffer(&first);
        let Ok(again) = again else {
            panic!("re-encoded request buffer does not decode: {again:?}");
        };
        assert_eq!(
            encode_request_buffer(&again),
            first,
            "request encoding is not stable"
        );
    }
}
