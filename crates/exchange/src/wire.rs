//! What travels between hub and node over HTTP.

use crate::envelope::Envelope;
use serde::{Deserialize, Serialize};

/// A request or an answer: the signed envelope and the body it covers.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Message {
    pub envelope: Envelope,
    /// The body as the envelope's digest covers it.
    pub body: String,
}

/// A holder present in an exposure window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seen {
    /// Subscriber or card id.
    pub holder: u64,
    pub first_seen: i64,
    pub last_seen: i64,
    pub events: u32,
}

/// The answer to one window of an exposure question.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WindowAnswer {
    pub window: usize,
    pub holders: Vec<Seen>,
}

/// One data subject's own records over the grant's period, in time order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RouteAnswer {
    pub holder: u64,
    /// `(ts, place id)`: tower, merchant or station.
    pub events: Vec<(i64, u64)>,
}

/// A node's answer to a grant's question.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "answers", rename_all = "snake_case")]
pub enum Answer {
    Exposure(Vec<WindowAnswer>),
    Routes(Vec<RouteAnswer>),
}

/// The path nodes answer on.
pub const REQUESTS_PATH: &str = "/node/v1/requests";
