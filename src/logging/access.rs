//! The access log: one line per request, in the same stream and format as every other log line
//! (`target` `lms_proxy::access`, level INFO, so `RUST_LOG` turns it off like any other).
//!
//! Kept cheap on the request path:
//! - formatted by hand rather than as a `tracing` event, whose twelve fields cost about 17,500
//!   instructions per request, over a tenth of all the proxy did for one (benches/RESULTS.md);
//! - batched, like nginx's `access_log buffer=`: handing each line to the background writer
//!   woke its thread once per request. Batches go to the writer when full, every
//!   [`FLUSH_EVERY`], and at shutdown, in order, and one writer thread writes every line of
//!   every log, so lines never interleave.

use std::cell::RefCell;
use std::io::Write;
use std::sync::{Arc, Mutex, Once, PoisonError, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tracing_appender::non_blocking::NonBlocking;

use super::LogFormat;

pub const TARGET: &str = "lms_proxy::access";
/// A batch this large is handed to the writer at once.
const BATCH_BYTES: usize = 32 * 1024;
/// How late an access line may appear in the log.
const FLUSH_EVERY: Duration = Duration::from_millis(100);

/// One request's line. Never a query string, a header value or a token.
pub struct AccessLine<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub status: u16,
    pub route: &'a str,
    pub platform: &'a str,
    pub tool: &'a str,
    pub user: &'a str,
    pub upstream_ms: Option<u64>,
    pub total_ms: u64,
    pub cache: &'a str,
    pub error: &'a str,
}

#[derive(Clone)]
pub struct AccessLog {
    format: LogFormat,
    /// `None` when `RUST_LOG` leaves access lines out.
    batch: Option<Arc<Batch>>,
}

struct Batch {
    lines: Mutex<String>,
    writer: NonBlocking,
    /// The flush thread starts with the first line: commands that log no requests have none.
    flusher: Once,
}

thread_local! {
    static LINE: RefCell<String> = RefCell::new(String::with_capacity(512));
}

impl AccessLog {
    pub fn new(format: LogFormat, writer: Option<NonBlocking>) -> Self {
        let batch = writer.map(|writer| {
            Arc::new(Batch {
                lines: Mutex::new(String::with_capacity(BATCH_BYTES)),
                writer,
                flusher: Once::new(),
            })
        });
        Self { format, batch }
    }

    pub fn write(&self, line: &AccessLine) {
        let Some(batch) = &self.batch else {
            return;
        };
        batch.flusher.call_once(|| start_flusher(batch));
        LINE.with_borrow_mut(|out| {
            out.clear();
            render(self.format, line, SystemTime::now(), out);
            batch.append(out);
        });
    }

    /// Hands every line so far to the writer (at shutdown, before the writer is closed).
    pub fn flush(&self) {
        if let Some(batch) = &self.batch {
            batch.flush();
        }
    }
}

impl Batch {
    fn append(&self, line: &str) {
        let mut lines = self.lines.lock().unwrap_or_else(PoisonError::into_inner);
        lines.push_str(line);
        if lines.len() >= BATCH_BYTES {
            // Sent under the lock, so batches reach the writer in the order they were filled.
            self.send(&mut lines);
        }
    }

    fn flush(&self) {
        let mut lines = self.lines.lock().unwrap_or_else(PoisonError::into_inner);
        if !lines.is_empty() {
            self.send(&mut lines);
        }
    }

    /// The writer copies the bytes, so the buffer is kept for the next batch.
    fn send(&self, lines: &mut String) {
        // The writer only fails once it has been shut down, when there is nowhere left to log.
        let _ = self.writer.clone().write_all(lines.as_bytes());
        lines.clear();
    }
}

/// Flushes the batch every [`FLUSH_EVERY`]; the thread ends with the last clone of the log.
fn start_flusher(batch: &Arc<Batch>) {
    let weak = Arc::downgrade(batch);
    let spawned = std::thread::Builder::new()
        .name("access-log".into())
        .spawn(move || flush_periodically(&weak));
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "no access-log flush thread: lines wait for a full batch");
    }
}

fn flush_periodically(batch: &Weak<Batch>) {
    loop {
        std::thread::sleep(FLUSH_EVERY);
        match batch.upgrade() {
            Some(batch) => batch.flush(),
            None => return,
        }
    }
}

