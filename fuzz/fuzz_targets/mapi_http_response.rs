#![no_main]
//! Fuzzes exmux_mapihttp::http::fuzz_check: the response body reader never panics, and
//! reading in one piece or in two pieces gives the same result.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    exmux_mapihttp::http::fuzz_check(data);
});
