//! Usage traces: the three formats a replay reads, and the one format we write.
//!
//! A [`Trace`] is demand over time: CPU in cores and, when the source has it, memory in bytes.
//! Parsers take the text and return a trace or a [`ParseError`] naming the line, what was
//! expected there and what was found; they never touch the file system. [`read_trace`] is the
//! thin function that reads a file and puts its path on the error. The export format
//! (`timestamp,cpu_cores,memory_gib`) is defined here once: the daemon's `export metrics`
//! writes it with an [`ExportWriter`], and [`parse`] reads it back.
//!
//! The CSV formats (VASim, export) are read and written by the `csv` crate: quoting, CRLF
//! and blank lines are its business. gcd-vms is not CSV: its columns are separated by any
//! run of whitespace, which the `csv` crate cannot express (one delimiter byte), so that
//! reader stays hand-written; `readers_table` has the tab and double-space cases.
//! This module knows nothing about policies or scores.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use autoscaler_core::GIB;
use time::format_description::BorrowedFormatItem;
use time::macros::format_description;
use time::{OffsetDateTime, PrimitiveDateTime};

/// One sample of demand.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    /// Seconds since the Unix epoch for timestamped formats; since the first line for gcd-vms.
    pub t_secs: f64,
    /// CPU demand in cores.
    pub cpu_cores: f64,
    /// Memory demand in bytes, when the trace has memory.
    pub memory_bytes: Option<f64>,
}

/// Demand over time, sampled every `step_secs` (gaps are allowed: scoring uses the real
/// time between points).
#[derive(Debug, Clone, PartialEq)]
pub struct Trace {
    pub name: String,
    pub step_secs: f64,
    pub points: Vec<Point>,
}

impl Trace {
    /// Whether any point carries memory demand.
    pub fn has_memory(&self) -> bool {
        self.points.iter().any(|p| p.memory_bytes.is_some())
    }

    /// Hours from the first point to the end of the last one.
    pub fn hours(&self) -> f64 {
        match (self.points.first(), self.points.last()) {
            (Some(a), Some(b)) => (b.t_secs - a.t_secs + self.step_secs) / 3600.0,
            _ => 0.0,
        }
    }
}

/// The formats [`parse`] understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// HiPro-IT's Google cluster VMs: `CPU% MEM%` of one machine, one line every 5 minutes.
    GcdVms,
    /// VASim's CSV: `TIMESTAMP,CPU_USAGE_ACTUAL`, usage in cores.
    Vasim,
    /// Our own `autoscaler export metrics`: `timestamp,cpu_cores,memory_gib[,...]`.
    Export,
}

/// The machine a gcd-vms trace's percentages refer to.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scale {
    pub cores: f64,
    pub memory_gib: f64,
}

/// A line that could not be read, with what was wanted there.
#[derive(Debug, Clone, PartialEq)]
pub struct ParseError {
    /// 1-based line number; 0 when the problem is the whole input (for example empty).
    pub line: usize,
    pub expected: String,
    pub found: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "line {}: expected {}, found {:?}",
            self.line, self.expected, self.found
        )
    }
}

impl std::error::Error for ParseError {}

/// A trace file that could not be used.
#[derive(Debug)]
pub enum TraceError {
    Io { path: PathBuf, source: io::Error },
    Parse { path: PathBuf, source: ParseError },
}

impl fmt::Display for TraceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TraceError::Io { path, source } => {
                write!(f, "cannot read trace {}: {source}", path.display())
            }
            TraceError::Parse { path, source } => write!(
                f,
                "{}:{}: expected {}, found {:?}; fix or remove that line",
                path.display(),
                source.line,
                source.expected,
                source.found
            ),
        }
    }
}

// No `source()`: the Display above already says everything its sources would, and error
// chains printed with `{:#}` would say it twice.
impl std::error::Error for TraceError {}

/// The header the export format starts with; extra columns after these are allowed.
pub const EXPORT_HEADER: &str = "timestamp,cpu_cores,memory_gib";
const VASIM_HEADER: &str = "TIMESTAMP,CPU_USAGE_ACTUAL";
/// gcd-vms files have no timestamps: one line every 5 minutes (README).
const GCD_STEP_SECS: f64 = 300.0;