/// The line as tracing-subscriber's `fmt` (text) or `json().flatten_event(true)` writes an
/// event with these fields, so tools that parse the log see one shape for every line.
pub fn render(format: LogFormat, line: &AccessLine, now: SystemTime, out: &mut String) {
    let fields: [(&str, Value); 11] = [
        ("method", Value::Str(line.method)),
        ("path", Value::Str(line.path)),
        ("status", Value::Num(u64::from(line.status))),
        ("route", Value::Str(line.route)),
        ("platform", Value::Str(line.platform)),
        ("tool", Value::Str(line.tool)),
        ("user", Value::Str(line.user)),
        (
            "upstream_ms",
            line.upstream_ms.map_or(Value::None, Value::Num),
        ),
        ("total_ms", Value::Num(line.total_ms)),
        ("cache", Value::Str(line.cache)),
        ("error", Value::Str(line.error)),
    ];
    let (before_name, after_name) = match format {
        LogFormat::Text => {
            push_timestamp(out, now);
            out.push_str("  INFO ");
            out.push_str(TARGET);
            out.push_str(": request");
            (" ", "=")
        }
        LogFormat::Json => {
            out.push_str("{\"timestamp\":\"");
            push_timestamp(out, now);
            out.push_str("\",\"level\":\"INFO\",\"message\":\"request\"");
            (",\"", "\":")
        }
    };
    for (name, value) in fields {
        if matches!(value, Value::None) {
            continue;
        }
        out.push_str(before_name);
        out.push_str(name);
        out.push_str(after_name);
        value.push(out);
    }
    if format == LogFormat::Json {
        out.push_str(",\"target\":\"");
        out.push_str(TARGET);
        out.push_str("\"}");
    }
    out.push('\n');
}

enum Value<'a> {
    Str(&'a str),
    Num(u64),
    None,
}

impl Value<'_> {
    fn push(&self, out: &mut String) {
        match self {
            Self::Str(s) => push_quoted(out, s),
            Self::Num(n) => push_number(out, *n),
            Self::None => {}
        }
    }
}

