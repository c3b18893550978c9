//! The durable append path: a write-ahead log of event batches.
//!
//! A batch appended over HTTP is one frame of `wal.log`, fsynced before the
//! append is acknowledged: a 48-byte frame header (magic `CWAL`, the number
//! of events as `u32`, the batch's sequence number as `u64`, the sender's
//! 16-byte batch id or zeros, an FNV-1a checksum of the events, and one of
//! the header itself), then the events as `(holder u64, ts u64, place id
//! u64)`. Places are named by their id, not their index, so a frame means
//! the same after any import.
//!
//! On open every whole, checksummed frame is replayed into the store's
//! tail. Only the last frame can be torn (the process died while writing
//! it, so it was never acknowledged): it is ignored and cut off before the
//! next append. A bad frame with a good frame header anywhere after it is
//! damage, not a torn write, and is refused rather than cut: the frames
//! after it were acknowledged. Compaction turns the tail into ordinary
//! segments and records the last sequence number it took in the manifest,
//! the commit point: frames up to it are skipped from then on, so a crash
//! between the manifest switch and the log's truncation neither loses nor
//! doubles an event.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;

const MAGIC: &[u8; 4] = b"CWAL";
const FRAME_HEADER: usize = 48;
const EVENT: usize = 24;

/// An event as appended: holder id, Unix seconds, place id.
pub type RawEvent = (u64, u64, u64);

/// A sender's id for a batch, so that a batch sent again is recognised.
pub type BatchId = [u8; 16];

fn fnv1a(state: u64, bytes: &[u8]) -> u64 {
    bytes.iter().fold(state, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

fn word(b: &[u8]) -> u64 {
    u64::from_le_bytes(b.try_into().expect("8 bytes"))
}

/// A whole, checksummed frame header at the start of `h`, as (count, seq,
/// batch id, body checksum).
fn header(h: &[u8]) -> Option<(u32, u64, BatchId, u64)> {
    let h = h.get(..FRAME_HEADER)?;
    if &h[..4] != MAGIC || fnv1a(FNV_OFFSET, &h[..40]) != word(&h[40..48]) {
        return None;
    }
    Some((
        u32::from_le_bytes(h[4..8].try_into().expect("4 bytes")),
        word(&h[8..16]),
        h[16..32].try_into().expect("16 bytes"),
        word(&h[32..40]),
    ))
}

/// A replayed frame.
pub struct Frame {
    pub seq: u64,
    pub batch: BatchId,
    pub events: Vec<RawEvent>,
}

fn damaged(at: usize, what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("the frame at byte {at} {what}, and acknowledged frames follow it"),
    )
}

/// Reads the whole frames of the log at `path`; returns them and the byte
/// length they span (anything after is a torn last frame). A bad frame
/// with a good frame after it is damage, not a torn write: that is an
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
    replay_bytes(&bytes)
}

/// [`replay`] of a log's bytes.
pub fn replay_bytes(bytes: &[u8]) -> io::Result<(Vec<Frame>, u64)> {
    // Whether a good frame header starts anywhere after `from`.
    let good_header_after =
        |from: usize| (from..bytes.len()).any(|p| header(&bytes[p..]).is_some());
    let mut frames = Vec::new();
    let mut at = 0usize;
    while at < bytes.len() {
        let Some((count, seq, batch, sum)) = header(&bytes[at..]) else {
            if good_header_after(at + 1) {
                return Err(damaged(at, "has a bad header"));
            }
            break; // a torn header
        };
        let body_at = at + FRAME_HEADER;
        let Some(body) = bytes.get(body_at..body_at + count as usize * EVENT) else {
            break; // a whole header, its events cut off by the end
        };
        if fnv1a(FNV_OFFSET, body) != sum {
            if good_header_after(body_at + body.len()) {
                return Err(damaged(at, "fails its checksum"));
            }
            break;
        }
        let events = body
            .chunks_exact(EVENT)
            .map(|e| (word(&e[..8]), word(&e[8..16]), word(&e[16..])))
            .collect();
        frames.push(Frame { seq, batch, events });
        at = body_at + body.len();
    }
    Ok((frames, at as u64))
}

/// Appends one frame at byte `valid_len` (cutting a torn frame there) and
/// syncs it; returns the log's new length.
pub fn append(
    path: &Path,
    valid_len: u64,
    seq: u64,
    batch: BatchId,
    events: &[RawEvent],
) -> io::Result<u64> {
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
    frame.extend_from_slice(&batch);
    frame.extend_from_slice(&fnv1a(FNV_OFFSET, &body).to_le_bytes());
    let header_sum = fnv1a(FNV_OFFSET, &frame);
    frame.extend_from_slice(&header_sum.to_le_bytes());
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

    const NO_ID: BatchId = [0; 16];

    #[test]
    fn frames_replay_and_a_torn_last_frame_is_cut_before_the_next() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wal.log");
        let a = [(1, 100, 7), (2, 101, 8)];
        let b = [(3, 200, 9)];
        let len = append(&path, 0, 1, [5; 16], &a).unwrap();
        let len = append(&path, len, 2, NO_ID, &b).unwrap();
        let (frames, valid) = replay(&path).unwrap();
        assert_eq!(valid, len);
        assert_eq!(frames.len(), 2);
        assert_eq!(
            (frames[0].batch, frames[0].events.clone()),
            ([5; 16], a.to_vec())
        );
        assert_eq!((frames[1].seq, frames[1].events.clone()), (2, b.to_vec()));

        // The process died while writing a third frame: a part of its
        // header, then a whole header whose events were cut off.
        let good = std::fs::read(&path).unwrap();
        for torn in [&b"CWAL\x09\x00\x00"[..], &[0u8; 30][..]] {
            let mut bytes = good.clone();
            bytes.extend_from_slice(torn);
            std::fs::write(&path, &bytes).unwrap();
            let (frames, valid) = replay(&path).unwrap();
            assert_eq!((frames.len(), valid), (2, len));
        }
        append(&path, len, 3, NO_ID, &[(4, 300, 10), (5, 301, 10)]).unwrap();
        let whole = std::fs::read(&path).unwrap();
        std::fs::write(&path, &whole[..whole.len() - 10]).unwrap();
        let (frames, valid) = replay(&path).unwrap();
        assert_eq!((frames.len(), valid), (2, len));
        let len = append(&path, valid, 3, NO_ID, &[(4, 300, 10)]).unwrap();
        let (frames, valid) = replay(&path).unwrap();
        assert_eq!((frames.len(), valid), (3, len));
    }

    #[test]
    fn damage_before_the_last_frame_is_refused_not_cut() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wal.log");
        let mut len = 0;
        for seq in 1..=4 {
            len = append(&path, len, seq, NO_ID, &[(seq, 100, 7)]).unwrap();
        }
        let good = std::fs::read(&path).unwrap();
        let frame = good.len() / 4;
        // A flipped bit in the last frame's events: a torn write.
        let mut bytes = good.clone();
        *bytes.last_mut().unwrap() ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(replay(&path).unwrap().0.len(), 3);
        // In an earlier frame: its magic, its count, its sequence, its
        // events. Every one is refused, and the frames after it stand.
        for offset in [0, 5, 9, FRAME_HEADER + 3] {
            let mut bytes = good.clone();
            bytes[frame + offset] ^= 1;
            std::fs::write(&path, &bytes).unwrap();
            assert!(replay(&path).is_err(), "damage at {offset}");
        }
    }
}
