#![no_main]
//! `vpnd_radius::fuzzing::response`: one datagram from the accounting server.

libfuzzer_sys::fuzz_target!(|data: &[u8]| vpnd_radius::fuzzing::response(data));