/// A JSON string: quotes, backslashes and control characters escaped, so a path cannot forge
/// a line or a field.
fn push_quoted(out: &mut String, s: &str) {
    out.push('"');
    if s.bytes()
        .all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\')
    {
        out.push_str(s);
        out.push('"');
        return;
    }
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                out.push_str("\\u");
                let code = c as u32;
                for shift in [12, 8, 4, 0] {
                    out.push(char::from(
                        b"0123456789abcdef"[((code >> shift) & 0xf) as usize],
                    ));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn push_number(out: &mut String, n: u64) {
    let mut digits = [b'0'; 20];
    let start = write_digits(&mut digits, n);
    push_ascii(out, &digits[start..]);
}

/// `n` in exactly `width` decimal digits, zero-padded (callers pass values that fit).
fn push_padded(out: &mut String, n: u64, width: usize) {
    let mut digits = [b'0'; 20];
    write_digits(&mut digits, n);
    push_ascii(out, &digits[digits.len() - width.min(digits.len())..]);
}

/// Writes `n` right-aligned into `digits`; returns where its first digit is.
fn write_digits(digits: &mut [u8; 20], mut n: u64) -> usize {
    let mut i = digits.len();
    while i > 0 {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    i
}

fn push_ascii(out: &mut String, digits: &[u8]) {
    if let Ok(text) = std::str::from_utf8(digits) {
        out.push_str(text);
    }
}

thread_local! {
    /// The text of the second the last line on this thread was in: most lines share it.
    static SECOND: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
}

/// RFC 3339 in UTC with microseconds, as tracing-subscriber writes it.
fn push_timestamp(out: &mut String, now: SystemTime) {
    let since = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    SECOND.with_borrow_mut(|(cached, text)| {
        if *cached != secs {
            text.clear();
            push_second(text, secs);
            *cached = secs;
        }
        out.push_str(text);
    });
    push_padded(out, u64::from(since.subsec_micros()), 6);
    out.push('Z');
}

/// `YYYY-MM-DDTHH:MM:SS.`
fn push_second(out: &mut String, secs: u64) {
    let (year, month, day) = civil_from_days((secs / 86_400) as i64);
    let of_day = secs % 86_400;
    push_padded(out, year as u64, 4);
    out.push('-');
    push_padded(out, u64::from(month), 2);
    out.push('-');
    push_padded(out, u64::from(day), 2);
    out.push('T');
    push_padded(out, of_day / 3600, 2);
    out.push(':');
    push_padded(out, of_day / 60 % 60, 2);
    out.push(':');
    push_padded(out, of_day % 60, 2);
    out.push('.');
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn line() -> AccessLine<'static> {
        AccessLine {
            method: "GET",
            path: "/canvas/api/v1/courses",
            status: 200,
            route: "/canvas",
            platform: "canvas",
            tool: "quiz",
            user: "alice",
            upstream_ms: Some(3),
            total_ms: 14,
            cache: "hit",
            error: "-",
        }
    }

    fn at(secs: u64, micros: u32) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_micros(u64::from(micros))
    }

    fn timestamp(secs: u64, micros: u32) -> String {
        let mut out = String::new();
        push_timestamp(&mut out, at(secs, micros));
        out
    }

    #[test]
    fn timestamps_are_rfc3339_utc_with_micros() {
        assert_eq!(timestamp(0, 0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(timestamp(951_782_400, 5), "2000-02-29T00:00:00.000005Z");
        assert_eq!(
            timestamp(1_795_374_780, 123_456),
            "2026-11-22T19:13:00.123456Z"
        );
        assert_eq!(
            timestamp(4_107_542_399, 999_999),
            "2100-02-28T23:59:59.999999Z"
        );
        assert_eq!(timestamp(4_107_542_400, 0), "2100-03-01T00:00:00.000000Z");
        // The same second again (its text is reused), then an earlier one.
        assert_eq!(timestamp(4_107_542_400, 7), "2100-03-01T00:00:00.000007Z");
        assert_eq!(timestamp(0, 1), "1970-01-01T00:00:00.000001Z");
    }

    #[test]
    fn json_line_parses_with_every_field() {
        let mut out = String::new();
        render(LogFormat::Json, &line(), at(1_795_374_780, 1), &mut out);
        assert!(out.ends_with('\n'));
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["timestamp"], "2026-11-22T19:13:00.000001Z");
        assert_eq!(v["level"], "INFO");
        assert_eq!(v["target"], TARGET);
        assert_eq!(v["message"], "request");
        assert_eq!(v["path"], "/canvas/api/v1/courses");
        assert_eq!(v["status"], 200);
        assert_eq!(v["upstream_ms"], 3);
        assert_eq!(v["total_ms"], 14);
        assert_eq!(v["user"], "alice");
        assert_eq!(v["error"], "-");
    }

    #[test]
    fn text_line_reads_like_the_other_lines() {
        let mut out = String::new();
        let mut l = line();
        l.upstream_ms = None;
        render(LogFormat::Text, &l, at(1_795_374_780, 0), &mut out);
        assert_eq!(
            out,
            "2026-11-22T19:13:00.000000Z  INFO lms_proxy::access: request method=\"GET\" \
             path=\"/canvas/api/v1/courses\" status=200 route=\"/canvas\" platform=\"canvas\" \
             tool=\"quiz\" user=\"alice\" total_ms=14 cache=\"hit\" error=\"-\"\n"
        );
    }

    /// Collects what the background writer writes.
    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn batches_reach_the_writer_whole_and_in_order_and_flush_sends_the_rest() {
        let sink = Sink::default();
        let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
            .lossy(false)
            .finish(sink.clone());
        let log = AccessLog::new(LogFormat::Json, Some(writer));
        let paths: Vec<String> = (0..500)
            .map(|i| format!("/canvas/api/v1/courses/{i}"))
            .collect();
        for path in &paths {
            log.write(&AccessLine { path, ..line() });
        }
        log.flush();
        drop(guard); // waits for the writer thread to write everything it was given
        let text = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
        let written: Vec<String> = text
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["path"].to_string())
            .collect();
        let expected: Vec<String> = paths.iter().map(|p| format!("{p:?}")).collect();
        assert!(
            text.len() > 2 * BATCH_BYTES,
            "the test must span several batches"
        );
        assert_eq!(written, expected);
    }

    #[test]
    fn values_cannot_break_out_of_their_field() {
        let mut l = line();
        l.user = "eve\"\n{\"admin\":true}\\\u{1b}";
        for format in [LogFormat::Json, LogFormat::Text] {
            let mut out = String::new();
            render(format, &l, at(0, 0), &mut out);
            assert_eq!(out.matches('\n').count(), 1, "{out}");
            assert!(
                out.contains(r#""eve\"\n{\"admin\":true}\\\u001b""#),
                "{out}"
            );
        }
        let mut out = String::new();
        render(LogFormat::Json, &l, at(0, 0), &mut out);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["user"], l.user);
    }
}
