//! Manifests through `translate()`: see `vestibule::fuzzing::translate`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| vestibule::fuzzing::translate(data));
