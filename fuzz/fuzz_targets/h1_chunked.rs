//! Chunked upstream bodies fed in pieces: see `vestibule::fuzzing::h1_chunked`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| vestibule::fuzzing::h1_chunked(data));
