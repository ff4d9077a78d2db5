//! The library behind the `exmux` command line: the demo scenario, the decoder of
//! captured bodies and the emulator launcher, so tests can run them in process.

pub mod decode;
pub mod demo;
pub mod emulator;
pub mod login;
