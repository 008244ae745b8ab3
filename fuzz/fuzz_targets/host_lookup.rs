//! Host header and SNI lookups: see `vestibule::fuzzing::host_lookup`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| vestibule::fuzzing::host_lookup(data));
