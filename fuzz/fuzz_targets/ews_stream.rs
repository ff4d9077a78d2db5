//! GetStreamingEvents framing: any body, split anywhere, frames the same documents.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    exmux_ews::fuzzing::frame_stream(data);
});
