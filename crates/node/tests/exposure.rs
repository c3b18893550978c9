//! The ping store against brute force on generated data.

use civic_node::events::{distance_m, EventStore, ExposureQuery, Kind, TowerSelection};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

fn city(dir: &Path) {
    let params = civic_sim::Params {
        people: 2500,
        days: 3,
        seed: 21,
        start: time::macros::date!(2020 - 03 - 01),
        bbox: civic_sim::BBox::SEOUL,
        scenario: civic_sim::Scenario::default(),
        threads: 2,
    };
    civic_sim::generate(&params, dir, &mut |_, _| {}).unwrap();
}

fn read_rows(path: &Path) -> Vec<Vec<String>> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| l.split(',').map(str::to_owned).collect())
        .collect()
}

fn progress() -> Arc<AtomicU64> {
    Arc::new(AtomicU64::new(0))
}

#[test]
fn exposure_answers_equal_brute_force_and_survive_reopening() {
    let data = tempfile::tempdir().unwrap();
    let sim = tempfile::tempdir().unwrap();
    city(sim.path());
    let (towers, skt, kt) = (
        sim.path().join("towers.csv"),
        sim.path().join("pings-skt.csv"),
        sim.path().join("pings-kt.csv"),
    );
    let mut store = EventStore::pings(data.path()).unwrap();
    let report = store
        .import(Some(&towers), &[&skt, &kt], progress())
        .unwrap();

    let tower_rows: Vec<(u64, f64, f64)> = read_rows(&towers)
        .iter()
        .map(|r| {
            (
                r[0].parse().unwrap(),
                r[1].parse().unwrap(),
                r[2].parse().unwrap(),
            )
        })
        .collect();
    let mut pings: Vec<(u64, i64, u64)> = Vec::new();
    for f in [&skt, &kt] {
        pings.extend(read_rows(f).iter().map(|r| {
            (
                r[0].parse::<u64>().unwrap(),
                r[1].parse::<i64>().unwrap(),
                r[2].parse::<u64>().unwrap(),
            )
        }));
    }
    assert_eq!(report.pings, pings.len() as u64);
    assert_eq!(store.ping_count(), pings.len() as u64);

    let start = pings.iter().map(|p| p.1).min().unwrap();
    let end = pings.iter().map(|p| p.1).max().unwrap();
    let mut queries = Vec::new();
    for i in 0..60u64 {
        let t = &tower_rows[(i as usize * 37) % tower_rows.len()];
        let radius = 200.0 + (i % 7) as f64 * 400.0;
        let t0 = start + ((end - start) as u64 * (i % 11) / 11) as i64;
        let len = 1800 + (i as i64 % 9) * 3600;
        queries.push(ExposureQuery {
            towers: TowerSelection::Near {
                lat: t.1 + 0.001,
                lon: t.2 - 0.001,
                radius_m: radius,
            },
            t_start: t0,
            t_end: t0 + len,
        });
    }
    queries.push(ExposureQuery {
        towers: TowerSelection::Cells(vec![tower_rows[5].0, tower_rows[6].0]),
        t_start: start,
        t_end: end,
    });
    queries.push(ExposureQuery {
        towers: TowerSelection::Near {
            lat: 0.0,
            lon: 0.0,
            radius_m: 1000.0,
        },
        t_start: start,
        t_end: end,
    });

    let brute = |q: &ExposureQuery| -> BTreeMap<u64, (i64, i64, u32)> {
        let cells: BTreeSet<u64> = tower_rows
            .iter()
            .filter(|t| match &q.towers {
                TowerSelection::Near { lat, lon, radius_m } => {
                    distance_m(*lat, *lon, t.1, t.2) <= *radius_m
                }
                TowerSelection::Cells(c) => c.contains(&t.0),
            })
            .map(|t| t.0)
            .collect();
        let mut out: BTreeMap<u64, (i64, i64, u32)> = BTreeMap::new();
        for &(s, ts, cell) in &pings {
            if cells.contains(&cell) && q.t_start <= ts && ts <= q.t_end {
                let e = out.entry(s).or_insert((ts, ts, 0));
                e.0 = e.0.min(ts);
                e.1 = e.1.max(ts);
                e.2 += 1;
            }
        }
        out
    };
    let mut nonempty = 0;
    for q in &queries {
        let want = brute(q);
        let got: BTreeMap<u64, (i64, i64, u32)> = store
            .exposure(q)
            .into_iter()
            .map(|a| (a.subscriber, (a.first_seen, a.last_seen, a.pings)))
            .collect();
        assert_eq!(got, want, "{q:?}");
        assert_eq!(store.exposure_count(q), want.len());
        nonempty += usize::from(!want.is_empty());
    }
    assert!(nonempty > 40, "the queries must find people: {nonempty}");

    // Reopened from disk: the same answers; a route is a subscriber's own pings.
    let store = EventStore::pings(data.path()).unwrap();
    for q in queries.iter().take(10) {
        assert_eq!(store.exposure_count(q), brute(q).len());
    }
    let someone = pings[pings.len() / 2].0;
    let mut want: Vec<(i64, u64)> = pings
        .iter()
        .filter(|p| p.0 == someone && p.1 <= start + 86_400)
        .map(|p| (p.1, p.2))
        .collect();
    want.sort_unstable();
    assert_eq!(store.route(someone, start, start + 86_400), want);
}

