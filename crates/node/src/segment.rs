//! An immutable day segment: one UTC day's events sorted by (place, time).
//!
//! Layout (little-endian):
//! - a 32-byte header: magic `CIVPNG02`, the day's start (`i64` Unix
//!   seconds), the event count (`u64`), the number of places (`u32`), the
//!   bit widths of the time and holder columns (`u8` each), two spare bytes;
//! - the place directory: `places + 1` `u32`s, each place's first row and
//!   then the end;
//! - the time column, bit-packed: seconds since the day's start, 17 bits
//!   (a day has 86,400 seconds);
//! - the holder column, bit-packed: the holder's index in the store's
//!   dictionary, in as many bits as the day's largest index needs (17 for
//!   100,000 subscribers, 25 for 30 million).
//!
//! Fixed-width packing keeps random access, so a place's run is still
//! binary-searched for a time interval, while an event takes 34 bits at
//! 100,000 subscribers instead of the 64 of two `u32` columns. Each column
//! is padded to whole 8-byte words plus one spare word, so any value is
//! read with one unaligned 8-byte load.
//!
//! Version 1 segments (`CIVPNG01`: absolute `u32` times and `u32` indices,
//! unpadded) are still read: they are the same columns with 32-bit widths.

use memmap2::Mmap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

const MAGIC_V1: &[u8; 8] = b"CIVPNG01";
const MAGIC_V2: &[u8; 8] = b"CIVPNG02";
pub(crate) const HEADER: usize = 32;
pub(crate) const DAY: i64 = 86_400;
/// Bits for seconds within a day.
const TS_BITS: u32 = 17;

/// One event as a segment stores it: place index, seconds since the
/// epoch (within the segment's day), holder index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Row {
    pub place: u32,
    pub ts: u32,
    pub holder: u32,
}

/// A bit-packed column inside a mapped file.
#[derive(Debug, Clone, Copy)]
struct Column {
    offset: usize,
    bits: u32,
    mask: u64,
    /// Added to every value (the day's start, for times).
    base: u32,
}

impl Column {
    fn new(offset: usize, bits: u32, base: u32) -> Self {
        Self {
            offset,
            bits,
            mask: if bits >= 64 {
                u64::MAX
            } else {
                (1 << bits) - 1
            },
            base,
        }
    }

    #[inline]
    fn get(&self, map: &[u8], row: usize) -> u32 {
        let bit = row * self.bits as usize;
        let at = self.offset + bit / 8;
        let word = match map.get(at..at + 8) {
            Some(b) => u64::from_le_bytes(b.try_into().expect("8 bytes")),
            // Only version 1 segments are unpadded: their last values.
            None => {
                let mut b = [0u8; 8];
                let rest = &map[at.min(map.len())..];
                b[..rest.len()].copy_from_slice(rest);
                u64::from_le_bytes(b)
            }
        };
        ((word >> (bit % 8)) & self.mask) as u32 + self.base
    }
}

/// Bytes a packed column of `rows` values of `bits` bits takes.
fn packed_len(rows: usize, bits: u32) -> usize {
    (rows * bits as usize).div_ceil(64) * 8 + 8
}

/// Bits needed to hold `max`.
fn bits_for(max: u32) -> u32 {
    (32 - max.leading_zeros()).max(1)
}

pub(crate) struct Segment {
    pub day_start: i64,
    pub places: usize,
    map: Mmap,
    ts: Column,
    holder: Column,
}

