//! Arbitrary bytes as a device certificate: parse, verify against the fixed CA, decide (see
//! `jitp_fuzz::certificate`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| jitp_fuzz::certificate(data));
