//! A node's event store, laid out for the exposure question: a telco's
//! location pings (tower, time, subscriber), a card company's transactions
//! (merchant, time, card), a transit operator's taps (station, time, card).
//! All three are events of a holder at a place at a time, and the question
//! is the same: who was at these places between these times?
//!
//! Layout (`DATA_DIR/pings/`, `transactions/`, `taps/`), described here for
//! pings:
//! - `manifest.json` — towers, the subscriber dictionary's file, the
//!   segments and the last write-ahead-log batch they hold; replaced
//!   atomically (write, fsync, rename), so a reader sees a whole import or
//!   compaction or none of it.
//! - `subscribers.bin` — subscriber ids (`u64`), in dictionary order, only
//!   appended to (the manifest says how many count):
//!   segments store an index instead of the 8-byte id.
//! - `seg-G-DAY.bin` — immutable segments, one per UTC day per import, each
//!   sorted by (tower, time), with bit-packed columns (`segment.rs`):
//!   about 4.3 bytes a ping at 100,000 subscribers against ~30 in CSV;
//!   memory-mapped, so resident memory is only what queries touch.
//! - `wal.log` — batches appended since the last compaction
//!   (`wal.rs`), fsynced before they are acknowledged, replayed into
//!   an in-memory tail at open and compacted into segments.
//!
//! An exposure window (towers within a radius of a point, or a tower set,
//! and a time interval) reads, in each segment the interval overlaps, each
//! selected tower's run and binary-searches it for the interval: the cost
//! is the pings that answer, not the pings stored.

use crate::csv::{fields, parse_f64, parse_u64, CsvError, Lines};
use crate::segment::{self, Row, Segment, DAY};
use crate::wal::{self, BatchId, RawEvent};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

mod query;
mod write;

/// The holder dictionary's file.
const DICTIONARY: &str = "subscribers.bin";

/// Spill files kept open at once while importing (one per day).
const MAX_OPEN_SPILLS: usize = 64;

