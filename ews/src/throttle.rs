//! Placeholder: filled in by the EWS client work.
