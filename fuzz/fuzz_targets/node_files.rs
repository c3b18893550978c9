//! A node's files from outside: the events CSV a holder imports or
//! appends (pings, transactions, taps) and its write-ahead log as found on
//! disk after a crash. Neither may panic, and a log's replay must cover
//! only whole frames.
#![no_main]

use civic_node::{read_events, Kind};
use libfuzzer_sys::fuzz_target;
use std::collections::HashMap;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    match selector % 4 {
        0..=2 => {
            let kind = [Kind::Pings, Kind::Transactions, Kind::Taps][(selector % 4) as usize];
            // Places 1-9 are known, as after an import of their file.
            let places: HashMap<u64, u32> = (1..10).map(|p| (p, p as u32 - 1)).collect();
            let csv = std::io::Cursor::new(rest.to_vec());
            if let Ok(rows) = read_events(kind, "fuzz.csv", csv, &places) {
                for (_, _, place) in rows {
                    assert!(place < 9);
                }
            }
        }
        _ => {
            if let Ok((frames, len)) = civic_node::wal::replay_bytes(rest) {
                assert!(len as usize <= rest.len());
                assert!(frames.len() <= rest.len());
            }
        }
    }
});