const EARTH_RADIUS_M: f64 = 6_371_008.8;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Csv(#[from] CsvError),
    #[error("{0}: {1}")]
    Io(String, io::Error),
    #[error("the store at {0} is damaged: {1}")]
    Damaged(String, String),
    #[error("too large: {0}")]
    TooLarge(String),
    #[error("busy: {0}")]
    Busy(String),
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> StoreError + '_ {
    move |e| StoreError::Io(path.display().to_string(), e)
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct Tower {
    pub cell_id: u64,
    pub lat: f64,
    pub lon: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct SegmentMeta {
    file: String,
    day_start: i64,
    pings: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Manifest {
    version: u32,
    generation: u64,
    towers: Vec<Tower>,
    subscribers_file: Option<String>,
    subscribers: u64,
    segments: Vec<SegmentMeta>,
    /// The last write-ahead-log batch compacted into segments: later
    /// batches are replayed into the tail at open.
    #[serde(default)]
    wal_compacted_seq: u64,
    /// Ids (hex) of the latest compacted batches and their event counts.
    #[serde(default)]
    recent_batches: Vec<(String, u64)>,
    /// Names of places whose file has a `name` column (merchants,
    /// stations), by place id.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    place_names: std::collections::BTreeMap<u64, String>,
    /// Every events file imported, by the SHA-256 of its bytes as stored:
    /// the import's identity, so that running an import again (after a
    /// crash that came after its commit, say) adds nothing twice.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    imported: Vec<ImportedFile>,
}

/// An events file an import took in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportedFile {
    /// SHA-256 of the file's bytes as stored (compressed, for `.csv.gz`),
    /// lowercase hex.
    pub sha256: String,
    pub events: u64,
    /// When its import committed (Unix seconds).
    pub at: i64,
}

/// Reads an events file (`kind`'s CSV, header row first) as an import or
/// an append reads it, against the places `places` knows (place id →
/// index): every row's (holder, time, place index), or the first bad
/// row's error. For tools and the fuzzers; it stores nothing.
pub fn read_events(
    kind: Kind,
    source: &str,
    csv: impl io::BufRead + 'static,
    places: &HashMap<u64, u32>,
) -> Result<Vec<(u64, u32, u32)>, StoreError> {
    let mut lines = Lines::from_reader(source, Box::new(csv), &kind.events_header())?;
    let mut rows = Vec::new();
    while lines.advance()? {
        rows.push(parse_event(kind, &lines, places)?);
    }
    Ok(rows)
}

/// Reads one event line of a `kind` file: holder id, time and place
/// index (imports and appends read every line through it).
fn parse_event(
    kind: Kind,
    lines: &Lines,
    place_index: &HashMap<u64, u32>,
) -> Result<(u64, u32, u32), StoreError> {
    let header = kind.events_header();
    let mut f = fields(lines.current());
    let (sub, ts, cell) = (
        f.next().and_then(parse_u64),
        f.next().and_then(parse_u64),
        f.next().and_then(parse_u64),
    );
    let (Some(sub), Some(ts), Some(cell)) = (sub, ts, cell) else {
        return Err(lines
            .bad(&format!(
                "expected {}, ts (Unix seconds) and {}, all unsigned integers",
                header[0], header[2]
            ))
            .into());
    };
    // As many columns as the header names: a row with one more or one
    // fewer is a file misread, not a ping to keep.
    let columns = 3 + f.count();
    if columns != lines.header.len() {
        return Err(lines
            .bad(&format!(
                "{columns} columns where the header has {}",
                lines.header.len()
            ))
            .into());
    }
    // A segment's day must start within u32 seconds too.
    if ts > (u32::MAX as i64 - DAY) as u64 {
        return Err(lines.bad("ts is past the year 2106").into());
    }
    let Some(&place) = place_index.get(&cell) else {
        return Err(lines
            .bad(&format!(
                "{} {cell} is not a known {}: import its {} first",
                kind.place_word(),
                kind.place_noun(),
                kind.places_file()
            ))
            .into());
    };
    Ok((sub, ts as u32, place))
}

/// What an import staged: its new segments, the holder dictionary with
/// its new ids, and the events read from each file.
struct Staged {
    segments: Vec<SegmentMeta>,
    subscribers: Vec<u64>,
    per_file: Vec<u64>,
}

/// The SHA-256 of a file's bytes, lowercase hex.
fn file_sha256(path: &Path) -> Result<String, StoreError> {
    use sha2::Digest;
    let mut file = File::open(path).map_err(io_err(path))?;
    let mut hasher = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(io_err(path))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// Which towers an exposure window covers.
#[derive(Debug, Clone, PartialEq)]
pub enum TowerSelection {
    /// Towers within `radius_m` (great-circle) of a point.
    Near { lat: f64, lon: f64, radius_m: f64 },
    /// These cells.
    Cells(Vec<u64>),
}

/// An exposure window: towers and a closed time interval (Unix seconds).
#[derive(Debug, Clone, PartialEq)]
pub struct ExposureQuery {
    pub towers: TowerSelection,
    pub t_start: i64,
    pub t_end: i64,
}

/// A subscriber present in a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExposureAnswer {
    pub subscriber: u64,
    pub first_seen: i64,
    pub last_seen: i64,
    pub pings: u32,
}

/// What an import added.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ImportReport {
    pub towers_added: u64,
    pub pings: u64,
    pub subscribers_added: u64,
    pub segments: u64,
    /// Files left out because the store took them in before (or they
    /// appear twice in this import): (path, as first imported).
    pub already_imported: Vec<(String, ImportedFile)>,
}

/// What a store holds: its files' formats and words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Pings,
    Transactions,
    Taps,
}

impl Kind {
    pub fn parse(raw: &str) -> Option<Kind> {
        match raw {
            "pings" => Some(Kind::Pings),
            "transactions" => Some(Kind::Transactions),
            "taps" => Some(Kind::Taps),
            _ => None,
        }
    }

    pub fn dir_name(self) -> &'static str {
        match self {
            Kind::Pings => "pings",
            Kind::Transactions => "transactions",
            Kind::Taps => "taps",
        }
    }

    /// The first columns of the places file.
    pub fn places_header(self) -> [&'static str; 3] {
        match self {
            Kind::Pings => ["cell_id", "lat", "lon"],
            Kind::Transactions => ["merchant_id", "lat", "lon"],
            Kind::Taps => ["stop_id", "lat", "lon"],
        }
    }

    /// The first columns of the events file: holder, time, place.
    pub fn events_header(self) -> [&'static str; 3] {
        match self {
            Kind::Pings => ["subscriber_id", "ts", "cell_id"],
            Kind::Transactions | Kind::Taps => ["card_id", "ts", self.places_header()[0]],
        }
    }

    fn place_noun(self) -> &'static str {
        match self {
            Kind::Pings => "tower",
            Kind::Transactions => "merchant",
            Kind::Taps => "stop",
        }
    }

    fn places_file(self) -> &'static str {
        match self {
            Kind::Pings => "towers.csv",
            Kind::Transactions => "merchants.csv",
            Kind::Taps => "stops.csv",
        }
    }

    fn place_word(self) -> &'static str {
        match self {
            Kind::Pings => "cell",
            Kind::Transactions => "merchant",
            Kind::Taps => "stop",
        }
    }
}

