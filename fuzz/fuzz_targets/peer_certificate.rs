#![no_main]
//! `vpnd::fuzzing::peer_certificate`: see its documentation for the input format.

libfuzzer_sys::fuzz_target!(|data: &[u8]| vpnd::fuzzing::peer_certificate(data));
