//! Validity times before 1970.
//!
//! RFC 5280 4.1.2.5.1: a UTCTime year `YY` of 50-99 is `19YY`, so 1950-1969 are legal validity times (and
//! GeneralizedTime reaches further back). der, and so x509-cert, refuses them (its `DateTime` starts at the
//! Unix epoch), and so does webpki (its `UnixTime` is unsigned): both would call such a certificate
//! malformed. jitp does not re-implement X.509 parsing for this. When, and only when, x509-cert refuses a
//! certificate, [`shift`] looks for a notBefore or notAfter before 1970; if it finds one it makes a copy in
//! which each such time is overwritten, in place and with the same length, by 1970-01-01T00:00:00Z, and
//! keeps the real times (negative Unix seconds) read from the original bytes. The copy is what x509-cert
//! and webpki read the structure from; the signature is always checked over the original bytes (see
//! [`super::verify`]), and the times jitp decides on are the real ones.

use std::ops::Range;

use der::{Decode, Header, Reader, SliceReader, Tag};

/// A certificate whose pre-1970 validity times were moved to the epoch for parsing.
#[derive(Debug, Clone)]
pub(crate) struct Shifted {
    /// The copy, identical to the original except inside the shifted times.
    pub(crate) der: Vec<u8>,
    /// Where the tbsCertificate TLV is (the same bytes range in both).
    pub(crate) tbs: Range<usize>,
    /// The real notBefore, Unix seconds.
    pub(crate) not_before: i64,
    /// The real notAfter, Unix seconds.
    pub(crate) not_after: i64,
}

impl Shifted {
    /// The signed bytes of `original` and of the copy, for the signature check.
    pub(crate) fn tbs<'a>(&'a self, original: &'a [u8]) -> Option<(&'a [u8], &'a [u8])> {
        Some((original.get(self.tbs.clone())?, self.der.get(self.tbs.clone())?))
    }
}

/// `YYMMDDhhmmssZ` and `YYYYMMDDhhmmssZ` for 1970-01-01T00:00:00Z: the same lengths as any DER time.
const EPOCH_UTC: &[u8; 13] = b"700101000000Z";
const EPOCH_GENERALIZED: &[u8; 15] = b"19700101000000Z";

/// The copy of `der` with its pre-1970 validity times at the epoch, or `None` if it has none (or if the
/// outer structure is too broken to find them: then x509-cert's own error stands).
pub(crate) fn shift(der: &[u8]) -> Option<Shifted> {
    let layout = layout(der).ok()?;
    let not_before = parse_time(layout.times[0].0, der.get(layout.times[0].1.clone())?)?;
    let not_after = parse_time(layout.times[1].0, der.get(layout.times[1].1.clone())?)?;
    if not_before >= 0 && not_after >= 0 {
        return None;
    }
    let mut copy = der.to_vec();
    for ((tag, range), unix) in layout.times.iter().zip([not_before, not_after]) {
        if unix < 0 {
            let epoch: &[u8] = if *tag == Tag::UtcTime { EPOCH_UTC } else { EPOCH_GENERALIZED };
            copy.get_mut(range.clone())?.copy_from_slice(epoch);
        }
    }
    Some(Shifted { der: copy, tbs: layout.tbs, not_before, not_after })
}

/// The tbsCertificate TLV of `der`, found with der's reader, without decoding the rest.
pub(crate) fn tbs_range(der: &[u8]) -> Option<Range<usize>> {
    layout(der).ok().map(|l| l.tbs)
}

struct Layout {
    tbs: Range<usize>,
    /// Each validity time's tag and the range of its value bytes.
    times: [(Tag, Range<usize>); 2],
}