/// Writes the export format: the header when made, then one row per sample, e.g.
/// `2026-11-02T14:05:00,1.250000,3.500000`. Call [`ExportWriter::finish`]: rows are buffered,
/// and an error while flushing them is only seen there.
pub struct ExportWriter<W: io::Write>(csv::Writer<W>);

impl<W: io::Write> ExportWriter<W> {
    /// Starts the file with [`EXPORT_HEADER`].
    pub fn new(w: W) -> io::Result<Self> {
        let mut csv = csv::Writer::from_writer(w);
        csv.write_record(EXPORT_HEADER.split(','))?;
        Ok(ExportWriter(csv))
    }

    /// One row: UTC second, cores, GiB (empty when unknown).
    pub fn row(
        &mut self,
        unix_secs: i64,
        cpu_cores: f64,
        memory_gib: Option<f64>,
    ) -> io::Result<()> {
        let mem = memory_gib.map_or_else(String::new, |g| format!("{g:.6}"));
        self.0
            .write_record([format_utc(unix_secs), format!("{cpu_cores:.6}"), mem])?;
        Ok(())
    }

    /// Flushes the rows and gives the writer back.
    pub fn finish(self) -> io::Result<W> {
        self.0.into_inner().map_err(|e| e.into_error())
    }
}

/// Guesses the format from the first non-empty line, then from the file extension.
pub fn detect(text: &str, extension: Option<&str>) -> Option<Format> {
    let first = text.lines().map(str::trim).find(|l| !l.is_empty())?;
    let lower = first.to_ascii_lowercase();
    if lower.starts_with(&VASIM_HEADER.to_ascii_lowercase()) {
        return Some(Format::Vasim);
    }
    if lower.starts_with(EXPORT_HEADER) {
        return Some(Format::Export);
    }
    let numeric = first.split_whitespace().count() == 2
        && first.split_whitespace().all(|f| f.parse::<f64>().is_ok());
    if numeric || extension.is_some_and(|e| e.eq_ignore_ascii_case("txt")) {
        return Some(Format::GcdVms);
    }
    None
}

/// Parses a trace in any known format (detected by [`detect`]).
pub fn parse(
    name: &str,
    text: &str,
    extension: Option<&str>,
    scale: Scale,
) -> Result<Trace, ParseError> {
    match detect(text, extension) {
        Some(Format::GcdVms) => parse_gcd_vms(name, text, scale),
        Some(Format::Vasim) => parse_vasim(name, text),
        Some(Format::Export) => parse_export(name, text),
        None => Err(ParseError {
            line: 1,
            expected: format!(
                "a header `{VASIM_HEADER}` (VASim), `{EXPORT_HEADER}` (autoscaler export) \
                 or two numbers `CPU% MEM%` (gcd-vms)"
            ),
            found: text.lines().next().unwrap_or("").chars().take(80).collect(),
        }),
    }
}

/// Reads and parses one trace file; the trace is named after the file's stem.
pub fn read_trace(path: &Path, scale: Scale) -> Result<Trace, TraceError> {
    let text = std::fs::read_to_string(path).map_err(|source| TraceError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let name = path.file_stem().map_or_else(
        || path.display().to_string(),
        |s| s.to_string_lossy().into_owned(),
    );
    let ext = path.extension().and_then(|e| e.to_str());
    parse(&name, &text, ext, scale).map_err(|source| TraceError::Parse {
        path: path.to_path_buf(),
        source,
    })
}

/// The public traces beside the repository (`../shared/traces`, as on CI), where the
/// examples and benches look when no directory is given.
pub fn shared_traces_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/traces")
}

/// Reads every `.txt` and `.csv` file under `dir` (recursively, sorted by path). A file that
/// fails is reported in the second list and the others are still read.
pub fn read_dir(dir: &Path, scale: Scale) -> Result<(Vec<Trace>, Vec<TraceError>), TraceError> {
    let mut files = Vec::new();
    collect_files(dir, &mut files).map_err(|source| TraceError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    files.sort();
    let (mut traces, mut errors) = (Vec::new(), Vec::new());
    for f in files {
        match read_trace(&f, scale) {
            Ok(t) => traces.push(t),
            Err(e) => errors.push(e),
        }
    }
    Ok((traces, errors))
}

fn collect_files(dir: &Path, out: &mut Vec<PathBuf>) -> io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect_files(&path, out)?;
        } else if path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| e == "txt" || e == "csv")
        {
            out.push(path);
        }
    }
    Ok(())
}

