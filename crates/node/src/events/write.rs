//! Writing the store: imports of the holder's files, appended batches
//! (logged first, then staged by day), compaction and the commit that
//! publishes a new manifest.

use super::*;

impl EventStore {
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

    pub(super) fn import_from(
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
    pub(super) fn stage(
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
    pub(super) fn write_day(
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
    pub(super) fn already_appended(&self, id: &BatchId) -> Option<AppendReport> {
        self.known_batch(id).map(|appended| AppendReport {
            appended,
            tail: self.tail_events,
            duplicate: true,
        })
    }

    /// How many events the batch `id` appended, if it is one of the recent
    /// batches.
    pub(super) fn known_batch(&self, id: &BatchId) -> Option<u64> {
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
    pub(super) fn append(
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
    pub(super) fn commit(
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
}
