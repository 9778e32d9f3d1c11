//! `jitp_registry::event::parse` on arbitrary bytes (see `jitp_fuzz::event_parse` for the properties).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| jitp_fuzz::event_parse(data));
