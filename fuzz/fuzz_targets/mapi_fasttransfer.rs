#![no_main]
//! Fuzzes the FastTransfer lexer and ICS sync parser. `fuzz_stream` checks that no input
//! panics and that whatever decodes re-encodes stably. This target also checks that the
//! elements are the same whether the stream arrives in one TransferBuffer or in many
//! small ones, because a server may end a buffer inside a tag, a length or a value.

use exmux_mapihttp::fxics::FxReader;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    exmux_mapihttp::fxics::fuzz_stream(data);

    let chunk = usize::from(data.first().copied().unwrap_or(0) % 16) + 1;
    assert_eq!(
        lex(data, data.len().max(1)),
        lex(data, chunk),
        "FastTransfer elements depend on where the stream is cut ({chunk}-byte buffers)"
    );
});

/// Lexes `data` fed in buffers of `chunk` bytes. Returns the elements (as Debug text,
/// because a NaN float is not equal to itself) up to the first error, and whether the
/// stream ended cleanly.
fn lex(data: &[u8], chunk: usize) -> (Vec<String>, bool) {
    let mut reader = FxReader::with_limit(1 << 20);
    let mut elements = Vec::new();
    for piece in data.chunks(chunk) {
        reader.feed(piece);
        loop {
            match reader.next_element() {
                Ok(Some(element)) => elements.push(format!("{element:?}")),
                Ok(None) => break,
                Err(_) => return (elements, false),
            }
        }
    }
    let clean = reader.finish().is_ok();
    (elements, clean)
}
