//! The durable append path: a write-ahead log of event batches.
//!
//! A batch appended over HTTP is one frame of `wal.log`, fsynced before the
//! append is acknowledged: a 24-byte frame header (magic `CWAL`, the
//! number of events as `u32`, the batch's sequence number as `u64`, an
//! FNV-1a checksum of the header fields and the events as `u64`), then the
//! events as `(holder u64, ts u64, place id u64)`. Places are named by
//! their id, not their index, so a frame means the same after any import.
//!
//! On open every whole, checksummed frame is replayed into the store's
//! tail; a torn last frame (the process died while writing it, so it was
//! never acknowledged) is ignored and cut off before the next append.
//! Compaction turns the tail into ordinary segments and records the last
//! sequence number it took in the manifest, the commit point: frames up to
//! it are skipped from then on, so a crash between the manifest switch and
//! the log's truncation neither loses nor doubles an event.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;

const MAGIC: &[u8; 4] = b"CWAL";
const FRAME_HEADER: usize = 24;
const EVENT: usize = 24;

/// An event as appended: holder id, Unix seconds, place id.
pub type RawEvent = (u64, u64, u64);

fn fnv1a(state: u64, bytes: &[u8]) -> u64 {
    bytes.iter().fold(state, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

fn checksum(count: u32, seq: u64, events: &[u8]) -> u64 {
    let h = fnv1a(FNV_OFFSET, &count.to_le_bytes());
    let h = fnv1a(h, &seq.to_le_bytes());
    fnv1a(h, events)
}

/// A replayed frame.
pub struct Frame {
    pub seq: u64,
    pub events: Vec<RawEvent>,
}

/// Reads the whole frames of the log at `path`; returns them and the byte
/// length they span (anything after is a torn last frame). A bad frame
/// with more of the log after it is damage, not a torn write: that is an
/// error, and nothing is cut.
pub fn replay(path: &Path) -> io::Result<(Vec<Frame>, u64)> {
    let mut bytes = Vec::new();
    match File::open(path) {
        Ok(mut f) => {
            f.read_to_end(&mut bytes)?;
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((Vec::new(), 0)),
        Err(e) => return Err(e),
    }
    let mut frames = Vec::new();
    let mut at = 0usize;
    while at + FRAME_HEADER <= bytes.len() {
        let h = &bytes[at..at + FRAME_HEADER];
        if &h[..4] != MAGIC {
            break;
        }
        let count = u32::from_le_bytes(h[4..8].try_into().expect("4 bytes"));
        let seq = u64::from_le_bytes(h[8..16].try_into().expect("8 bytes"));
        let sum = u64::from_le_bytes(h[16..24].try_into().expect("8 bytes"));
        let body_at = at + FRAME_HEADER;
        let Some(body) = bytes.get(body_at..body_at + count as usize * EVENT) else {
            break;
        };
        if checksum(count, seq, body) != sum {
            if body_at + body.len() < bytes.len() {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("the frame at byte {at} fails its checksum and more follows"),
                ));
            }
            break;
        }
        let word = |c: &[u8]| u64::from_le_bytes(c.try_into().expect("8 bytes"));
        let events = body
            .chunks_exact(EVENT)
            .map(|e| (word(&e[..8]), word(&e[8..16]), word(&e[16..])))
            .collect();
        frames.push(Frame { seq, events });
        at = body_at + body.len();
    }
    Ok((frames, at as u64))
}

/// Appends one frame at byte `valid_len` (cutting a torn frame there) and
/// syncs it; returns the log's new length.
pub fn append(path: &Path, valid_len: u64, seq: u64, events: &[RawEvent]) -> io::Result<u64> {
    let mut body = Vec::with_capacity(events.len() * EVENT);
    for &(holder, ts, place) in events {
        body.extend_from_slice(&holder.to_le_bytes());
        body.extend_from_slice(&ts.to_le_bytes());
        body.extend_from_slice(&place.to_le_bytes());
    }
    let count = u32::try_from(events.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a batch is too large"))?;
    let mut frame = Vec::with_capacity(FRAME_HEADER + body.len());
    frame.extend_from_slice(MAGIC);
    frame.extend_from_slice(&count.to_le_bytes());
    frame.extend_from_slice(&seq.to_le_bytes());
    frame.extend_from_slice(&checksum(count, seq, &body).to_le_bytes());
    frame.extend_from_slice(&body);
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)?;
    if file.metadata()?.len() != valid_len {
        file.set_len(valid_len)?;
    }
    file.seek(SeekFrom::Start(valid_len))?;
    file.write_all(&frame)?;
    file.sync_data()?;
    Ok(valid_len + frame.len() as u64)
}

/// Empties the log after a compaction.
pub fn truncate(path: &Path) -> io::Result<()> {
    match OpenOptions::new().write(true).open(path) {
        Ok(f) => {
            f.set_len(0)?;
            f.sync_all()
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_replay_and_a_torn_last_frame_is_cut_before_the_next() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wal.log");
        let a = [(1, 100, 7), (2, 101, 8)];
        let b = [(3, 200, 9)];
        let len = append(&path, 0, 1, &a).unwrap();
        let len = append(&path, len, 2, &b).unwrap();
        let (frames, valid) = replay(&path).unwrap();
        assert_eq!(valid, len);
        assert_eq!(frames.len(), 2);
        assert_eq!(frames[0].events, a.to_vec());
        assert_eq!((frames[1].seq, frames[1].events.clone()), (2, b.to_vec()));

        // The process died while writing a third frame.
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.extend_from_slice(b"CWAL\x05\x00\x00\x00garbage");
        std::fs::write(&path, &bytes).unwrap();
        let (frames, valid) = replay(&path).unwrap();
        assert_eq!((frames.len(), valid), (2, len));
        let len = append(&path, valid, 3, &[(4, 300, 10)]).unwrap();
        let (frames, valid) = replay(&path).unwrap();
        assert_eq!((frames.len(), valid), (3, len));

        // A flipped bit in the last frame is a torn write; in an earlier
        // one it is damage, refused rather than cut (later frames were
        // acknowledged).
        let good = std::fs::read(&path).unwrap();
        let mut bytes = good.clone();
        *bytes.last_mut().unwrap() ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(replay(&path).unwrap().0.len(), 2);
        let mut bytes = good;
        bytes[FRAME_HEADER + 3] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        assert!(replay(&path).is_err());
    }
}
