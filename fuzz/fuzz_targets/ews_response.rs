//! EWS response parsing: any body through every response parser; no panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    exmux_ews::fuzzing::parse_response(data);
});
