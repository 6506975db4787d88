//! The process log's text lines: tracing-subscriber's `Full` format, byte for byte, with the
//! part before the fields (time, level, target) written directly.
//!
//! The default format writes that part through its styling types even without colours (a
//! `Display` of a painted string per piece); it was most of the formatting cost of the line
//! every request writes. The fields are written by [`Fields`] as tracing-subscriber's
//! `DefaultFields` writes them (`name=` and the value's `Debug`, a space between fields, the
//! message bare), without its styling types and with integers and plain texts written
//! directly: `DefaultFields` was about 7,600 instructions of a chat request's 146,000, most of
//! all the process log's line (issue 21, callgrind at `RUST_LOG=info`). Lines the fast path
//! would not write exactly as the default does — with colours, inside spans this layer sees,
//! bridged from the `log` crate, or holding an error value or a message with a terminal
//! control character to escape — are handed to the default format itself.

use std::any::TypeId;
use std::cell::RefCell;
use std::fmt::{self, Write as _};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::{DefaultFields, Format, Full, Writer};
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
        if TypeId::of::<N>() != TypeId::of::<DefaultFields>() || !Fields::write(event, &mut writer)?
        {
            ctx.format_fields(writer.by_ref(), event)?;
        }
        writeln!(writer)
    }
}

/// A thread's field buffer past this many bytes (one very long line) is not kept for the next.
const MAX_KEPT: usize = 64 * 1024;

thread_local! {
    /// Each thread's line buffer for [`Fields`] (fields are written here first, so a line
    /// [`Fields`] cannot write is left to `DefaultFields` untouched).
    static FIELDS: RefCell<String> = RefCell::new(String::with_capacity(256));
}

/// An event's fields as `DefaultFields` writes them without colours (see the module docs),
/// or `bail` when the event holds a value it leaves to `DefaultFields`.
struct Fields<'a> {
    out: &'a mut String,
    first: bool,
    bail: bool,
}

impl Fields<'_> {
    /// Writes `event`'s fields to `writer`: `Ok(false)` when they are left to `DefaultFields`
    /// (nothing written).
    fn write(event: &Event<'_>, writer: &mut Writer<'_>) -> Result<bool, fmt::Error> {
        // `try_with`: a thread that logs while its thread-locals are torn down gets the
        // default format, not a panic.
        FIELDS
            .try_with(|cell| {
                let Ok(mut out) = cell.try_borrow_mut() else {
                    return Ok(false);
                };
                if out.capacity() > MAX_KEPT {
                    *out = String::with_capacity(256);
                }
                out.clear();
                let mut fields = Fields {
                    out: &mut out,
                    first: true,
                    bail: false,
                };
                event.record(&mut fields);
                if fields.bail {
                    #[cfg(test)]
                    tests::BAILED.with(|n| n.set(n.get() + 1));
                    return Ok(false);
                }
                writer.write_str(&out)?;
                Ok(true)
            })
            .unwrap_or(Ok(false))
    }

    /// The space before every field but the first, then `name=` (a raw `r#` name without its
    /// prefix); false (and `bail`) for a `log.` field, which `DefaultFields` skips.
    fn name(&mut self, field: &Field) -> bool {
        let name = field.name();
        if self.bail || name.starts_with("log.") {
            self.bail = true;
            return false;
        }
        self.pad();
        self.out.push_str(name.strip_prefix("r#").unwrap_or(name));
        self.out.push('=');
        true
    }

    fn pad(&mut self) {
        if !self.first {
            self.out.push(' ');
        }
        self.first = false;
    }

    /// The message, bare: `DefaultFields` escapes terminal control characters in it, which
    /// this leaves to it.
    fn message(&mut self, value: &dyn fmt::Debug) {
        self.pad();
        let start = self.out.len();
        if write!(self.out, "{value:?}").is_err() || self.out[start..].chars().any(sanitized) {
            self.bail = true;
        }
    }

    fn integer(&mut self, field: &Field, value: impl itoa::Integer + fmt::Debug) {
        if field.name() == "message" {
            return self.message(&value);
        }
        if self.name(field) {
            self.out.push_str(itoa::Buffer::new().format(value));
        }
    }
}