/// What an append added.
#[derive(Debug, Clone, Default, Serialize)]
pub struct AppendReport {
    /// Events in the batch, now durable.
    pub appended: u64,
    /// Events appended since the last compaction.
    pub tail: u64,
    /// The batch had been appended before (same batch id): nothing new.
    pub duplicate: bool,
}

/// A compaction merges a day's new events with that day's segments of at
/// most this many events, as long as the merged segment stays under
/// [`MERGE_LIMIT`]: a day appended to all day long keeps a few segments,
/// not one per compaction.
const SMALL_SEGMENT: u64 = 4_000_000;

const MERGE_LIMIT: u64 = 32_000_000;

/// Batch ids of compacted batches the manifest remembers, to recognise a
/// batch sent again after its compaction.
const RECENT_BATCHES: usize = 4096;

fn hex_id(id: &BatchId) -> String {
    id.iter().map(|b| format!("{b:02x}")).collect()
}

pub struct EventStore {
    kind: Kind,
    dir: PathBuf,
    manifest: Manifest,
    segments: Vec<Segment>,
    subscribers: Vec<u64>,
    /// Holder id → dictionary index, built on first need.
    holder_index: Option<HashMap<u64, u32>>,
    /// Events appended since the last compaction, by place index:
    /// `(ts, holder index)`.
    tail: HashMap<u32, Vec<(u32, u32)>>,
    tail_events: u64,
    /// Ids of the batches in the tail, with their event counts.
    tail_batches: HashMap<BatchId, u64>,
    /// The last batch in the write-ahead log, and the log's valid length.
    wal_seq: u64,
    wal_len: u64,
    /// The manifest file as loaded (modified time, length): another
    /// process's import changes it.
    manifest_stamp: Option<(std::time::SystemTime, u64)>,
}

/// Great-circle distance in metres (haversine), as design.md specifies.
pub fn distance_m(lat1: f64, lon1: f64, lat2: f64, lon2: f64) -> f64 {
    let (p1, p2) = (lat1.to_radians(), lat2.to_radians());
    let h = ((p2 - p1) / 2.0).sin().powi(2)
        + p1.cos() * p2.cos() * ((lon2 - lon1).to_radians() / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_M * h.sqrt().asin()
}

/// Indices of the places within `radius_m` (great-circle) of a point.
///
/// A box in degrees that holds the whole circle (with room to spare) rules
/// most places out with two comparisons; the distance decides for the rest.
pub fn within(places: &[Tower], lat: f64, lon: f64, radius_m: f64) -> Vec<usize> {
    let dlat = (radius_m / EARTH_RADIUS_M).to_degrees() * 1.01 + 1e-9;
    let cos = (lat.abs() + dlat).min(89.999).to_radians().cos();
    let dlon = if cos > 1e-6 { dlat / cos } else { 360.0 };
    places
        .iter()
        .enumerate()
        .filter(|(_, t)| {
            let near_lon = dlon >= 180.0 || {
                let d = (t.lon - lon).abs();
                d.min(360.0 - d) <= dlon
            };
            (t.lat - lat).abs() <= dlat && near_lon
        })
        .filter(|(_, t)| distance_m(lat, lon, t.lat, t.lon) <= radius_m)
        .map(|(i, _)| i)
        .collect()
}

fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))
}

impl EventStore {
    /// Opens the telco store (pings) in `data_dir`.
    pub fn pings(data_dir: &Path) -> Result<Self, StoreError> {
        Self::open(data_dir, Kind::Pings)
    }