/// gcd-vms: `CPU% MEM%` per line, percent of the machine `scale`.
pub fn parse_gcd_vms(name: &str, text: &str, scale: Scale) -> Result<Trace, ParseError> {
    let mut points = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let bad = || ParseError {
            line: i + 1,
            expected: "two whitespace-separated non-negative numbers `CPU% MEM%`".to_string(),
            found: line.to_string(),
        };
        let mut fields = line.split_whitespace();
        let (Some(cpu), Some(mem), None) = (fields.next(), fields.next(), fields.next()) else {
            return Err(bad());
        };
        let (cpu, mem) = (number(cpu).ok_or_else(bad)?, number(mem).ok_or_else(bad)?);
        points.push(Point {
            t_secs: points.len() as f64 * GCD_STEP_SECS,
            cpu_cores: cpu / 100.0 * scale.cores,
            memory_bytes: Some(mem / 100.0 * scale.memory_gib * GIB as f64),
        });
    }
    finish(name, points, GCD_STEP_SECS)
}

/// VASim: `TIMESTAMP,CPU_USAGE_ACTUAL`, timestamps like `2023.04.02-00:09:00:000`.
pub fn parse_vasim(name: &str, text: &str) -> Result<Trace, ParseError> {
    parse_timed_csv(name, text, VASIM_HEADER, |fields, bad| {
        let (Some(ts), Some(cpu)) = (fields.get(0), fields.get(1)) else {
            return Err(bad("`TIMESTAMP,CPU_USAGE_ACTUAL`"));
        };
        let t =
            parse_vasim_time(ts).ok_or_else(|| bad("a timestamp like 2023.04.02-00:09:00:000"))?;
        let cpu = number(cpu).ok_or_else(|| bad("CPU usage in cores, a non-negative number"))?;
        Ok(Point {
            t_secs: t,
            cpu_cores: cpu,
            memory_bytes: None,
        })
    })
}

/// Our export: `timestamp,cpu_cores,memory_gib[,...]`, timestamps `YYYY-MM-DDTHH:MM:SS` UTC.
pub fn parse_export(name: &str, text: &str) -> Result<Trace, ParseError> {
    parse_timed_csv(name, text, EXPORT_HEADER, |fields, bad| {
        let (Some(ts), Some(cpu), Some(mem)) = (fields.get(0), fields.get(1), fields.get(2)) else {
            return Err(bad(
                "`timestamp,cpu_cores,memory_gib` (memory may be empty)",
            ));
        };
        let t = parse_utc(ts).ok_or_else(|| bad("a UTC timestamp like 2026-11-02T14:05:00"))?;
        let cpu = number(cpu).ok_or_else(|| bad("cpu_cores, a non-negative number"))?;
        let mem = match mem {
            "" => None,
            m => Some(
                number(m).ok_or_else(|| bad("memory_gib, a non-negative number or empty"))?
                    * GIB as f64,
            ),
        };
        Ok(Point {
            t_secs: t,
            cpu_cores: cpu,
            memory_bytes: mem,
        })
    })
}

/// A CSV with a header and a timestamp per row: blank rows skipped, fields trimmed, each row
/// turned into a point by `row` (given its fields and a constructor of this row's error), rows
/// in time order, the step taken as the median gap. Columns after the header's are ignored.
fn parse_timed_csv(
    name: &str,
    text: &str,
    header: &str,
    row: impl Fn(&csv::StringRecord, &dyn Fn(&str) -> ParseError) -> Result<Point, ParseError>,
) -> Result<Trace, ParseError> {
    let mut records = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes())
        .into_records()
        .filter(|r| r.as_ref().map_or(true, |r| r.iter().any(|f| !f.is_empty())));
    let mut next = || -> Result<Option<(usize, csv::StringRecord)>, ParseError> {
        match records.next().transpose() {
            Ok(r) => Ok(r.map(|r| (line_of(text, r.position()), r))),
            // The text is UTF-8 and the reader flexible, so this is not expected; say what
            // the crate said, on its line.
            Err(e) => Err(ParseError {
                line: line_of(text, e.position()),
                expected: "a CSV row".to_string(),
                found: e.to_string(),
            }),
        }
    };
    let wanted = || format!("the header `{header}`");
    match next()? {
        Some((_, h))
            if header
                .split(',')
                .zip(h.iter().chain(std::iter::repeat("")))
                .all(|(want, got)| want.eq_ignore_ascii_case(got)) => {}
        Some((line, _)) => {
            return Err(ParseError {
                line,
                expected: wanted(),
                found: line_text(text, line),
            });
        }
        None => {
            return Err(ParseError {
                line: 0,
                expected: wanted(),
                found: String::new(),
            });
        }
    }
    let mut points = Vec::new();
    while let Some((line, fields)) = next()? {
        let bad = |what: &str| ParseError {
            line,
            expected: what.to_string(),
            found: line_text(text, line),
        };
        points.push(row(&fields, &bad)?);
        check_order(&points, line, &line_text(text, line))?;
    }
    let step = median_step(&points);
    finish(name, points, step)
}

