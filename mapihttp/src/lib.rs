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
