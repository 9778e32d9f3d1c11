//! Policy rendering with arbitrary subject values (see `jitp_fuzz::render` for the input format and properties).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    jitp_fuzz::render(data);
});