/// The 1-based line a record starts on. The crate's own line count leaves out the blank
/// lines it skips, and its byte offset is where they begin, so skip them here.
fn line_of(text: &str, at: Option<&csv::Position>) -> usize {
    at.map_or(0, |p| {
        let bytes = text.as_bytes();
        let mut end = usize::try_from(p.byte()).map_or(bytes.len(), |b| b.min(bytes.len()));
        while bytes.get(end).is_some_and(|b| matches!(b, b'\r' | b'\n')) {
            end += 1;
        }
        bytes[..end].iter().filter(|&&b| b == b'\n').count() + 1
    })
}

/// The 1-based line `line` of `text`, trimmed, for an error's "found".
fn line_text(text: &str, line: usize) -> String {
    text.lines()
        .nth(line.saturating_sub(1))
        .unwrap_or("")
        .trim()
        .to_string()
}

fn check_order(points: &[Point], line: usize, text: &str) -> Result<(), ParseError> {
    if let [.., a, b] = points
        && b.t_secs <= a.t_secs
    {
        return Err(ParseError {
            line,
            expected: "a timestamp later than the previous row's".to_string(),
            found: text.to_string(),
        });
    }
    Ok(())
}

fn finish(name: &str, points: Vec<Point>, step_secs: f64) -> Result<Trace, ParseError> {
    if points.is_empty() {
        return Err(ParseError {
            line: 0,
            expected: "at least one sample".to_string(),
            found: "no data rows".to_string(),
        });
    }
    Ok(Trace {
        name: name.to_string(),
        step_secs,
        points,
    })
}

/// A finite, non-negative number.
fn number(s: &str) -> Option<f64> {
    s.trim()
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && *v >= 0.0)
}

/// The median gap between points: robust to a few missing rows; 60 s for a single point.
fn median_step(points: &[Point]) -> f64 {
    let mut gaps: Vec<f64> = points
        .windows(2)
        .map(|w| w[1].t_secs - w[0].t_secs)
        .collect();
    if gaps.is_empty() {
        return 60.0;
    }
    gaps.sort_by(f64::total_cmp);
    gaps[gaps.len() / 2]
}