impl Segment {
    /// Maps and checks a segment file.
    pub fn open(path: &Path) -> Result<Segment, String> {
        let file = File::open(path).map_err(|e| e.to_string())?;
        // SAFETY: segments are written once, fsynced and renamed into place
        // before the manifest names them, and never modified afterwards;
        // the mapping is read-only.
        let map = unsafe { Mmap::map(&file) }.map_err(|e| e.to_string())?;
        if map.len() < HEADER {
            return Err("not an event segment".into());
        }
        let version = match &map[..8] {
            m if m == MAGIC_V1 => 1,
            m if m == MAGIC_V2 => 2,
            _ => return Err("not an event segment".into()),
        };
        let day_start = i64::from_le_bytes(map[8..16].try_into().expect("8 bytes"));
        let count = u64::from_le_bytes(map[16..24].try_into().expect("8 bytes")) as usize;
        let places = u32::from_le_bytes(map[24..28].try_into().expect("4 bytes")) as usize;
        let dir_len = (places + 1) * 4;
        let (ts, holder, len) = if version == 1 {
            let ts_at = HEADER + dir_len;
            (
                Column::new(ts_at, 32, 0),
                Column::new(ts_at + count * 4, 32, 0),
                ts_at + count * 8,
            )
        } else {
            let (ts_bits, holder_bits) = (map[28] as u32, map[29] as u32);
            if !(1..=32).contains(&ts_bits) || !(1..=32).contains(&holder_bits) {
                return Err("its column widths are out of range".into());
            }
            if !(0..=u32::MAX as i64 - DAY).contains(&day_start) {
                return Err("its day is out of range".into());
            }
            let ts_at = HEADER + dir_len;
            let holder_at = ts_at + packed_len(count, ts_bits);
            (
                Column::new(ts_at, ts_bits, day_start as u32),
                Column::new(holder_at, holder_bits, 0),
                holder_at + packed_len(count, holder_bits),
            )
        };
        if map.len() != len {
            return Err("its length does not match its header".into());
        }
        let segment = Segment {
            day_start,
            places,
            map,
            ts,
            holder,
        };
        if (0..places).any(|p| segment.dir(p) > segment.dir(p + 1)) || segment.dir(places) != count
        {
            return Err("its place directory is not in order".into());
        }
        Ok(segment)
    }

    #[inline]
    pub fn dir(&self, place: usize) -> usize {
        let at = HEADER + place * 4;
        u32::from_le_bytes(self.map[at..at + 4].try_into().expect("4 bytes")) as usize
    }

    #[inline]
    pub fn ts(&self, row: usize) -> u32 {
        self.ts.get(&self.map, row)
    }

    #[inline]
    pub fn holder(&self, row: usize) -> u32 {
        self.holder.get(&self.map, row)
    }

    /// Every row, in the segment's order (for merging segments).
    pub fn all_rows(&self) -> impl Iterator<Item = Row> + '_ {
        (0..self.places).flat_map(move |place| {
            (self.dir(place)..self.dir(place + 1)).map(move |row| Row {
                place: place as u32,
                ts: self.ts(row),
                holder: self.holder(row),
            })
        })
    }

    /// The rows of `place` with `t0 <= ts <= t1`.
    pub fn rows(&self, place: usize, t0: u32, t1: u32) -> std::ops::Range<usize> {
        if place >= self.places {
            return 0..0;
        }
        let (run_start, run_end) = (self.dir(place), self.dir(place + 1));
        let first_at_or_after = |t: u32, mut lo: usize| {
            let mut hi = run_end;
            while lo < hi {
                let mid = (lo + hi) / 2;
                if self.ts(mid) < t {
                    lo = mid + 1;
                } else {
                    hi = mid;
                }
            }
            lo
        };
        let start = first_at_or_after(t0, run_start);
        let end = match t1.checked_add(1) {
            Some(after) => first_at_or_after(after, start),
            None => run_end,
        };
        start..end
    }
}

/// Packs values of `bits` bits into little-endian 64-bit words.
struct BitWriter<'a, W: Write> {
    out: &'a mut W,
    word: u64,
    used: u32,
    written: usize,
}

impl<'a, W: Write> BitWriter<'a, W> {
    fn new(out: &'a mut W) -> Self {
        Self {
            out,
            word: 0,
            used: 0,
            written: 0,
        }
    }

    fn push(&mut self, value: u32, bits: u32) -> std::io::Result<()> {
        let value = value as u64;
        self.word |= value << self.used;
        if self.used + bits >= 64 {
            self.out.write_all(&self.word.to_le_bytes())?;
            self.written += 8;
            let taken = 64 - self.used;
            self.word = if taken >= 64 { 0 } else { value >> taken };
            self.used = self.used + bits - 64;
        } else {
            self.used += bits;
        }
        Ok(())
    }

    /// Writes the last partial word and the spare word.
    fn finish(mut self) -> std::io::Result<usize> {
        if self.used > 0 {
            self.out.write_all(&self.word.to_le_bytes())?;
            self.written += 8;
        }
        self.out.write_all(&[0u8; 8])?;
        Ok(self.written + 8)
    }
}

