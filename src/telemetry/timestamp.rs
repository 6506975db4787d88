//! The process log's timestamps.

use std::cell::RefCell;
use std::time::{SystemTime, UNIX_EPOCH};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::FormatTime;

/// RFC 3339 timestamps in UTC with microseconds (`2026-12-05T00:20:21.901640Z`), the text
/// tracing-subscriber's `SystemTime` writes, with the date and time of day made once per second
/// on each thread: a request's line then writes six digits instead of working out a calendar
/// date.
#[derive(Debug, Clone, Copy, Default)]
pub struct Timestamp;

thread_local! {
    /// The second last written on this thread, and its text up to the `.`.
    static SECOND: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
}

impl FormatTime for Timestamp {
    fn format_time(&self, w: &mut Writer<'_>) -> std::fmt::Result {
        // A clock before 1970 or past the year 9999: tracing-subscriber's own text.
        let Ok(now) = SystemTime::now().duration_since(UNIX_EPOCH) else {
            return tracing_subscriber::fmt::time::SystemTime.format_time(w);
        };
        let secs = now.as_secs();
        let kept = SECOND.with_borrow_mut(|(at, text)| {
            if *at != secs {
                *text = second_text(secs)?;
                *at = secs;
            }
            Some(w.write_str(text))
        });
        match kept {
            Some(written) => written?,
            None => return tracing_subscriber::fmt::time::SystemTime.format_time(w),
        }
        let mut buf = [0u8; 7];
        w.write_str(micros_text(now.subsec_micros(), &mut buf))
    }
}

/// `YYYY-MM-DDTHH:MM:SS.` of `secs` seconds since the epoch, in UTC; `None` past the year
/// 9999.
fn second_text(secs: u64) -> Option<String> {
    let t = time::OffsetDateTime::from_unix_timestamp(i64::try_from(secs).ok()?).ok()?;
    Some(format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    ))
}

/// `micros` (below 1,000,000) as six digits and the `Z` of UTC, written in `buf`.
fn micros_text(micros: u32, buf: &mut [u8; 7]) -> &str {
    let mut div = 100_000;
    for d in buf.iter_mut().take(6) {
        *d = b'0' + ((micros / div) % 10) as u8;
        div /= 10;
    }
    buf[6] = b'Z';
    // ASCII digits and `Z`.
    std::str::from_utf8(buf).unwrap_or("000000Z")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn written(t: &impl FormatTime) -> String {
        let mut s = String::new();
        t.format_time(&mut Writer::new(&mut s)).unwrap();
        s
    }

    #[test]
    fn seconds_and_micros_are_written_as_rfc_3339() {
        let text = |secs| second_text(secs).unwrap();
        assert_eq!(text(0), "1970-01-01T00:00:00.");
        assert_eq!(text(1_796_430_525), "2026-12-05T00:28:45.");
        assert_eq!(text(951_868_799), "2000-02-29T23:59:59.");
        assert_eq!(text(253_402_300_799), "9999-12-31T23:59:59.");
        // Past 9999 the caller writes tracing-subscriber's own text.
        assert_eq!(second_text(253_402_300_800), None);
        let micros = |n| micros_text(n, &mut [0; 7]).to_string();
        assert_eq!(micros(0), "000000Z");
        assert_eq!(micros(901_640), "901640Z");
        assert_eq!(micros(7), "000007Z");
        assert_eq!(micros(999_999), "999999Z");
    }

    /// The same text as tracing-subscriber's `SystemTime`, taken in the same second.
    #[test]
    fn the_text_is_tracing_subscribers() {
        let theirs = tracing_subscriber::fmt::time::SystemTime;
        for _ in 0..100 {
            let (a, b, c) = (written(&theirs), written(&Timestamp), written(&theirs));
            assert_eq!(b.len(), a.len(), "{b} / {a}");
            if a[..20] == c[..20] {
                assert_eq!(b[..20], a[..20]);
                assert!(b.ends_with('Z') && b[20..26].bytes().all(|d| d.is_ascii_digit()));
                return;
            }
        }
        panic!("no two readings in the same second");
    }
}