/// VASim's `%Y.%m.%d-%H:%M:%S:%f`, e.g. `2023.04.02-00:09:00:000`.
const VASIM_TIME: &[BorrowedFormatItem<'static>] =
    format_description!("[year].[month].[day]-[hour]:[minute]:[second]:[subsecond]");
/// The spec's and our exports' `YYYY-MM-DDTHH:MM:SS`, in UTC.
const UTC_TIME: &[BorrowedFormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");

/// `2023.04.02-00:09:00:000` (VASim's format) to Unix seconds.
fn parse_vasim_time(s: &str) -> Option<f64> {
    let t = PrimitiveDateTime::parse(s, VASIM_TIME).ok()?.assume_utc();
    Some(t.unix_timestamp() as f64 + f64::from(t.nanosecond()) / 1e9)
}

/// `YYYY-MM-DDTHH:MM:SS` (optionally ending in `Z`) to Unix seconds.
fn parse_utc(s: &str) -> Option<f64> {
    let s = s.strip_suffix('Z').unwrap_or(s);
    let t = PrimitiveDateTime::parse(s, UTC_TIME).ok()?.assume_utc();
    Some(t.unix_timestamp() as f64)
}

/// Unix seconds to `YYYY-MM-DDTHH:MM:SS` (UTC); out of the calendar's range, `@secs`.
pub fn format_utc(unix_secs: i64) -> String {
    OffsetDateTime::from_unix_timestamp(unix_secs)
        .ok()
        .and_then(|t| t.format(UTC_TIME).ok())
        .unwrap_or_else(|| format!("@{unix_secs}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCALE: Scale = Scale {
        cores: 8.0,
        memory_gib: 32.0,
    };

    /// What a good parse must give: format, step, first point (t, cores, GiB), count.
    type Good = (Format, f64, (f64, f64, Option<f64>), usize);
    /// What a bad one must say: the line, and a word of what was expected.
    type Bad<'a> = (usize, &'a str);

    /// Parses `text`; on success compares (format, step, first point, count), on failure the
    /// error's line and a word of what was expected.
    fn check(text: &str, ext: Option<&str>, expect: Result<Good, Bad<'_>>) {
        let got = parse("t", text, ext, SCALE);
        match (got, expect) {
            (Ok(t), Ok((format, step, (t0, cpu, mem), n))) => {
                assert_eq!(detect(text, ext), Some(format), "{text:?}");
                assert_eq!(t.step_secs, step, "{text:?}");
                let p = t.points[0];
                assert_eq!(
                    (
                        p.t_secs,
                        p.cpu_cores,
                        p.memory_bytes.map(|b| b / GIB as f64)
                    ),
                    (t0, cpu, mem),
                    "{text:?}"
                );
                assert_eq!(t.points.len(), n, "{text:?}");
            }
            (Err(e), Err((line, word))) => {
                assert_eq!(e.line, line, "{text:?}: {e}");
                assert!(e.expected.contains(word), "{text:?}: {e} lacks {word:?}");
            }
            (got, want) => panic!("{text:?}: got {got:?}, want {want:?}"),
        }
    }

    #[test]
    fn readers_table() {
        // gcd-vms: 50% of 8 cores, 25% of 32 GiB.
        check(
            "50 25\n12.5 50\n",
            Some("txt"),
            Ok((Format::GcdVms, 300.0, (0.0, 4.0, Some(8.0)), 2)),
        );
        check(
            "6.763 5.103\n\n7.288 5.139\n",
            None,
            Ok((Format::GcdVms, 300.0, (0.0, 0.54104, Some(1.63296)), 2)),
        );
        // Any run of whitespace separates gcd-vms columns, as its README says: the reason
        // this reader is not the `csv` crate's (one delimiter byte).
        check(
            "50\t25\n12.5   50\n",
            None,
            Ok((Format::GcdVms, 300.0, (0.0, 4.0, Some(8.0)), 2)),
        );
        check("50 25\n50 x\n", Some("txt"), Err((2, "CPU% MEM%")));
        check("50 25\n50 25 1\n", Some("txt"), Err((2, "two")));
        check("50 25\n-1 25\n", Some("txt"), Err((2, "non-negative")));
        check("50 25\nNaN 25\n", Some("txt"), Err((2, "non-negative")));
        // VASim: minutes, cores, no memory; 2023-04-02T00:09:00Z is 1680394140.
        check(
            "TIMESTAMP,CPU_USAGE_ACTUAL\n2023.04.02-00:09:00:000,7.2\n2023.04.02-00:10:00:000,7.04\n",
            Some("csv"),
            Ok((Format::Vasim, 60.0, (1_680_394_140.0, 7.2, None), 2)),
        );
        // What the `csv` crate brings: quoted fields, CRLF, a header in any case.
        check(
            "timestamp,cpu_usage_actual\r\n\"2023.04.02-00:09:00:000\",\"7.2\"\r\n \r\n2023.04.02-00:10:00:000, 7.04\r\n",
            None,
            Ok((Format::Vasim, 60.0, (1_680_394_140.0, 7.2, None), 2)),
        );
        check(
            "TIMESTAMP,CPU_USAGE_ACTUAL\n2023.04.02-00:09:00:000,7.2\n2023-04-02 00:10,7\n",
            None,
            Err((3, "timestamp")),
        );
        check(
            "TIMESTAMP,CPU_USAGE_ACTUAL\n2023.04.02-00:09:00:000,abc\n",
            None,
            Err((2, "cores")),
        );
        check(
            "TIMESTAMP,CPU_USAGE_ACTUAL\n2023.04.02-00:09:00:000\n",
            None,
            Err((2, "TIMESTAMP")),
        );
        check(
            "TIMESTAMP,CPU_USAGE_ACTUAL\n2023.04.02-00:09:00:000,1\n2023.04.02-00:08:00:000,1\n",
            None,
            Err((3, "later")),
        );
        check(
            "TIMESTAMP,CPU_USAGE_ACTUAL\n",
            None,
            Err((0, "at least one sample")),
        );
        // Export: extra columns ignored, empty memory allowed.
        check(
            "timestamp,cpu_cores,memory_gib,cpu_quota\n2026-11-02T14:05:00,1.5,2.0,200\n2026-11-02T14:05:30,1,,200\n",
            Some("csv"),
            Ok((Format::Export, 30.0, (1_793_628_300.0, 1.5, Some(2.0)), 2)),
        );
        check(
            "timestamp,cpu_cores,memory_gib\n2026-11-02 14:05:00,1,2\n",
            None,
            Err((2, "UTC timestamp")),
        );
        check(
            "timestamp,cpu_cores,memory_gib\n2026-11-02T14:05:00,1\n",
            None,
            Err((2, "memory may be empty")),
        );
        check(
            "timestamp,cpu_cores,memory_gib\n2026-11-02T14:05:00,1,-2\n",
            None,
            Err((2, "memory_gib")),
        );
        // Blank lines count in the line numbers errors give.
        check(
            "timestamp,cpu_cores,memory_gib\n\n2026-11-02T14:05:00,1,x\n",
            None,
            Err((3, "memory_gib")),
        );
        // The header is compared field by field, not as a prefix of the line.
        check(
            "timestamp,cpu_cores,memory_gib_max\n2026-11-02T14:05:00,1,2\n",
            None,
            Err((1, "the header")),
        );
        // Unknown.
        check("hello,world\n1,2\n", Some("csv"), Err((1, "VASim")));
        check("", None, Err((1, "gcd-vms")));
    }

    #[test]
    fn export_rows_read_back() {
        let mut w = ExportWriter::new(Vec::new()).expect("write to a Vec");
        w.row(1_793_628_300, 1.25, Some(3.5))
            .expect("write to a Vec");
        w.row(1_793_628_330, 0.5, None).expect("write to a Vec");
        let text = String::from_utf8(w.finish().expect("flush to a Vec")).expect("utf-8");
        // Byte for byte what the hand-written writer wrote.
        assert_eq!(
            text,
            "timestamp,cpu_cores,memory_gib\n\
             2026-11-02T14:05:00,1.250000,3.500000\n\
             2026-11-02T14:05:30,0.500000,\n"
        );
        let t = parse("day", &text, Some("csv"), SCALE).expect("own export parses");
        assert_eq!(t.points.len(), 2);
        assert_eq!(
            t.points[1],
            Point {
                t_secs: 1_793_628_330.0,
                cpu_cores: 0.5,
                memory_bytes: None
            }
        );
    }

    #[test]
    fn utc_round_trips() {
        for secs in [0, 951_782_400, 1_680_394_140, 1_793_628_300, 4_102_444_799] {
            let text = format_utc(secs);
            assert_eq!(parse_utc(&text), Some(secs as f64), "{text}");
        }
        assert_eq!(format_utc(951_782_400), "2000-02-29T00:00:00");
        // The calendar is the `time` crate's: no 30th of February.
        assert_eq!(parse_utc("2023-02-30T00:00:00"), None);
        assert_eq!(
            parse_vasim_time("2023.04.02-00:09:00:500"),
            Some(1_680_394_140.5)
        );
        assert_eq!(parse_vasim_time("2023.04.02-00:09:00"), None);
    }

    #[test]
    fn file_errors_name_the_file_and_line() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("bad.txt");
        std::fs::write(&path, "1 2\n3 four\n").expect("write temp file");
        let err = read_trace(&path, SCALE).expect_err("malformed");
        let msg = err.to_string();
        assert!(msg.contains("bad.txt:2: expected"), "{msg}");
        let missing = read_trace(&dir.path().join("none.txt"), SCALE).expect_err("missing");
        assert!(missing.to_string().contains("none.txt"), "{missing}");
    }
}