/// Writes a segment of `rows` (sorted by place, then time) for the day
/// starting at `day_start`, with a directory over `places` places, and
/// syncs it.
pub(crate) fn write(
    path: &Path,
    day_start: i64,
    places: usize,
    rows: &[Row],
) -> std::io::Result<()> {
    debug_assert!(rows.windows(2).all(|w| w[0] <= w[1]));
    let mut w = BufWriter::with_capacity(1 << 20, File::create(path)?);
    let holder_bits = bits_for(rows.iter().map(|r| r.holder).max().unwrap_or(0));
    let mut header = [0u8; HEADER];
    header[..8].copy_from_slice(MAGIC_V2);
    header[8..16].copy_from_slice(&day_start.to_le_bytes());
    header[16..24].copy_from_slice(&(rows.len() as u64).to_le_bytes());
    header[24..28].copy_from_slice(&(places as u32).to_le_bytes());
    header[28] = TS_BITS as u8;
    header[29] = holder_bits as u8;
    w.write_all(&header)?;
    let mut at = 0usize;
    for place in 0..=places as u32 {
        while at < rows.len() && rows[at].place < place {
            at += 1;
        }
        w.write_all(&(at as u32).to_le_bytes())?;
    }
    let mut bits = BitWriter::new(&mut w);
    for r in rows {
        let offset = r.ts as i64 - day_start;
        debug_assert!((0..DAY).contains(&offset));
        bits.push(offset as u32, TS_BITS)?;
    }
    bits.finish()?;
    let mut bits = BitWriter::new(&mut w);
    for r in rows {
        bits.push(r.holder, holder_bits)?;
    }
    bits.finish()?;
    let file = w.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packed_columns_read_back_every_value() {
        let dir = tempfile::tempdir().unwrap();
        let day = 1_583_020_800i64; // a UTC midnight
        for (holders, n) in [(1u32, 1usize), (2, 7), (100_000, 5000), (u32::MAX, 300)] {
            let mut x: u64 = 0x9e37_79b9_7f4a_7c15 ^ n as u64;
            let mut next = || {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x
            };
            let mut rows: Vec<Row> = (0..n)
                .map(|_| Row {
                    place: (next() % 40) as u32,
                    ts: (day + (next() % DAY as u64) as i64) as u32,
                    holder: (next() % holders as u64) as u32,
                })
                .collect();
            rows.push(Row {
                place: 39,
                ts: (day + DAY - 1) as u32,
                holder: holders - 1,
            });
            rows.sort_unstable();
            let path = dir.path().join(format!("seg-{n}"));
            write(&path, day, 41, &rows).unwrap();
            let seg = Segment::open(&path).unwrap();
            assert_eq!(seg.dir(41), rows.len());
            for (i, r) in rows.iter().enumerate() {
                assert_eq!((seg.ts(i), seg.holder(i)), (r.ts, r.holder), "row {i}");
            }
            for place in 0..41 {
                let want = rows.iter().filter(|r| r.place == place as u32).count();
                assert_eq!(seg.dir(place + 1) - seg.dir(place), want);
                let (t0, t1) = ((day + 3600) as u32, (day + 7200) as u32);
                let got = seg.rows(place, t0, t1).len();
                let want = rows
                    .iter()
                    .filter(|r| r.place == place as u32 && (t0..=t1).contains(&r.ts))
                    .count();
                assert_eq!(got, want);
            }
        }
    }

    #[test]
    fn version_1_segments_still_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("seg-v1");
        let day = 86_400i64 * 18_000;
        // Two places: place 0 has two events, place 1 one.
        let (ts, holders) = ([day + 5, day + 70_000, day + 9], [3u32, 1 << 20, 0]);
        let mut b = MAGIC_V1.to_vec();
        b.extend(day.to_le_bytes());
        b.extend(3u64.to_le_bytes());
        b.extend(2u32.to_le_bytes());
        b.extend([0u8; 4]);
        for d in [0u32, 2, 3] {
            b.extend(d.to_le_bytes());
        }
        for t in ts {
            b.extend((t as u32).to_le_bytes());
        }
        for h in holders {
            b.extend(h.to_le_bytes());
        }
        std::fs::write(&path, b).unwrap();
        let seg = Segment::open(&path).unwrap();
        for row in 0..3 {
            assert_eq!(
                (seg.ts(row), seg.holder(row)),
                (ts[row] as u32, holders[row])
            );
        }
        assert_eq!(seg.rows(0, (day + 6) as u32, u32::MAX), 1..2);
    }

    #[test]
    fn a_cut_or_foreign_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("seg");
        let rows = [Row {
            place: 0,
            ts: 86_400,
            holder: 3,
        }];
        write(&path, 86_400, 1, &rows).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 1]).unwrap();
        assert!(Segment::open(&path).is_err());
        std::fs::write(&path, b"hello, this is not a segment at all!").unwrap();
        assert!(Segment::open(&path).is_err());
    }
}