#[test]
fn an_import_with_a_bad_row_changes_nothing_and_names_the_line() {
    let data = tempfile::tempdir().unwrap();
    let sim = tempfile::tempdir().unwrap();
    city(sim.path());
    let towers = sim.path().join("towers.csv");
    let mut store = EventStore::pings(data.path()).unwrap();
    store
        .import(
            Some(&towers),
            &[&sim.path().join("pings-lguplus.csv")],
            progress(),
        )
        .unwrap();
    let before = store.ping_count();

    // An import run again (after a crash that followed its commit, say)
    // is recognised by its file's digest and adds nothing, here or in
    // another process.
    let again = store
        .import(
            Some(&towers),
            &[&sim.path().join("pings-lguplus.csv")],
            progress(),
        )
        .unwrap();
    assert_eq!((again.pings, again.already_imported.len()), (0, 1));
    assert_eq!(again.already_imported[0].1.events, before);
    let mut other = EventStore::pings(data.path()).unwrap();
    let copy = sim.path().join("copy-of-lguplus.csv");
    std::fs::copy(sim.path().join("pings-lguplus.csv"), &copy).unwrap();
    assert_eq!(
        other
            .import(None, &[&copy, &copy], progress())
            .unwrap()
            .pings,
        0
    );
    assert_eq!(EventStore::pings(data.path()).unwrap().ping_count(), before);

    let good = std::fs::read_to_string(sim.path().join("pings-kt.csv")).unwrap();
    let mut lines: Vec<String> = good.lines().map(str::to_owned).collect();
    let bad_file = sim.path().join("bad.csv");
    lines[57] = "123,not-a-time,100001".into();
    std::fs::write(&bad_file, lines.join("\n")).unwrap();
    let err = store
        .import(
            None,
            &[&sim.path().join("pings-skt.csv"), &bad_file],
            progress(),
        )
        .unwrap_err();
    assert!(err.to_string().contains("line 58"), "{err}");
    lines[57] = "123,1583020800,999".into();
    std::fs::write(&bad_file, lines.join("\n")).unwrap();
    let err = store.import(None, &[&bad_file], progress()).unwrap_err();
    assert!(
        err.to_string().contains("cell 999 is not a known tower"),
        "{err}"
    );
    // A row with a column more than the header is refused, not half read.
    lines[57] = "123,1583020800,100001,7".into();
    std::fs::write(&bad_file, lines.join("\n")).unwrap();
    let err = store.import(None, &[&bad_file], progress()).unwrap_err();
    assert!(
        err.to_string()
            .contains("line 58: 4 columns where the header has 3"),
        "{err}"
    );
    std::fs::write(&bad_file, "subscriber,ts,cell\n1,2,3\n").unwrap();
    assert!(store
        .import(None, &[&bad_file], progress())
        .unwrap_err()
        .to_string()
        .contains("header"));

    // Nothing of the failed imports is kept, in memory or on disk.
    assert_eq!(store.ping_count(), before);
    let reopened = EventStore::pings(data.path()).unwrap();
    assert_eq!(reopened.ping_count(), before);
    let names: Vec<String> = std::fs::read_dir(data.path().join("pings"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(names.iter().all(|n| !n.starts_with("staging")), "{names:?}");
}

#[test]
fn gzipped_files_import_like_plain_ones() {
    use std::io::Write;
    let sim = tempfile::tempdir().unwrap();
    city(sim.path());
    let plain = sim.path().join("pings-kt.csv");
    let gz = sim.path().join("pings-kt.csv.gz");
    let mut enc = flate2::write::GzEncoder::new(
        std::fs::File::create(&gz).unwrap(),
        flate2::Compression::fast(),
    );
    enc.write_all(&std::fs::read(&plain).unwrap()).unwrap();
    enc.finish().unwrap();
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let towers = sim.path().join("towers.csv");
    let mut sa = EventStore::pings(a.path()).unwrap();
    let mut sb = EventStore::pings(b.path()).unwrap();
    sa.import(Some(&towers), &[&plain], progress()).unwrap();
    sb.import(Some(&towers), &[&gz], progress()).unwrap();
    assert_eq!(sa.ping_count(), sb.ping_count());
    let q = ExposureQuery {
        towers: TowerSelection::Near {
            lat: 37.56,
            lon: 126.98,
            radius_m: 3000.0,
        },
        t_start: 0,
        t_end: i64::from(u32::MAX),
    };
    assert_eq!(sa.exposure(&q), sb.exposure(&q));
}

/// The card and transit stores answer the same question by merchant and by
/// station, exactly as brute force does.
#[test]
fn card_and_transit_stores_answer_by_merchant_and_station() {
    let sim = tempfile::tempdir().unwrap();
    city(sim.path());
    for (kind, places_file, event_prefix) in [
        (Kind::Transactions, "merchants.csv", "transactions-"),
        (Kind::Taps, "stops.csv", "taps"),
    ] {
        let data = tempfile::tempdir().unwrap();
        let places = sim.path().join(places_file);
        let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(sim.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| {
                p.file_name()
                    .unwrap()
                    .to_str()
                    .unwrap()
                    .starts_with(event_prefix)
            })
            .collect();
        files.sort();
        let refs: Vec<&Path> = files.iter().map(|p| p.as_path()).collect();
        let mut store = EventStore::open(data.path(), kind).unwrap();
        store.import(Some(&places), &refs, progress()).unwrap();

        let place_rows: Vec<(u64, f64, f64)> = read_rows(&places)
            .iter()
            .map(|r| {
                (
                    r[0].parse().unwrap(),
                    r[1].parse().unwrap(),
                    r[2].parse().unwrap(),
                )
            })
            .collect();
        let mut events: Vec<(u64, i64, u64)> = Vec::new();
        for f in &files {
            events.extend(read_rows(f).iter().map(|r| {
                (
                    r[0].parse().unwrap(),
                    r[1].parse().unwrap(),
                    r[2].parse().unwrap(),
                )
            }));
        }
        assert_eq!(store.ping_count(), events.len() as u64);
        let (start, end) = (
            events.iter().map(|e| e.1).min().unwrap(),
            events.iter().map(|e| e.1).max().unwrap(),
        );
        let mut nonempty = 0;
        for i in 0..30usize {
            let p = place_rows[(i * 13) % place_rows.len()];
            let t0 = start + (end - start) * i as i64 / 30;
            let q = ExposureQuery {
                towers: TowerSelection::Near {
                    lat: p.1,
                    lon: p.2,
                    radius_m: 300.0 + 200.0 * (i % 5) as f64,
                },
                t_start: t0,
                t_end: t0 + 6 * 3600,
            };
            let near: BTreeSet<u64> = place_rows
                .iter()
                .filter(|r| distance_m(p.1, p.2, r.1, r.2) <= 300.0 + 200.0 * (i % 5) as f64)
                .map(|r| r.0)
                .collect();
            let want: BTreeSet<u64> = events
                .iter()
                .filter(|e| near.contains(&e.2) && q.t_start <= e.1 && e.1 <= q.t_end)
                .map(|e| e.0)
                .collect();
            let got: BTreeSet<u64> = store
                .exposure(&q)
                .into_iter()
                .map(|a| a.subscriber)
                .collect();
            assert_eq!(got, want, "{kind:?} {q:?}");
            assert_eq!(store.exposure_count(&q), want.len());
            nonempty += usize::from(!want.is_empty());
        }
        assert!(
            nonempty > 5,
            "{kind:?}: the windows must find cards ({nonempty})"
        );
        // A transaction at an unknown merchant is refused with its line.
        let bad = sim.path().join("bad-events.csv");
        let header = kind.events_header().join(",");
        std::fs::write(&bad, format!("{header}\n1,1583020800,42\n")).unwrap();
        let err = store
            .import(None, &[&bad], progress())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("line 2") && err.contains("not a known"),
            "{err}"
        );
    }
}

#[test]
fn imports_take_turns_and_an_open_never_removes_a_running_import() {
    let data = tempfile::tempdir().unwrap();
    let dir = data.path();
    std::fs::write(
        dir.join("towers.csv"),
        "cell_id,lat,lon\n1,37.5,127.0\n2,37.6,127.1\n",
    )
    .unwrap();
    // More days than the importer keeps files open for.
    let mut pings = String::from("subscriber_id,ts,cell_id\n");
    for day in 0..100u64 {
        pings.push_str(&format!(
            "{},{},{}\n",
            day % 7,
            1_583_020_800 + day * 86_400 + 3600,
            1 + day % 2
        ));
    }
    std::fs::write(dir.join("a.csv"), &pings).unwrap();
    std::fs::write(
        dir.join("b.csv"),
        "subscriber_id,ts,cell_id\n99,1583020900,1\n",
    )
    .unwrap();

    let mut first = EventStore::pings(dir).unwrap();
    let mut second = EventStore::pings(dir).unwrap();
    first
        .import(
            Some(&dir.join("towers.csv")),
            &[&dir.join("a.csv")],
            progress(),
        )
        .unwrap();
    // The second handle opened before the first import: its import must
    // build on it, not over it.
    second
        .import(None, &[&dir.join("b.csv")], progress())
        .unwrap();
    assert_eq!(EventStore::pings(dir).unwrap().ping_count(), 101);

    // While an import holds the lock, opening leaves its files alone.
    let staging = dir.join("pings").join("staging-77");
    std::fs::create_dir_all(&staging).unwrap();
    let lock = std::fs::OpenOptions::new()
        .write(true)
        .open(dir.join("pings").join("lock"))
        .unwrap();
    lock.lock().unwrap();
    let reader = std::thread::spawn({
        let dir = dir.to_path_buf();
        move || EventStore::pings(&dir).map(|s| s.ping_count())
    });
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert!(
        staging.exists(),
        "a running import's staging survives an open"
    );
    lock.unlock().unwrap();
    assert_eq!(reader.join().unwrap().unwrap(), 101);
    EventStore::pings(dir).unwrap();
    assert!(!staging.exists(), "leftovers go when no import runs");
}

/// Some windows over the city, and each one's answers.
fn answers(store: &EventStore, towers: &Path) -> Vec<Vec<civic_node::ExposureAnswer>> {
    let tower_rows = read_rows(towers);
    (0..40u64)
        .map(|i| {
            let t = &tower_rows[(i as usize * 53) % tower_rows.len()];
            let t0 = 1_583_020_800 + (i as i64 % 3) * 86_400 + (i as i64 * 3_607) % 80_000;
            store.exposure(&ExposureQuery {
                towers: TowerSelection::Near {
                    lat: t[1].parse().unwrap(),
                    lon: t[2].parse().unwrap(),
                    radius_m: 300.0 + (i % 5) as f64 * 500.0,
                },
                t_start: t0,
                t_end: t0 + 7_200,
            })
        })
        .collect()
}

#[test]
fn appended_batches_answer_like_an_import_across_restarts_and_compaction() {
    let sim = tempfile::tempdir().unwrap();
    city(sim.path());
    let towers = sim.path().join("towers.csv");
    let pings = sim.path().join("pings-skt.csv");
    let imported_dir = tempfile::tempdir().unwrap();
    let mut imported = EventStore::pings(imported_dir.path()).unwrap();
    imported
        .import(Some(&towers), &[&pings], progress())
        .unwrap();
    let want = answers(&imported, &towers);
    assert!(want.iter().filter(|a| !a.is_empty()).count() > 20);

    let data = tempfile::tempdir().unwrap();
    let mut store = EventStore::pings(data.path()).unwrap();
    store.import(Some(&towers), &[], progress()).unwrap();
    let text = std::fs::read_to_string(&pings).unwrap();
    let (header, rows) = text.split_once('\n').unwrap();
    let rows: Vec<&str> = rows.lines().collect();
    let batches: Vec<String> = rows
        .chunks(rows.len() / 5 + 1)
        .map(|c| format!("{header}\n{}\n", c.join("\n")))
        .collect();
    let batch = |s: &String| std::io::Cursor::new(s.clone().into_bytes());
    for (i, b) in batches.iter().enumerate().take(3) {
        store
            .append_csv(&format!("batch {i}"), batch(b), Some([i as u8 + 1; 16]))
            .unwrap();
    }

    // A bad row names its line; nothing of its batch is kept.
    let count = store.ping_count();
    let bad = format!("{header}\n{}\n{}\n1,1583020800,999999\n", rows[0], rows[1]);
    let err = store
        .append_csv("bad batch", batch(&bad), Some([99; 16]))
        .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("bad batch, line 4: cell 999999 is not a known tower"),
        "{err}"
    );
    assert_eq!(store.ping_count(), count);

    // A batch sent again (its answer was lost) is recognised, not doubled;
    // the bad batch was never kept, so its id is free.
    let again = store
        .append_csv("batch 1 again", batch(&batches[1]), Some([2; 16]))
        .unwrap();
    assert!(again.duplicate);
    assert_eq!(store.ping_count(), count);

    // A restart replays the log; a torn last frame (never acknowledged) is
    // cut before the next batch.
    drop(store);
    let wal = data.path().join("pings/wal.log");
    let mut torn = std::fs::read(&wal).unwrap();
    torn.extend_from_slice(b"CWAL\x09\x00\x00\x00torn");
    std::fs::write(&wal, torn).unwrap();
    let mut store = EventStore::pings(data.path()).unwrap();
    assert_eq!(store.ping_count(), count);
    for (i, b) in batches.iter().enumerate().skip(3) {
        store
            .append_csv(&format!("batch {i}"), batch(b), Some([i as u8 + 1; 16]))
            .unwrap();
    }
    assert_eq!(store.ping_count(), imported.ping_count());
    assert_eq!(answers(&store, &towers), want);
    let store = EventStore::pings(data.path()).unwrap();
    assert_eq!(store.tail_len(), imported.ping_count());
    assert_eq!(answers(&store, &towers), want);

    // Compaction moves the tail into segments; a crash after its commit but
    // before the log was emptied (the old log put back) doubles nothing.
    let log_before = std::fs::read(&wal).unwrap();
    let mut store = store;
    assert_eq!(store.compact().unwrap(), imported.ping_count());
    assert_eq!(store.tail_len(), 0);
    assert_eq!(answers(&store, &towers), want);
    std::fs::write(&wal, log_before).unwrap();
    let mut store = EventStore::pings(data.path()).unwrap();
    assert_eq!(store.tail_len(), 0);
    assert_eq!(store.ping_count(), imported.ping_count());
    assert_eq!(answers(&store, &towers), want);
    let someone: u64 = rows[rows.len() / 2]
        .split(',')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        store.route(someone, 0, i64::MAX),
        imported.route(someone, 0, i64::MAX)
    );

    // After the compaction (and a restart) a batch sent again is still
    // recognised; appends go on where the log left off.
    assert!(
        store
            .append_csv("batch 0 again", batch(&batches[0]), Some([1; 16]))
            .unwrap()
            .duplicate
    );
    store.append_csv("again", batch(&batches[0]), None).unwrap();
    // Compactions of small batches merge a day's segments instead of
    // adding one a compaction.
    let segments = store.segment_count();
    store.compact().unwrap();
    store
        .append_csv("and again", batch(&batches[1]), None)
        .unwrap();
    store.compact().unwrap();
    assert!(
        store.segment_count() <= segments,
        "{} > {segments}",
        store.segment_count()
    );
    let store = EventStore::pings(data.path()).unwrap();
    assert_eq!(
        store.ping_count(),
        imported.ping_count() + batches[0].lines().count() as u64 - 1
            + batches[1].lines().count() as u64
            - 1
    );
    let files = std::fs::read_dir(data.path().join("pings"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("seg-")
        })
        .count();
    assert_eq!(files, store.segment_count(), "merged segments are removed");
    // The merged store answers like one that imported the same rows.
    let extra: Vec<std::path::PathBuf> = [0, 1]
        .iter()
        .map(|&i| {
            let p = sim.path().join(format!("extra-{i}.csv"));
            std::fs::write(&p, &batches[i]).unwrap();
            p
        })
        .collect();
    let extra: Vec<&Path> = extra.iter().map(|p| p.as_path()).collect();
    imported.import(None, &extra, progress()).unwrap();
    assert_eq!(store.ping_count(), imported.ping_count());
    assert_eq!(answers(&store, &towers), answers(&imported, &towers));
}

