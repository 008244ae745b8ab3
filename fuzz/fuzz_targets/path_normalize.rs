//! Request path normalisation: see `vestibule::fuzzing::path_normalize`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| vestibule::fuzzing::path_normalize(data));
