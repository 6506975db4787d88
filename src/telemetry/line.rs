//! The process log's text lines: tracing-subscriber's `Full` format, byte for byte, with the
//! part before the fields (time, level, target) written directly.
//!
//! The default format writes that part through its styling types even without colours (a
//! `Display` of a painted string per piece); it was most of the formatting cost of the line
//! every request writes. The fields go through the same [`FormatFields`] (escaping and all) as
//! before. Lines the fast path would not write exactly as the default does — with colours,
//! inside spans this layer sees, or bridged from the `log` crate — are handed to the default
//! format itself.

use std::fmt;
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::{Format, Full, Writer};
use tracing_subscriber::fmt::time::FormatTime;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// The text line format: `{time} {level:>5} {target}: {fields}` (see the module docs).
pub struct Text<T> {
    timer: T,
    full: Format<Full, T>,
}

impl<T: FormatTime + Clone> Text<T> {
    /// Lines timed by `timer`.
    pub fn new(timer: T) -> Self {
        Text {
            full: tracing_subscriber::fmt::format().with_timer(timer.clone()),
            timer,
        }
    }
}

/// Levels as the default format pads them.
fn level(l: &Level) -> &'static str {
    match *l {
        Level::TRACE => "TRACE",
        Level::DEBUG => "DEBUG",
        Level::INFO => " INFO",
        Level::WARN => " WARN",
        Level::ERROR => "ERROR",
    }
}

impl<S, N, T> FormatEvent<S, N> for Text<T>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    T: FormatTime,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        let in_span = ctx
            .event_scope()
            .is_some_and(|s| s.from_root().next().is_some());
        let from_log = meta.fields().field("log.target").is_some();
        if writer.has_ansi_escapes() || in_span || from_log {
            return self.full.format_event(ctx, writer, event);
        }
        if self.timer.format_time(&mut writer).is_err() {
            writer.write_str("<unknown time>")?;
        }
        writer.write_char(' ')?;
        writer.write_str(level(meta.level()))?;
        writer.write_char(' ')?;
        writer.write_str(meta.target())?;
        writer.write_str(": ")?;
        ctx.format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use tracing_subscriber::layer::SubscriberExt;

    /// A fixed time, so two formats' lines can be compared.
    #[derive(Clone)]
    struct Fixed;
    impl FormatTime for Fixed {
        fn format_time(&self, w: &mut Writer<'_>) -> fmt::Result {
            w.write_str("2026-12-05T03:00:00.000001Z")
        }
    }

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn events() {
        let id = "01a2-\"quoted\"\n\u{1b}[31mred";
        tracing::info!(
            request_id = %id,
            model = %"de fault",
            deployment = "bench \"b\"",
            status = 200u16,
            ms = 3u64,
            ok = true,
            neg = -4i64,
            ratio = 0.5f64,
            "request"
        );
        tracing::warn!(target: "sluice::other", why = ?Some("x"), "slow \u{1b}[0m upstream");
        tracing::error!(error = %"boom", "request log write failed");
        tracing::debug!(n = 1u64, "attempt failed");
        tracing::trace!("just a message");
        tracing::info!(r#type = "raw", "raw field name");
        let span = tracing::info_span!("route", deployment = "d");
        let _in = span.enter();
        tracing::info!(inside = 1u64, "in a span");
    }

    fn lines(fast: bool, ansi: bool) -> String {
        let buf = Buf::default();
        let out = buf.clone();
        let layer = tracing_subscriber::fmt::layer()
            .with_writer(move || out.clone())
            .with_ansi(ansi);
        let subscriber =
            tracing_subscriber::registry().with(tracing_subscriber::filter::LevelFilter::TRACE);
        if fast {
            let s = subscriber.with(layer.event_format(Text::new(Fixed)));
            tracing::subscriber::with_default(s, events);
        } else {
            let s = subscriber.with(layer.with_timer(Fixed));
            tracing::subscriber::with_default(s, events);
        }
        String::from_utf8(buf.0.lock().unwrap().clone()).unwrap()
    }

    #[test]
    fn lines_are_the_default_formats_byte_for_byte() {
        for ansi in [false, true] {
            let (fast, default) = (lines(true, ansi), lines(false, ansi));
            assert_eq!(fast, default, "ansi: {ansi}");
            // Seven events; the `%` request id's newline is written as it is, by both.
            assert_eq!(fast.lines().count(), 8);
        }
        // The lines outside spans are written by the fast path: a default format timed
        // otherwise marks only the line it writes (the one in a span).
        #[derive(Clone)]
        enum Timer {
            Fixed,
            Marked,
        }
        impl FormatTime for Timer {
            fn format_time(&self, w: &mut Writer<'_>) -> fmt::Result {
                match self {
                    Timer::Fixed => Fixed.format_time(w),
                    Timer::Marked => w.write_str("DELEGATED"),
                }
            }
        }
        let buf = Buf::default();
        let out = buf.clone();
        let text = Text {
            timer: Timer::Fixed,
            full: tracing_subscriber::fmt::format().with_timer(Timer::Marked),
        };
        let s = tracing_subscriber::registry()
            .with(tracing_subscriber::filter::LevelFilter::TRACE)
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(move || out.clone())
                    .with_ansi(false)
                    .event_format(text),
            );
        tracing::subscriber::with_default(s, events);
        let marked = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        let delegated: Vec<&str> = marked.lines().filter(|l| l.contains("DELEGATED")).collect();
        assert_eq!(delegated.len(), 1, "{marked}");
        assert!(delegated[0].contains("in a span"));
        let plain = lines(true, false);
        assert!(plain.starts_with(
            "2026-12-05T03:00:00.000001Z  INFO sluice::telemetry::line::tests: request request_id="
        ));
    }
}