#[test]
fn a_store_of_the_previous_layout_opens_and_moves_to_the_growing_dictionary() {
    let sim = tempfile::tempdir().unwrap();
    city(sim.path());
    let towers = sim.path().join("towers.csv");
    let data = tempfile::tempdir().unwrap();
    let mut store = EventStore::pings(data.path()).unwrap();
    store
        .import(
            Some(&towers),
            &[&sim.path().join("pings-kt.csv")],
            progress(),
        )
        .unwrap();
    let want = answers(&store, &towers);
    drop(store);
    // As the previous version left it: the dictionary in a file per import.
    let dir = data.path().join("pings");
    std::fs::rename(dir.join("subscribers.bin"), dir.join("subscribers-1.bin")).unwrap();
    let manifest = std::fs::read_to_string(dir.join("manifest.json")).unwrap();
    std::fs::write(
        dir.join("manifest.json"),
        manifest.replace("\"subscribers.bin\"", "\"subscribers-1.bin\""),
    )
    .unwrap();
    let mut store = EventStore::pings(data.path()).unwrap();
    assert_eq!(answers(&store, &towers), want);
    store
        .import(None, &[&sim.path().join("pings-skt.csv")], progress())
        .unwrap();
    assert!(dir.join("subscribers.bin").exists());
    assert!(!dir.join("subscribers-1.bin").exists());
    // A dictionary with ids past the manifest's count (a commit that did
    // not happen) opens with the count's.
    let before = store.subscriber_count();
    drop(store);
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(dir.join("subscribers.bin"))
        .unwrap();
    std::io::Write::write_all(&mut f, &[7u8; 24]).unwrap();
    drop(f);
    let mut store = EventStore::pings(data.path()).unwrap();
    assert_eq!(store.subscriber_count(), before);
    store
        .import(None, &[&sim.path().join("pings-lguplus.csv")], progress())
        .unwrap();
    let store = EventStore::pings(data.path()).unwrap();
    let len = std::fs::metadata(dir.join("subscribers.bin"))
        .unwrap()
        .len();
    assert_eq!(
        len,
        store.subscriber_count() * 8,
        "the leftover ids were cut"
    );
}