    /// Opens the store of `kind` in `data_dir` (creating an empty one), and
    /// removes what an interrupted import left behind.
    pub fn open(data_dir: &Path, kind: Kind) -> Result<Self, StoreError> {
        let dir = data_dir.join(kind.dir_name());
        fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        let lock = Self::lock_file(&dir)?;
        // Leftovers of an interrupted import are removed only when no
        // import is running (it holds the lock exclusively).
        if lock.try_lock().is_ok() {
            let manifest = Self::read_manifest(&dir)?;
            let mut known: Vec<&str> = manifest.segments.iter().map(|s| s.file.as_str()).collect();
            known.extend(manifest.subscribers_file.as_deref());
            for entry in fs::read_dir(&dir).map_err(io_err(&dir))? {
                let entry = entry.map_err(io_err(&dir))?;
                let name = entry.file_name().to_string_lossy().into_owned();
                let ours = name.starts_with("staging-")
                    || name.starts_with("seg-")
                    || name.starts_with("subscribers-")
                    || name == "manifest.json.tmp";
                if ours && !known.contains(&name.as_str()) {
                    let path = entry.path();
                    let _ = if path.is_dir() {
                        fs::remove_dir_all(&path)
                    } else {
                        fs::remove_file(&path)
                    };
                }
            }
            let _ = lock.unlock();
        }
        // A shared lock while loading: an import cannot switch the
        // manifest and remove the old dictionary under our feet.
        lock.lock_shared().map_err(io_err(&dir))?;
        let store = Self::load(kind, dir);
        let _ = lock.unlock();
        store
    }

