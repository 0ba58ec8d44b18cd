//! Cross-crate end-to-end and conformance tests of the HALO SDK. The tests live in `tests/tests/`;
//! this library holds what they share.
