//! An Exchange emulator for tests and demos: one mailbox store with change tracking,
//! served over EWS and MAPI/HTTP on loopback.

pub mod autodiscover;
pub mod ews;
pub mod mapi;
pub mod server;
pub mod store;
pub mod token;
