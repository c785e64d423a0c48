#![no_main]
//! `vpnd_radius::fuzzing::access_answer`: one answer to an Access-Request for EAP.

libfuzzer_sys::fuzz_target!(|data: &[u8]| vpnd_radius::fuzzing::access_answer(data));
