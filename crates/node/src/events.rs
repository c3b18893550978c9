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

    /// Imports towers (added to those known) and pings, atomically: either
    /// every file is in the store afterwards, or nothing changed.
    pub fn import(
        &mut self,
        towers: Option<&Path>,
        pings: &[&Path],
        progress: Arc<AtomicU64>,
    ) -> Result<ImportReport, StoreError> {
        let places = towers
            .map(|path| Lines::open(path, &self.kind.places_header(), progress.clone()))
            .transpose()?;
        self.import_from(places, pings, progress)
    }

    /// Adds places (towers, merchants, stops) read from `csv` (header row
    /// first; `source` names it in errors), all or nothing, like an import
    /// of a places file.
    pub fn add_places(
        &mut self,
        source: &str,
        csv: impl io::BufRead + 'static,
    ) -> Result<ImportReport, StoreError> {
        let lines = Lines::from_reader(source, Box::new(csv), &self.kind.places_header())?;
        self.import_from(Some(lines), &[], Arc::new(AtomicU64::new(0)))
    }

    fn import_from(
        &mut self,
        places: Option<Lines>,
        pings: &[&Path],
        progress: Arc<AtomicU64>,
    ) -> Result<ImportReport, StoreError> {
        // One import at a time, and on the store as it is now (another
        // process may have imported since this one opened it).
        let lock = Self::lock_file(&self.dir)?;
        lock.lock().map_err(io_err(&self.dir))?;
        *self = Self::load(self.kind, self.dir.clone())?;
        let mut report = ImportReport::default();
        // Under the lock, against the latest manifest: a file this store
        // (or this very import) took in before is left out.
        let mut fresh: Vec<&Path> = Vec::new();
        let mut fresh_digests: Vec<String> = Vec::new();
        for path in pings {
            let sha256 = file_sha256(path)?;
            let before = self.manifest.imported.iter().find(|f| f.sha256 == sha256);
            if let Some(before) = before {
                report
                    .already_imported
                    .push((path.display().to_string(), before.clone()));
            } else if fresh_digests.contains(&sha256) {
                let twin = ImportedFile {
                    sha256,
                    events: 0,
                    at: 0,
                };
                report
                    .already_imported
                    .push((path.display().to_string(), twin));
            } else {
                fresh.push(path);
                fresh_digests.push(sha256);
            }
        }
        let pings = fresh.as_slice();
        if pings.is_empty() && places.is_none() {
            return Ok(report);
        }
        let mut all_towers = self.manifest.towers.clone();
        let mut names = self.manifest.place_names.clone();
        let mut cell_index = self.place_index();
        if let Some(mut lines) = places {
            let name_column = lines.header.iter().position(|h| h == "name");
            while lines.advance()? {
                if let Some(col) = name_column {
                    let mut f = fields(lines.current());
                    if let (Some(id), Some(name)) = (f.next().and_then(parse_u64), f.nth(col - 1)) {
                        let name = String::from_utf8_lossy(name).trim().to_owned();
                        if !name.is_empty() {
                            names.insert(id, name);
                        }
                    }
                }
                let mut f = fields(lines.current());
                let (cell, lat, lon) = (
                    f.next().and_then(parse_u64),
                    f.next().and_then(parse_f64),
                    f.next().and_then(parse_f64),
                );
                let (Some(cell), Some(lat), Some(lon)) = (cell, lat, lon) else {
                    return Err(lines
                        .bad(&format!(
                            "expected {} (an unsigned integer), lat and lon (degrees)",
                            self.kind.places_header()[0]
                        ))
                        .into());
                };
                if !(-90.0..=90.0).contains(&lat) || !(-180.0..=180.0).contains(&lon) {
                    return Err(lines
                        .bad("lat must be within ±90 and lon within ±180 degrees")
                        .into());
                }
                match cell_index.get(&cell) {
                    Some(&i)
                        if (all_towers[i as usize].lat - lat).abs() > 1e-9
                            || (all_towers[i as usize].lon - lon).abs() > 1e-9 =>
                    {
                        return Err(lines
                            .bad(&format!(
                                "{} {cell} is already known at another place",
                                self.kind.place_word()
                            ))
                            .into());
                    }
                    Some(_) => {}
                    None => {
                        cell_index.insert(cell, all_towers.len() as u32);
                        all_towers.push(Tower {
                            cell_id: cell,
                            lat,
                            lon,
                        });
                        report.towers_added += 1;
                    }
                }
            }
        }
        let generation = self.manifest.generation + 1;
        let staging = self.dir.join(format!("staging-{generation}"));
        let _ = fs::remove_dir_all(&staging);
        fs::create_dir_all(&staging).map_err(io_err(&staging))?;
        let result = self.stage(
            &staging,
            generation,
            &all_towers,
            &cell_index,
            pings,
            progress,
            &mut report,
        );
        match result {
            Ok(Staged {
                segments: new_segments,
                subscribers: new_subscribers,
                per_file,
            }) => {
                // The manifest the commit writes carries the new names and
                // the files' identities.
                let before = std::mem::replace(&mut self.manifest.place_names, names);
                let imported_before = self.manifest.imported.len();
                let at = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs() as i64);
                self.manifest.imported.extend(
                    fresh_digests
                        .into_iter()
                        .zip(per_file)
                        .map(|(sha256, events)| ImportedFile { sha256, events, at }),
                );
                let committed = self.commit(
                    &staging,
                    generation,
                    all_towers,
                    new_segments,
                    &[],
                    new_subscribers,
                    self.manifest.wal_compacted_seq,
                );
                if let Err(e) = committed {
                    self.manifest.place_names = before;
                    self.manifest.imported.truncate(imported_before);
                    return Err(e);
                }
                Ok(report)
            }
            Err(e) => {
                let _ = fs::remove_dir_all(&staging);
                Err(e)
            }
        }
    }

    /// Parses the pings into per-day spill files, then sorts each day into
    /// a segment; everything in `staging`.
    #[allow(clippy::too_many_arguments)]
    fn stage(
        &self,
        staging: &Path,
        generation: u64,
        towers: &[Tower],
        cell_index: &HashMap<u64, u32>,
        pings: &[&Path],
        progress: Arc<AtomicU64>,
        report: &mut ImportReport,
    ) -> Result<Staged, StoreError> {
        let mut subscribers = self.subscribers.clone();
        let mut sub_index: HashMap<u64, u32> = subscribers
            .iter()
            .enumerate()
            .map(|(i, s)| (*s, i as u32))
            .collect();
        let mut spills: HashMap<i64, BufWriter<File>> = HashMap::new();
        let mut spill_days: std::collections::BTreeSet<i64> = std::collections::BTreeSet::new();
        let mut per_file = Vec::with_capacity(pings.len());
        for path in pings {
            let mut lines = Lines::open(path, &self.kind.events_header(), progress.clone())?;
            let before = report.pings;
            while lines.advance()? {
                let (sub, ts, tower) = parse_event(self.kind, &lines, cell_index)?;
                let next = subscribers.len() as u32;
                let s = *sub_index.entry(sub).or_insert_with(|| {
                    subscribers.push(sub);
                    next
                });
                let day = ts as i64 - (ts as i64).rem_euclid(DAY);
                if !spills.contains_key(&day) && spills.len() >= MAX_OPEN_SPILLS {
                    // Keep few files open: flush them all, reopen on demand.
                    for (_, mut w) in spills.drain() {
                        w.flush().map_err(io_err(staging))?;
                    }
                }
                let spill = match spills.get_mut(&day) {
                    Some(w) => w,
                    None => {
                        let path = staging.join(format!("spill-{day}"));
                        let file = fs::OpenOptions::new()
                            .create(true)
                            .append(true)
                            .open(&path)
                            .map_err(io_err(&path))?;
                        spill_days.insert(day);
                        spills
                            .entry(day)
                            .or_insert(BufWriter::with_capacity(1 << 16, file))
                    }
                };
                let mut record = [0u8; 12];
                record[..4].copy_from_slice(&tower.to_le_bytes());
                record[4..8].copy_from_slice(&ts.to_le_bytes());
                record[8..].copy_from_slice(&s.to_le_bytes());
                spill.write_all(&record).map_err(io_err(staging))?;
                report.pings += 1;
            }
            per_file.push(report.pings - before);
        }
        report.subscribers_added = (subscribers.len() - self.subscribers.len()) as u64;
        for (_, mut w) in spills.drain() {
            w.flush().map_err(io_err(staging))?;
        }
        let mut metas = Vec::new();
        for day in spill_days {
            let spill_path = staging.join(format!("spill-{day}"));
            let bytes = fs::read(&spill_path).map_err(io_err(&spill_path))?;
            let word = |b: &[u8]| u32::from_le_bytes(b.try_into().expect("4 bytes"));
            let rows: Vec<Row> = bytes
                .chunks_exact(12)
                .map(|r| Row {
                    place: word(&r[..4]),
                    ts: word(&r[4..8]),
                    holder: word(&r[8..]),
                })
                .collect();
            drop(bytes);
            fs::remove_file(&spill_path).map_err(io_err(&spill_path))?;
            metas.push(Self::write_day(
                staging,
                generation,
                day,
                towers.len(),
                rows,
            )?);
            report.segments += 1;
        }
        Ok(Staged {
            segments: metas,
            subscribers,
            per_file,
        })
    }

    /// Sorts one day's rows and writes them as a segment in `staging`.
    fn write_day(
        staging: &Path,
        generation: u64,
        day: i64,
        places: usize,
        mut rows: Vec<Row>,
    ) -> Result<SegmentMeta, StoreError> {
        if rows.len() > u32::MAX as usize {
            return Err(StoreError::TooLarge(format!(
                "{} events on one day in one import; import the day in parts",
                rows.len()
            )));
        }
        rows.sort_unstable();
        let file = format!("seg-{generation}-{day}.bin");
        let path = staging.join(&file);
        segment::write(&path, day, places, &rows).map_err(io_err(&path))?;
        Ok(SegmentMeta {
            file,
            day_start: day,
            pings: rows.len() as u64,
        })
    }

    /// Appends a batch of events in the kind's CSV format (header row
    /// first; `source` names it in errors) durably: when this returns, the
    /// batch is in the write-ahead log on disk and answers queries. A bad
    /// row names its line, and nothing of the batch is kept. A batch sent
    /// again with the same `batch` id is recognised and not appended twice
    /// (the report says `duplicate`). While an import runs in another
    /// process the store is [`StoreError::Busy`]: nothing is kept, and the
    /// sender tries again.
    pub fn append_csv(
        &mut self,
        source: &str,
        csv: impl io::BufRead + 'static,
        batch: Option<BatchId>,
    ) -> Result<AppendReport, StoreError> {
        // Places imported by another process since count.
        self.refresh()?;
        let batch = batch.unwrap_or([0; 16]);
        if let Some(report) = self.already_appended(&batch) {
            return Ok(report);
        }
        let mut lines = Lines::from_reader(source, Box::new(csv), &self.kind.events_header())?;
        let places = self.place_index();
        let (mut events, mut indices) = (Vec::<RawEvent>::new(), Vec::new());
        while lines.advance()? {
            let (holder, ts, place) = parse_event(self.kind, &lines, &places)?;
            events.push((
                holder,
                ts as u64,
                self.manifest.towers[place as usize].cell_id,
            ));
            indices.push(place);
        }
        self.append(&events, &indices, batch)
    }

    /// The report for batch `id`, if it was appended before.
    fn already_appended(&self, id: &BatchId) -> Option<AppendReport> {
        self.known_batch(id).map(|appended| AppendReport {
            appended,
            tail: self.tail_events,
            duplicate: true,
        })
    }

    /// How many events the batch `id` appended, if it is one of the recent
    /// batches.
    fn known_batch(&self, id: &BatchId) -> Option<u64> {
        if *id == [0; 16] {
            return None;
        }
        if let Some(&n) = self.tail_batches.get(id) {
            return Some(n);
        }
        let hex = hex_id(id);
        self.manifest
            .recent_batches
            .iter()
            .find(|(b, _)| *b == hex)
            .map(|(_, n)| *n)
    }

    /// Appends events already checked against the store's places
    /// (`indices` are their places' indices).
    fn append(
        &mut self,
        events: &[RawEvent],
        indices: &[u32],
        batch: BatchId,
    ) -> Result<AppendReport, StoreError> {
        if events.is_empty() {
            return Ok(AppendReport {
                appended: 0,
                tail: self.tail_events,
                duplicate: false,
            });
        }
        // An import holds the lock for its whole run: refuse rather than
        // hold the sender (and the node's questions) for that long.
        let lock = Self::lock_file(&self.dir)?;
        if lock.try_lock().is_err() {
            return Err(StoreError::Busy(
                "an import is running on this store; send the batch again shortly".into(),
            ));
        }
        let path = self.wal_path();
        // Another process compacted, imported or appended since: start
        // from disk.
        let on_disk = fs::metadata(&path).map_or(0, |m| m.len());
        if on_disk != self.wal_len || Self::manifest_stamp(&self.dir) != self.manifest_stamp {
            *self = Self::load(self.kind, self.dir.clone())?;
            if let Some(report) = self.already_appended(&batch) {
                return Ok(report);
            }
            // Places only grow, so the indices still hold; checked all the
            // same, since a frame on disk must replay.
            let towers = &self.manifest.towers;
            if events
                .iter()
                .zip(indices)
                .any(|(e, &i)| towers.get(i as usize).map(|t| t.cell_id) != Some(e.2))
            {
                return Err(StoreError::Busy(
                    "the store's places changed; send the batch again".into(),
                ));
            }
        }
        let seq = self.wal_seq + 1;
        self.wal_len =
            wal::append(&path, self.wal_len, seq, batch, events).map_err(io_err(&path))?;
        self.wal_seq = seq;
        for (&(holder, ts, _), &place) in events.iter().zip(indices) {
            self.push_tail(holder, ts as u32, place);
        }
        if batch != [0; 16] {
            self.tail_batches.insert(batch, events.len() as u64);
        }
        Ok(AppendReport {
            appended: events.len() as u64,
            tail: self.tail_events,
            duplicate: false,
        })
    }

    /// Segments the store holds.
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    /// Events appended since the last compaction.
    pub fn tail_len(&self) -> u64 {
        self.tail_events
    }

    /// Turns the appended events into segments (one per day), commits them
    /// in the manifest and empties the write-ahead log. Returns how many
    /// events it moved.
    pub fn compact(&mut self) -> Result<u64, StoreError> {
        let lock = Self::lock_file(&self.dir)?;
        lock.lock().map_err(io_err(&self.dir))?;
        *self = Self::load(self.kind, self.dir.clone())?;
        if self.tail_events == 0 {
            return Ok(0);
        }
        let generation = self.manifest.generation + 1;
        let staging = self.dir.join(format!("staging-{generation}"));
        let _ = fs::remove_dir_all(&staging);
        fs::create_dir_all(&staging).map_err(io_err(&staging))?;
        let mut days: std::collections::BTreeMap<i64, Vec<Row>> = Default::default();
        for (&place, events) in &self.tail {
            for &(ts, holder) in events {
                let day = ts as i64 - (ts as i64).rem_euclid(DAY);
                days.entry(day).or_default().push(Row { place, ts, holder });
            }
        }
        // Small segments of the same days are merged in (their holder and
        // place indices are those of today's dictionary and places: both
        // only grow).
        let mut replaced: Vec<String> = Vec::new();
        let staged = days
            .into_iter()
            .map(|(day, mut rows)| {
                for (meta, seg) in self.manifest.segments.iter().zip(&self.segments) {
                    if meta.day_start == day
                        && meta.pings <= SMALL_SEGMENT
                        && rows.len() as u64 + meta.pings <= MERGE_LIMIT
                    {
                        rows.extend(seg.all_rows());
                        replaced.push(meta.file.clone());
                    }
                }
                Self::write_day(&staging, generation, day, self.manifest.towers.len(), rows)
            })
            .collect::<Result<Vec<_>, _>>();
        let metas = match staged {
            Ok(m) => m,
            Err(e) => {
                let _ = fs::remove_dir_all(&staging);
                return Err(e);
            }
        };
        let moved = self.tail_events;
        let towers = self.manifest.towers.clone();
        let subscribers = self.subscribers.clone();
        let mut recent = std::mem::take(&mut self.manifest.recent_batches);
        recent.extend(self.tail_batches.iter().map(|(id, n)| (hex_id(id), *n)));
        let cut = recent.len().saturating_sub(RECENT_BATCHES);
        recent.drain(..cut);
        self.manifest.recent_batches = recent;
        let durable = self.commit(
            &staging,
            generation,
            towers,
            metas,
            &replaced,
            subscribers,
            self.wal_seq,
        )?;
        // Batches up to wal_seq are skipped from now on; emptying the log
        // only saves their replay, and only once the switch is durable.
        self.tail.clear();
        self.tail_events = 0;
        self.tail_batches.clear();
        let path = self.wal_path();
        if durable && wal::truncate(&path).is_ok() {
            self.wal_len = 0;
        }
        Ok(moved)
    }

    /// Switches the manifest to the new segments (replacing `replaced`),
    /// places, dictionary and compacted batch; returns whether the switch
    /// is known durable (the directory synced after it).
    #[allow(clippy::too_many_arguments)]
    fn commit(
        &mut self,
        staging: &Path,
        generation: u64,
        towers: Vec<Tower>,
        new_segments: Vec<SegmentMeta>,
        replaced: &[String],
        subscribers: Vec<u64>,
        wal_compacted_seq: u64,
    ) -> Result<bool, StoreError> {
        // The dictionary is one file that only grows: the ids this commit
        // adds are appended (after cutting what a failed commit left) and
        // synced; the manifest's count is what readers take.
        let dict_path = self.dir.join(DICTIONARY);
        let (kept, old_subs) = match &self.manifest.subscribers_file {
            Some(f) if f == DICTIONARY => (self.manifest.subscribers as usize, None),
            // A store of an older version: its per-import file is copied once.
            other => (0, other.clone()),
        };
        {
            let mut file = fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&dict_path)
                .map_err(io_err(&dict_path))?;
            file.set_len(kept as u64 * 8).map_err(io_err(&dict_path))?;
            file.seek(io::SeekFrom::End(0))
                .map_err(io_err(&dict_path))?;
            let mut w = BufWriter::new(file);
            for s in &subscribers[kept.min(subscribers.len())..] {
                w.write_all(&s.to_le_bytes()).map_err(io_err(&dict_path))?;
            }
            w.into_inner()
                .map_err(|e| StoreError::Io(dict_path.display().to_string(), e.into_error()))?
                .sync_all()
                .map_err(io_err(&dict_path))?;
        }
        // Move the new segments next to the manifest, then switch it.
        for name in new_segments.iter().map(|s| s.file.clone()) {
            fs::rename(staging.join(&name), self.dir.join(&name)).map_err(io_err(&self.dir))?;
        }
        sync_dir(&self.dir)?;
        // Check the new segments before the manifest names them: after the
        // switch nothing may fail.
        let mut mapped = Vec::with_capacity(new_segments.len());
        for meta in &new_segments {
            mapped.push(Self::map_segment(&self.dir.join(&meta.file))?);
        }
        let mut manifest = self.manifest.clone();
        manifest.generation = generation;
        manifest.towers = towers;
        manifest.subscribers_file = Some(DICTIONARY.to_owned());
        manifest.subscribers = subscribers.len() as u64;
        manifest.segments.retain(|m| !replaced.contains(&m.file));
        manifest.segments.extend(new_segments.iter().cloned());
        manifest.wal_compacted_seq = wal_compacted_seq;
        let tmp = self.dir.join("manifest.json.tmp");
        fs::write(
            &tmp,
            serde_json::to_vec_pretty(&manifest).expect("manifest serialises"),
        )
        .map_err(io_err(&tmp))?;
        File::open(&tmp)
            .and_then(|f| f.sync_all())
            .map_err(io_err(&tmp))?;
        // The commit point: from here on the import has happened.
        fs::rename(&tmp, self.dir.join("manifest.json")).map_err(io_err(&self.dir))?;
        // Until the switch is durable the old manifest may come back after
        // a crash: keep what it names (the next open removes what no
        // manifest names).
        let durable = sync_dir(&self.dir).is_ok();
        let _ = fs::remove_dir_all(staging);
        if let (Some(old), true) = (old_subs, durable) {
            let _ = fs::remove_file(self.dir.join(old));
        }
        let kept: Vec<Segment> = std::mem::take(&mut self.segments)
            .into_iter()
            .zip(&self.manifest.segments)
            .filter(|(_, meta)| !replaced.contains(&meta.file))
            .map(|(seg, _)| seg)
            .collect();
        self.segments = kept;
        self.segments.extend(mapped);
        // The merged segments are no longer named: remove them (a mapping
        // still open elsewhere keeps its pages until it is dropped).
        for file in replaced.iter().filter(|_| durable) {
            let _ = fs::remove_file(self.dir.join(file));
        }
        self.manifest = manifest;
        self.subscribers = subscribers;
        self.holder_index = None;
        self.manifest_stamp = Self::manifest_stamp(&self.dir);
        Ok(durable)
    }

    /// A place (tower, merchant, station) by its id: position and name.
    pub fn place(&self, id: u64) -> Option<(Tower, Option<&str>)> {
        let tower = self.manifest.towers.iter().find(|t| t.cell_id == id)?;
        Some((
            *tower,
            self.manifest.place_names.get(&id).map(String::as_str),
        ))
    }

    /// Indices of the towers a selection covers.
    pub fn select_towers(&self, selection: &TowerSelection) -> Vec<usize> {
        let towers = &self.manifest.towers;
        match selection {
            TowerSelection::Near { lat, lon, radius_m } => within(towers, *lat, *lon, *radius_m),
            TowerSelection::Cells(cells) => towers
                .iter()
                .enumerate()
                .filter(|(_, t)| cells.contains(&t.cell_id))
                .map(|(i, _)| i)
                .collect(),
        }
    }

    /// The subscribers present in an exposure window, by subscriber id,
    /// with when they were first and last seen there and how often.
    pub fn exposure(&self, query: &ExposureQuery) -> Vec<ExposureAnswer> {
        let mut hits = self.hits(query);
        hits.sort_unstable();
        let mut answers: Vec<ExposureAnswer> = Vec::new();
        for (sub, ts) in hits {
            let Some(&id) = self.subscribers.get(sub as usize) else {
                continue; // a damaged segment: an index past the dictionary
            };
            match answers.last_mut() {
                Some(a) if a.subscriber == id => {
                    a.last_seen = ts as i64;
                    a.pings += 1;
                }
                _ => answers.push(ExposureAnswer {
                    subscriber: id,
                    first_seen: ts as i64,
                    last_seen: ts as i64,
                    pings: 1,
                }),
            }
        }
        answers.sort_unstable_by_key(|a| a.subscriber);
        answers
    }

    /// How many distinct subscribers an exposure window holds: counted in
    /// a scratch bitset over the dictionary, in time proportional to the
    /// hits (no sort).
    pub fn exposure_count(&self, query: &ExposureQuery) -> usize {
        thread_local! {
            static SCRATCH: std::cell::RefCell<(Vec<u64>, Vec<u32>)> = const { std::cell::RefCell::new((Vec::new(), Vec::new())) };
        }
        SCRATCH.with(|scratch| {
            let (bits, touched) = &mut *scratch.borrow_mut();
            let words = self.subscribers.len().div_ceil(64);
            if bits.len() < words {
                bits.resize(words, 0);
            }
            touched.clear();
            self.for_each_hit(query, |sub, _| {
                let (w, bit) = ((sub >> 6) as usize, 1u64 << (sub & 63));
                if bits[w] == 0 {
                    touched.push(w as u32);
                }
                bits[w] |= bit;
            });
            let mut count = 0;
            for &w in touched.iter() {
                count += bits[w as usize].count_ones() as usize;
                bits[w as usize] = 0;
            }
            count
        })
    }

    /// Every (subscriber index, ts) in the window.
    fn hits(&self, query: &ExposureQuery) -> Vec<(u32, u32)> {
        let mut hits = Vec::new();
        self.for_each_hit(query, |sub, ts| hits.push((sub, ts)));
        hits
    }

    /// Calls `f(subscriber index, ts)` for every ping in the window.
    fn for_each_hit(&self, query: &ExposureQuery, mut f: impl FnMut(u32, u32)) {
        if query.t_end < query.t_start || query.t_end < 0 {
            return;
        }
        let t0 = query.t_start.clamp(0, u32::MAX as i64) as u32;
        let t1 = query.t_end.clamp(0, u32::MAX as i64) as u32;
        let towers = self.select_towers(&query.towers);
        for seg in &self.segments {
            if seg.day_start + DAY <= query.t_start || seg.day_start > query.t_end {
                continue;
            }
            for &tower in &towers {
                for row in seg.rows(tower, t0, t1) {
                    f(seg.holder(row), seg.ts(row));
                }
            }
        }
        if self.tail_events > 0 {
            for tower in towers {
                for &(ts, holder) in self.tail.get(&(tower as u32)).into_iter().flatten() {
                    if (t0..=t1).contains(&ts) {
                        f(holder, ts);
                    }
                }
            }
        }
    }

    /// One subscriber's own pings in a time window, in time order, as
    /// `(ts, cell_id)` (a route request).
    pub fn route(&self, subscriber: u64, t_start: i64, t_end: i64) -> Vec<(i64, u64)> {
        let Some(index) = self.subscribers.iter().position(|s| *s == subscriber) else {
            return Vec::new();
        };
        let index = index as u32;
        let mut out = Vec::new();
        for seg in &self.segments {
            if seg.day_start + DAY <= t_start || seg.day_start > t_end {
                continue;
            }
            for tower in 0..seg.places {
                for row in seg.dir(tower)..seg.dir(tower + 1) {
                    if seg.holder(row) == index {
                        let ts = seg.ts(row) as i64;
                        if (t_start..=t_end).contains(&ts) {
                            out.push((ts, self.manifest.towers[tower].cell_id));
                        }
                    }
                }
            }
        }
        for (&tower, events) in &self.tail {
            for &(ts, holder) in events {
                if holder == index && (t_start..=t_end).contains(&(ts as i64)) {
                    out.push((ts as i64, self.manifest.towers[tower as usize].cell_id));
                }
            }
        }
        out.sort_unstable();
        out
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
