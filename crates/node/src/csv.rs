//! Reading the exchange CSV files fast: bytes, not strings; `.csv.gz`
//! transparently; every error names its file and line.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum CsvError {
    #[error("{file}: {source}")]
    Io { file: String, source: io::Error },
    #[error("{file}, line {line}: {message}")]
    Bad {
        file: String,
        line: u64,
        message: String,
    },
}

/// Lines of a CSV file after its header, with their numbers.
pub struct Lines {
    file: String,
    reader: Box<dyn BufRead>,
    buf: Vec<u8>,
    pub line: u64,
    /// Bytes read so far (of the file as stored), for progress.
    pub header: Vec<String>,
}

/// A reader that adds the bytes it reads to a shared counter (for
/// progress bars).
pub struct Counting<R> {
    pub inner: R,
    pub counter: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.counter
            .fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
        Ok(n)
    }
}

impl Lines {
    /// Opens `path` and checks that its header is `expected` (columns in
    /// order). `progress` counts the bytes read from disk.
    pub fn open(
        path: &Path,
        expected: &[&str],
        progress: std::sync::Arc<std::sync::atomic::AtomicU64>,
    ) -> Result<Self, CsvError> {
        let file = path.display().to_string();
        let raw = File::open(path).map_err(|source| CsvError::Io {
            file: file.clone(),
            source,
        })?;
        let counted = Counting {
            inner: raw,
            counter: progress,
        };
        let reader: Box<dyn BufRead> = if path.extension().is_some_and(|e| e == "gz") {
            Box::new(BufReader::with_capacity(
                1 << 20,
                flate2::read::MultiGzDecoder::new(BufReader::with_capacity(1 << 20, counted)),
            ))
        } else {
            Box::new(BufReader::with_capacity(1 << 20, counted))
        };
        Self::from_reader(&file, reader, expected)
    }

    /// Reads CSV from `reader` (`name` says where from, in errors) and
    /// checks that its header is `expected`.
    pub fn from_reader(
        name: &str,
        reader: Box<dyn BufRead>,
        expected: &[&str],
    ) -> Result<Self, CsvError> {
        let mut lines = Self {
            file: name.to_owned(),
            reader,
            buf: Vec::with_capacity(256),
            line: 0,
            header: Vec::new(),
        };
        if !lines.advance()? {
            return Err(lines.bad("the file is empty: expected a header row"));
        }
        let header = String::from_utf8_lossy(lines.current()).trim().to_owned();
        lines.header = header
            .split(',')
            .map(|c| c.trim().trim_start_matches('\u{feff}').to_owned())
            .collect();
        if lines.header.len() < expected.len()
            || lines.header[..expected.len()]
                .iter()
                .zip(expected)
                .any(|(a, b)| a != b)
        {
            return Err(lines.bad(&format!(
                "the header is {:?}; expected {}",
                header,
                expected.join(",")
            )));
        }
        Ok(lines)
    }

    pub fn bad(&self, message: &str) -> CsvError {
        CsvError::Bad {
            file: self.file.clone(),
            line: self.line,
            message: message.to_owned(),
        }
    }

    /// Moves to the next non-empty line; false at the end of the file.
    pub fn advance(&mut self) -> Result<bool, CsvError> {
        loop {
            self.buf.clear();
            let n = self
                .reader
                .read_until(b'\n', &mut self.buf)
                .map_err(|source| CsvError::Io {
                    file: self.file.clone(),
                    source,
                })?;
            if n == 0 {
                return Ok(false);
            }
            self.line += 1;
            while matches!(self.buf.last(), Some(b'\n' | b'\r')) {
                self.buf.pop();
            }
            if !self.buf.is_empty() {
                return Ok(true);
            }
        }
    }

    /// The current line, without its line break.
    pub fn current(&self) -> &[u8] {
        &self.buf
    }
}

/// Splits a line on commas (the numeric exchange files never quote).
pub fn fields(line: &[u8]) -> impl Iterator<Item = &[u8]> {
    line.split(|b| *b == b',')
}

pub fn parse_u64(field: &[u8]) -> Option<u64> {
    let field = field.trim_ascii();
    if field.is_empty() || field.len() > 20 {
        return None;
    }
    let mut v: u64 = 0;
    for &b in field {
        if !b.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add((b - b'0') as u64)?;
    }
    Some(v)
}

pub fn parse_f64(field: &[u8]) -> Option<f64> {
    std::str::from_utf8(field)
        .ok()?
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_parse_strictly() {
        assert_eq!(parse_u64(b"123"), Some(123));
        assert_eq!(parse_u64(b" 7 "), Some(7));
        assert_eq!(parse_u64(b"-1"), None);
        assert_eq!(parse_u64(b"1e3"), None);
        assert_eq!(parse_u64(b"99999999999999999999"), None);
        assert_eq!(parse_f64(b"37.5"), Some(37.5));
        assert_eq!(parse_f64(b"NaN"), None);
    }
}
