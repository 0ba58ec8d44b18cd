#![no_main]
//! Fuzz target `validate`; its body is shared with the stable corpus replay (`fuzz/targets`).

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some(body) = halo_fuzz_targets::target("validate") {
        body(data);
    }
});
