#![no_main]
//! Fuzz target `token_response`; its body is shared with the stable corpus replay (`fuzz/targets`).

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some(body) = halo_fuzz_targets::target("token_response") {
        body(data);
    }
});
