#![no_main]
//! `vpnd::fuzzing::control_line`: see its documentation for the input format and the invariants.

libfuzzer_sys::fuzz_target!(|data: &[u8]| vpnd::fuzzing::control_line(data));
