#![no_main]
//! `vpnd::fuzzing::fragments`: see its documentation for the input format and the invariants.

libfuzzer_sys::fuzz_target!(|data: &[u8]| vpnd::fuzzing::fragments(data));
