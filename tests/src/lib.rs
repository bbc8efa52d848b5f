//! Shared helpers for the cross-crate and hardware-in-loop scenario tests in `tests/tests/`.
