//! Upstream HTTP/1 response heads: see `vestibule::fuzzing::h1_response_head`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| vestibule::fuzzing::h1_response_head(data));
