//! End-to-end tests of exmux live in `tests/`; this library holds their shared fixtures.
