#![no_main]
//! `vpnd::fuzzing::ike_message`: see its documentation for the input format and the invariants.

libfuzzer_sys::fuzz_target!(|data: &[u8]| vpnd::fuzzing::ike_message(data));