#[test]
fn an_append_during_another_process_import_is_refused_and_keeps_nothing() {
    let sim = tempfile::tempdir().unwrap();
    city(sim.path());
    let towers = sim.path().join("towers.csv");
    let data = tempfile::tempdir().unwrap();
    let mut store = EventStore::pings(data.path()).unwrap();
    store.import(Some(&towers), &[], progress()).unwrap();
    let pings = std::fs::read_to_string(sim.path().join("pings-kt.csv")).unwrap();
    let batch: String = pings.lines().take(50).map(|l| format!("{l}\n")).collect();
    // An import in another process holds the store's lock for its run.
    let lock = std::fs::OpenOptions::new()
        .write(true)
        .open(data.path().join("pings/lock"))
        .unwrap();
    lock.lock().unwrap();
    let err = store
        .append_csv(
            "batch",
            std::io::Cursor::new(batch.clone().into_bytes()),
            None,
        )
        .unwrap_err();
    assert!(matches!(err, civic_node::StoreError::Busy(_)), "{err}");
    assert_eq!(store.ping_count(), 0);
    lock.unlock().unwrap();
    let report = store
        .append_csv("batch", std::io::Cursor::new(batch.into_bytes()), None)
        .unwrap();
    assert_eq!((report.appended, store.ping_count()), (49, 49));
    assert_eq!(EventStore::pings(data.path()).unwrap().ping_count(), 49);
}
