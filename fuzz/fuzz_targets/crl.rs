//! Arbitrary bytes as a profile's CRL file: parse, round-trip, verify against the fixed CA, look up (see
//! `jitp_fuzz::crl`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| jitp_fuzz::crl(data));
