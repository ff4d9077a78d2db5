#![no_main]
//! Fuzzes exmux_mapihttp::body::fuzz_check: every request and response body decoder
//! never panics, and whatever decodes is stable through encode and decode.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    exmux_mapihttp::body::fuzz_check(data);
});
