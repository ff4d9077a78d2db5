//! MAPI over HTTP for exmux: a sans-I/O wire codec (framing, bodies, RPC_HEADER_EXT,
//! LZ77, ROPs, properties, IDSET, FastTransfer) and a session client.

pub mod ids;
pub mod idset;
pub mod notify;
pub mod prop;
pub mod rop;
