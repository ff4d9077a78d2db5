//! Deterministic race simulation of the exmux router core against the emulator store.