    fn lock_file(dir: &Path) -> Result<File, StoreError> {
        let path = dir.join("lock");
        fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io_err(&path))
    }

    fn read_manifest(dir: &Path) -> Result<Manifest, StoreError> {
        let manifest_path = dir.join("manifest.json");
        match fs::read(&manifest_path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                StoreError::Damaged(dir.display().to_string(), format!("manifest.json: {e}"))
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Manifest {
                version: 1,
                ..Manifest::default()
            }),
            Err(e) => Err(StoreError::Io(manifest_path.display().to_string(), e)),
        }
    }

    fn load(kind: Kind, dir: PathBuf) -> Result<Self, StoreError> {
        let manifest = Self::read_manifest(&dir)?;
        let mut segments = Vec::with_capacity(manifest.segments.len());
        for meta in &manifest.segments {
            segments.push(Self::map_segment(&dir.join(&meta.file))?);
        }
        let subscribers = match &manifest.subscribers_file {
            Some(f) => {
                let path = dir.join(f);
                let mut bytes = Vec::new();
                File::open(&path)
                    .and_then(|mut file| file.read_to_end(&mut bytes))
                    .map_err(io_err(&path))?;
                bytes
                    .chunks_exact(8)
                    .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")))
                    .collect()
            }
            None => Vec::new(),
        };
        // The dictionary only grows: ids past the manifest's count are a
        // commit that did not happen, and are ignored (the next one cuts
        // them).
        let mut subscribers = subscribers;
        if (subscribers.len() as u64) < manifest.subscribers {
            return Err(StoreError::Damaged(
                dir.display().to_string(),
                "the subscriber dictionary is short".into(),
            ));
        }
        subscribers.truncate(manifest.subscribers as usize);
        let manifest_stamp = Self::manifest_stamp(&dir);
        let mut store = Self {
            kind,
            dir,
            segments,
            subscribers,
            holder_index: None,
            tail: HashMap::new(),
            tail_events: 0,
            tail_batches: HashMap::new(),
            wal_seq: manifest.wal_compacted_seq,
            wal_len: 0,
            manifest_stamp,
            manifest,
        };
        store.replay_wal()?;
        Ok(store)
    }

    fn manifest_stamp(dir: &Path) -> Option<(std::time::SystemTime, u64)> {
        let meta = fs::metadata(dir.join("manifest.json")).ok()?;
        Some((meta.modified().ok()?, meta.len()))
    }

    /// Reloads the store if another process (an import) changed it since
    /// it was loaded; cheap when nothing changed (one `stat`). Returns
    /// whether it reloaded.
    pub fn refresh(&mut self) -> Result<bool, StoreError> {
        if Self::manifest_stamp(&self.dir) == self.manifest_stamp {
            return Ok(false);
        }
        let lock = Self::lock_file(&self.dir)?;
        lock.lock_shared().map_err(io_err(&self.dir))?;
        *self = Self::load(self.kind, self.dir.clone())?;
        Ok(true)
    }

    fn wal_path(&self) -> PathBuf {
        self.dir.join("wal.log")
    }

    /// Replays the batches appended since the last compaction into the tail.
    fn replay_wal(&mut self) -> Result<(), StoreError> {
        let path = self.wal_path();
        let (frames, valid_len) = wal::replay(&path)
            .map_err(|e| StoreError::Damaged(path.display().to_string(), e.to_string()))?;
        self.wal_len = valid_len;
        let places: HashMap<u64, u32> = self.place_index();
        for frame in frames {
            if frame.seq <= self.manifest.wal_compacted_seq {
                continue;
            }
            if frame.batch != [0; 16] {
                self.tail_batches
                    .insert(frame.batch, frame.events.len() as u64);
            }
            for (holder, ts, place) in frame.events {
                let (Some(&place), Ok(ts)) = (places.get(&place), u32::try_from(ts)) else {
                    return Err(StoreError::Damaged(
                        path.display().to_string(),
                        format!("batch {} names an unknown place or time", frame.seq),
                    ));
                };
                self.push_tail(holder, ts, place);
            }
            self.wal_seq = self.wal_seq.max(frame.seq);
        }
        Ok(())
    }

    fn place_index(&self) -> HashMap<u64, u32> {
        self.manifest
            .towers
            .iter()
            .enumerate()
            .map(|(i, t)| (t.cell_id, i as u32))
            .collect()
    }

    /// The dictionary index of `holder`, adding it if new.
    fn holder(&mut self, holder: u64) -> u32 {
        let subscribers = &mut self.subscribers;
        let index = self.holder_index.get_or_insert_with(|| {
            subscribers
                .iter()
                .enumerate()
                .map(|(i, s)| (*s, i as u32))
                .collect()
        });
        let next = subscribers.len() as u32;
        *index.entry(holder).or_insert_with(|| {
            subscribers.push(holder);
            next
        })
    }

    fn push_tail(&mut self, holder: u64, ts: u32, place: u32) {
        let holder = self.holder(holder);
        self.tail.entry(place).or_default().push((ts, holder));
        self.tail_events += 1;
    }

    fn map_segment(path: &Path) -> Result<Segment, StoreError> {
        Segment::open(path).map_err(|why| StoreError::Damaged(path.display().to_string(), why))
    }

    pub fn towers(&self) -> &[Tower] {
        &self.manifest.towers
    }

    /// Events held: in segments and appended since the last compaction.
    pub fn ping_count(&self) -> u64 {
        self.manifest.segments.iter().map(|s| s.pings).sum::<u64>() + self.tail_events
    }

    pub fn subscriber_count(&self) -> u64 {
        self.subscribers.len() as u64
    }

    /// The events files imported, by their digests.
    pub fn imported_files(&self) -> &[ImportedFile] {
        &self.manifest.imported
    }

    /// Bytes the store takes on disk.
    pub fn size_on_disk(&self) -> u64 {
        fs::read_dir(&self.dir)
            .map(|d| {
                d.filter_map(|e| e.ok()?.metadata().ok())
                    .map(|m| m.len())
                    .sum()
            })
            .unwrap_or(0)
    }

    /// Segments the store holds.
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    /// Events appended since the last compaction.
    pub fn tail_len(&self) -> u64 {
        self.tail_events
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_box_never_drops_a_place_within_the_radius() {
        // A deterministic spray of places and circles, poles and the
        // antimeridian included.
        let mut x: u64 = 0x1234_5678;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 11) as f64 / (1u64 << 53) as f64
        };
        for round in 0..200 {
            let (lat, lon) = match round % 4 {
                0 => (89.0 + next(), next() * 360.0 - 180.0),
                1 => (next() * 10.0 - 5.0, 179.5 + next() * 0.5),
                _ => (next() * 170.0 - 85.0, next() * 360.0 - 180.0),
            };
            let radius = 10.0 + next() * 200_000.0;
            let places: Vec<Tower> = (0..300)
                .map(|i| {
                    let (dlat, dlon) = ((next() - 0.5) * 6.0, (next() - 0.5) * 12.0);
                    let plon = lon + dlon;
                    let plon = if plon > 180.0 {
                        plon - 360.0
                    } else if plon < -180.0 {
                        plon + 360.0
                    } else {
                        plon
                    };
                    Tower {
                        cell_id: i,
                        lat: (lat + dlat).clamp(-90.0, 90.0),
                        lon: plon,
                    }
                })
                .collect();
            let naive: Vec<usize> = places
                .iter()
                .enumerate()
                .filter(|(_, t)| distance_m(lat, lon, t.lat, t.lon) <= radius)
                .map(|(i, _)| i)
                .collect();
            assert_eq!(within(&places, lat, lon, radius), naive, "round {round}");
        }
    }
}