/// Characters `DefaultFields` writes escaped in a message (its ANSI sanitisation).
fn sanitized(c: char) -> bool {
    matches!(
        c,
        '\x1b' | '\x07' | '\x08' | '\x0c' | '\x7f' | '\u{80}'..='\u{9f}'
    )
}

/// Whether `s`'s `Debug` is `s` in quotes: printable ASCII without `"` or `\`.
fn plain(s: &str) -> bool {
    s.bytes()
        .all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\')
}

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            return self.message(&format_args!("{value}"));
        }
        if !self.name(field) {
            return;
        }
        if plain(value) {
            self.out.push('"');
            self.out.push_str(value);
            self.out.push('"');
        } else {
            let _ = write!(self.out, "{value:?}");
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.integer(field, value);
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.integer(field, value);
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        if field.name() == "message" {
            return self.message(&value);
        }
        if self.name(field) {
            self.out.push_str(if value { "true" } else { "false" });
        }
    }

    fn record_error(&mut self, _: &Field, _: &(dyn std::error::Error + 'static)) {
        self.bail = true;
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            return self.message(value);
        }
        if self.name(field) && write!(self.out, "{value:?}").is_err() {
            self.bail = true;
        }
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
        let err = std::io::Error::other("disk \u{1b} full");
        tracing::error!(
            error = &err as &(dyn std::error::Error + 'static),
            "write failed"
        );
        tracing::info!(
            f = 1.0f64,
            big = 1e21f64,
            nan = f64::NAN,
            wide = -170141183460469231731687303715884105728i128,
            uwide = u128::MAX,
            empty = "",
            uni = "é 😀 \u{2028} \u{301}x",
            lead = "\u{301}",
            tab = "a\tb",
            q = "say \"hi\" \\ back",
            ctl = "\u{85}\u{7f}",
            maybe = ?None::<u8>,
            shown = %42u8,
            "fields of every kind"
        );
        tracing::info!(n = 1u64, "c1 \u{85} in a message");
        tracing::info!(n = 1u64, "bell \u{7} and é in a message");
        tracing::info!(message = "a message as a field", after = 2u64);
        tracing::info!(before = 1u64, message = %"middle", after = 2u64);
        tracing::info!(n = u64::MAX, m = i64::MIN, t = true, f = false);
        tracing::info!(message = 5u64);
        tracing::info!(x = 1u64, message = true);
        tracing::info!(message = -3i64, y = false);
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

    thread_local! {
        /// Events on this thread whose fields [`Fields`] left to `DefaultFields`.
        pub(super) static BAILED: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    }

    #[test]
    fn fields_leave_only_errors_and_escaped_messages_to_the_default() {
        let buf = Buf::default();
        let out = buf.clone();
        let s = tracing_subscriber::registry().with(
            tracing_subscriber::fmt::layer()
                .with_writer(move || out.clone())
                .with_ansi(false)
                .event_format(Text::new(Fixed)),
        );
        tracing::subscriber::with_default(s, || {
            let before = BAILED.with(|n| n.get());
            tracing::info!(request_id = %"01a2", model = %"default", deployment = "bench",
                status = 200u16, ms = 0u64, prompt_tokens = 10u64, completion_tokens = 8u64,
                "request");
            assert_eq!(
                BAILED.with(|n| n.get()),
                before,
                "the request line is written fast"
            );
            let err = std::io::Error::other("x");
            tracing::warn!(error = &err as &(dyn std::error::Error + 'static), "failed");
            tracing::warn!("escape \u{1b}[0m");
            assert_eq!(BAILED.with(|n| n.get()), before + 2);
        });
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        assert_eq!(
            text.lines().next().unwrap(),
            "2026-12-05T03:00:00.000001Z  INFO sluice::telemetry::line::tests: request \
             request_id=01a2 model=default deployment=\"bench\" status=200 ms=0 \
             prompt_tokens=10 completion_tokens=8"
        );
    }

    #[test]
    fn lines_are_the_default_formats_byte_for_byte() {
        for ansi in [false, true] {
            let (fast, default) = (lines(true, ansi), lines(false, ansi));
            assert_eq!(fast, default, "ansi: {ansi}");
            // Seventeen events; the `%` request id's newline is written as it is, by both.
            assert_eq!(fast.lines().count(), 18);
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
