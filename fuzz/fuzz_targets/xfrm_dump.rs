#![no_main]
//! `vpnd_xfrm::fuzzing::dump_reader`: one netlink receive buffer of replies to a dump.

libfuzzer_sys::fuzz_target!(|data: &[u8]| vpnd_xfrm::fuzzing::dump_reader(data));
