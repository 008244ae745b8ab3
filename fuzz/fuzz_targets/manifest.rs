//! Multi-document manifest parsing: see `vestibule::fuzzing::manifest`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| vestibule::fuzzing::manifest(data));
