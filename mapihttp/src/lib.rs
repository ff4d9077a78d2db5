//! MAPI over HTTP for exmux: a sans-I/O wire codec (framing, bodies, RPC_HEADER_EXT,
//! LZ77, ROPs, properties, IDSET, FastTransfer) and a session client.

pub mod body;
pub mod ext;
pub mod fxics;
pub mod http;
pub mod ids;
pub mod idset;
pub mod lz77;
pub mod notify;
pub mod prop;
pub mod rop;
pub mod session;

/// The serialized form of byte fields, for decoded structures that `exmux decode` prints.
pub(crate) mod bytes_serde {
    /// Serializes bytes as text when they are printable ASCII (an ESSDN, a server name),
    /// allowing one trailing NUL, and otherwise as `0x` and lowercase hexadecimal.
    pub(crate) fn text_or_hex<S: serde::Serializer>(
        bytes: &[u8],
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        let text = bytes.strip_suffix(&[0]).unwrap_or(bytes);
        let printable = !text.is_empty() && text.iter().all(|byte| (0x20..0x7f).contains(byte));
        if printable {
            serializer.collect_str(&String::from_utf8_lossy(text))
        } else {
            let hex: String = bytes.iter().map(|byte| format!("{byte:02x}")).collect();
            serializer.collect_str(&format_args!("0x{hex}"))
        }
    }
}
