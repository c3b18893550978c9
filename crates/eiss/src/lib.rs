//! Epidemic investigation (EISS): what the hub does with a confirmed
//! case's data once it has been lawfully collected.
//!
//! - [`route`]: a case's pings, card transactions and transit taps become
//!   one timeline of stay points (places, arrival, departure, time spent,
//!   the sources that support each) and trips, checked against the case's
//!   interview: places in the data the case did not mention, and places he
//!   mentioned that no data supports, are flagged.
//! - [`contacts`]: the exposure windows a timeline gives under a
//!   response's [`Rules`], and the contacts the holders' answers to them
//!   make.
//! - [`clusters`]: cases linked through places they shared in time; each
//!   case's most likely infector among earlier cases, the clusters those
//!   links make, their sources, names and transmission trees; kept
//!   incrementally as cases arrive.
//! - [`formats`]: the exchange files: the case register, case routes
//!   (interviews and routes published elsewhere).
//!
//! Pure: no I/O, no storage, no HTTP, no keys. Times are Unix seconds
//! (UTC); dates and clock times in files are local (`Rules::utc_offset`).

pub mod clusters;
pub mod contacts;
pub mod formats;
pub mod geo;
pub mod route;
pub mod rules;

pub use rules::Rules;

/// Seconds in a day.
pub const DAY: i64 = 86_400;
