#![no_main]
//! Fuzzes exmux_mapihttp::idset::fuzz_idset: no panic on any input, and a stable re-encoding of
//! whatever decodes.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    exmux_mapihttp::idset::fuzz_idset(data);
});
