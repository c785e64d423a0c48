#![no_main]
//! `vpnd::fuzzing::config`: see its documentation for the input format and the invariants.

libfuzzer_sys::fuzz_target!(|data: &[u8]| vpnd::fuzzing::config(data));