/// Certificate ::= SEQUENCE { tbsCertificate SEQUENCE { [0] version OPTIONAL, serialNumber, signature,
/// issuer, validity SEQUENCE { notBefore Time, notAfter Time }, ... }, ... } (RFC 5280 4.1).
fn layout(der: &[u8]) -> der::Result<Layout> {
    let at = |r: &SliceReader<'_>| usize::try_from(r.position());
    let mut r = SliceReader::new(der)?;
    expect(&mut r, Tag::Sequence)?;
    let tbs_start = at(&r)?;
    let tbs_header = expect(&mut r, Tag::Sequence)?;
    let tbs_end = at(&r)? + usize::try_from(tbs_header.length())?;
    if r.peek_byte() == Some(0xA0) {
        r.tlv_bytes()?; // [0] EXPLICIT version
    }
    for _ in ["serialNumber", "signature", "issuer"] {
        r.tlv_bytes()?;
    }
    expect(&mut r, Tag::Sequence)?;
    let mut time = || -> der::Result<(Tag, Range<usize>)> {
        let header = Header::decode(&mut r)?;
        let start = at(&r)?;
        let value = r.read_slice(header.length())?;
        Ok((header.tag(), start..start + value.len()))
    };
    let times = [time()?, time()?];
    Ok(Layout { tbs: tbs_start..tbs_end, times })
}

fn expect(r: &mut SliceReader<'_>, tag: Tag) -> der::Result<Header> {
    let header = Header::decode(r)?;
    if header.tag() != tag {
        return Err(der::ErrorKind::TagUnexpected { expected: Some(tag), actual: header.tag() }.into());
    }
    Ok(header)
}

/// A DER UTCTime (`YYMMDDhhmmssZ`, RFC 5280 4.1.2.5.1) or GeneralizedTime (`YYYYMMDDhhmmssZ`, 4.1.2.5.2) as
/// Unix seconds; `None` for anything else (fractions, offsets, impossible dates).
fn parse_time(tag: Tag, value: &[u8]) -> Option<i64> {
    let digits = |range: Range<usize>| -> Option<i32> {
        value.get(range)?.iter().try_fold(0i32, |n, b| b.is_ascii_digit().then(|| n * 10 + i32::from(b - b'0')))
    };
    let (year, rest) = match (tag, value.len()) {
        (Tag::UtcTime, 13) => {
            let yy = digits(0..2)?;
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, 2)
        }
        (Tag::GeneralizedTime, 15) => (digits(0..4)?, 4),
        _ => return None,
    };
    if value.last() != Some(&b'Z') {
        return None;
    }
    let two = |i: usize| digits(rest + i..rest + i + 2).and_then(|n| u8::try_from(n).ok());
    let month = time::Month::try_from(two(0)?).ok()?;
    let date = time::Date::from_calendar_date(year, month, two(2)?).ok()?;
    let clock = time::Time::from_hms(two(4)?, two(6)?, two(8)?).ok()?;
    Some(time::PrimitiveDateTime::new(date, clock).assume_utc().unix_timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_time_years_50_to_69_are_the_1900s() {
        assert_eq!(parse_time(Tag::UtcTime, b"600101000000Z"), Some(-315_619_200));
        assert_eq!(parse_time(Tag::UtcTime, b"500101000000Z"), Some(-631_152_000));
        assert_eq!(parse_time(Tag::UtcTime, b"691231235959Z"), Some(-1));
        assert_eq!(parse_time(Tag::UtcTime, b"700101000000Z"), Some(0));
        assert_eq!(parse_time(Tag::UtcTime, b"491231235959Z"), Some(2_524_607_999));
        assert_eq!(parse_time(Tag::GeneralizedTime, b"19400101000000Z"), Some(-946_771_200));
    }

    #[test]
    fn non_der_times_are_refused() {
        for bad in [&b"600101000000"[..], b"6001010000Z", b"600101000000+0100", b"601301000000Z", b"600230000000Z"] {
            assert_eq!(parse_time(Tag::UtcTime, bad), None, "{}", String::from_utf8_lossy(bad));
        }
        assert_eq!(parse_time(Tag::GeneralizedTime, b"19600101000000.5Z"), None);
        assert_eq!(parse_time(Tag::Utf8String, b"600101000000Z"), None);
    }

    #[test]
    fn garbage_has_no_layout() {
        for der in [&[][..], &[0x30], &[0x30, 0x00], &[0x30, 0x03, 0x30, 0x01, 0x00]] {
            assert!(shift(der).is_none());
            assert!(tbs_range(der).is_none());
        }
    }
}
