//! Fast CSV writing: integers and coordinates formatted by hand into a
//! large buffer (the simulator writes a hundred million lines).

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;

pub struct Csv {
    out: BufWriter<File>,
    pub rows: u64,
}

impl Csv {
    pub fn create(dir: &Path, name: &str, header: &str) -> io::Result<Self> {
        let file = File::create(dir.join(name))?;
        let mut out = BufWriter::with_capacity(1 << 20, file);
        out.write_all(header.as_bytes())?;
        out.write_all(b"\n")?;
        Ok(Self { out, rows: 0 })
    }

    pub fn finish(mut self) -> io::Result<u64> {
        self.out.flush()?;
        self.out.get_ref().sync_all()?;
        Ok(self.rows)
    }

    /// Writes one row from `fields`, already formatted (see [`Row`]).
    pub fn row(&mut self, row: &Row) -> io::Result<()> {
        self.rows += 1;
        self.out.write_all(&row.buf)
    }

    /// Writes `rows` rows formatted elsewhere (by a worker thread).
    pub fn write_raw(&mut self, bytes: &[u8], rows: u64) -> io::Result<()> {
        self.rows += rows;
        self.out.write_all(bytes)
    }
}

/// One CSV row being built.
#[derive(Default)]
pub struct Row {
    buf: Vec<u8>,
    fields: usize,
}

impl Row {
    pub fn new() -> Self {
        Self {
            buf: Vec::with_capacity(128),
            fields: 0,
        }
    }

    pub fn bytes(&self) -> &[u8] {
        &self.buf
    }

    pub fn clear(&mut self) -> &mut Self {
        self.buf.clear();
        self.fields = 0;
        self
    }

    fn sep(&mut self) {
        if self.fields > 0 {
            self.buf.push(b',');
        }
        self.fields += 1;
    }

    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.sep();
        push_u64(&mut self.buf, v);
        self
    }

    pub fn i64(&mut self, v: i64) -> &mut Self {
        self.sep();
        if v < 0 {
            self.buf.push(b'-');
        }
        push_u64(&mut self.buf, v.unsigned_abs());
        self
    }

    /// A coordinate with six decimals (about 0.1 m).
    pub fn deg(&mut self, v: f64) -> &mut Self {
        self.fixed(v, 6)
    }

    pub fn fixed(&mut self, v: f64, decimals: u32) -> &mut Self {
        self.sep();
        let scale = 10u64.pow(decimals);
        let scaled = (v.abs() * scale as f64).round() as u64;
        if v < 0.0 && scaled > 0 {
            self.buf.push(b'-');
        }
        push_u64(&mut self.buf, scaled / scale);
        if decimals > 0 {
            self.buf.push(b'.');
            let frac = scaled % scale;
            let mut digits = [b'0'; 20];
            let mut f = frac;
            for i in (0..decimals as usize).rev() {
                digits[i] = b'0' + (f % 10) as u8;
                f /= 10;
            }
            self.buf.extend_from_slice(&digits[..decimals as usize]);
        }
        self
    }

    /// Text; quoted if it holds a comma, quote or line break.
    pub fn str(&mut self, v: &str) -> &mut Self {
        self.sep();
        if v.contains([',', '"', '\n', '\r']) {
            self.buf.push(b'"');
            self.buf
                .extend_from_slice(v.replace('"', "\"\"").as_bytes());
            self.buf.push(b'"');
        } else {
            self.buf.extend_from_slice(v.as_bytes());
        }
        self
    }

    pub fn empty(&mut self) -> &mut Self {
        self.sep();
        self
    }

    pub fn end(&mut self) -> &Self {
        self.buf.push(b'\n');
        self
    }
}

fn push_u64(buf: &mut Vec<u8>, mut v: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    buf.extend_from_slice(&digits[i..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_format_like_the_standard_library() {
        let mut r = Row::new();
        r.u64(0)
            .u64(18446744073709551615)
            .i64(-42)
            .deg(37.5665)
            .deg(-0.0000004)
            .fixed(12.5, 0)
            .str("a,b")
            .str("plain")
            .end();
        assert_eq!(
            String::from_utf8(r.buf.clone()).unwrap(),
            "0,18446744073709551615,-42,37.566500,0.000000,13,\"a,b\",plain\n"
        );
    }
}
