//! The message log each side keeps of what it sent and received: a hash
//! chain (each entry's hash covers the previous one), with heads signed so
//! that the other side can keep them as witnesses — cutting or changing
//! the log then shows against any head the other side holds.

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Sent,
    Received,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Sent => "sent",
            Direction::Received => "received",
        }
    }

    pub fn parse(raw: &str) -> Option<Direction> {
        match raw {
            "sent" => Some(Direction::Sent),
            "received" => Some(Direction::Received),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogEntry {
    pub seq: u64,
    pub at: i64,
    pub direction: Direction,
    pub request_id: String,
    /// The other side's key id.
    pub peer: String,
    /// Hex SHA-256 of the envelope and body as they travelled.
    pub message_digest: String,
    /// Hex hash of the previous entry (64 zeros for the first).
    pub prev: String,
    pub hash: String,
}

/// Hex SHA-256 of a message as it travelled.
pub fn message_digest(message: &[u8]) -> String {
    data_encoding::HEXLOWER.encode(&Sha256::digest(message))
}

impl LogEntry {
    /// The entry that follows `prev` (none: the first of a log), for a log
    /// kept elsewhere (the hub's, in its database).
    pub fn next(
        prev: Option<&LogEntry>,
        at: i64,
        direction: Direction,
        request_id: &str,
        peer: &str,
        message_digest: String,
    ) -> LogEntry {
        let mut e = LogEntry {
            seq: prev.map_or(0, |p| p.seq + 1),
            at,
            direction,
            request_id: request_id.to_owned(),
            peer: peer.to_owned(),
            message_digest,
            prev: prev.map_or_else(|| GENESIS.to_owned(), |p| p.hash.clone()),
            hash: String::new(),
        };
        e.hash = entry_hash(&e);
        e
    }
}

#[derive(Serialize)]
struct Hashed<'a> {
    seq: u64,
    at: i64,
    direction: Direction,
    request_id: &'a str,
    peer: &'a str,
    message_digest: &'a str,
    prev: &'a str,
}

fn entry_hash(e: &LogEntry) -> String {
    let mut h = Sha256::new();
    h.update(b"civic-message-log-v1\n");
    h.update(
        serde_json::to_vec(&Hashed {
            seq: e.seq,
            at: e.at,
            direction: e.direction,
            request_id: &e.request_id,
            peer: &e.peer,
            message_digest: &e.message_digest,
            prev: &e.prev,
        })
        .expect("an entry serialises"),
    );
    data_encoding::HEXLOWER.encode(&h.finalize())
}

const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// A signed statement "my log has `size` entries and ends in `hash`".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogHead {
    pub size: u64,
    pub hash: String,
    pub signature: String,
}

impl LogHead {
    fn message(size: u64, hash: &str) -> Vec<u8> {
        format!("civic-message-log-head-v1\n{size}\n{hash}").into_bytes()
    }

    /// The head of a log whose last entry is `last` (kept elsewhere, like
    /// the hub's in its database), signed with `key`.
    pub fn of(last: &LogEntry, key: &SigningKey) -> LogHead {
        let size = last.seq + 1;
        LogHead {
            size,
            signature: data_encoding::BASE64
                .encode(&key.sign(&Self::message(size, &last.hash)).to_bytes()),
            hash: last.hash.clone(),
        }
    }

    pub fn verify(&self, key: &VerifyingKey) -> bool {
        data_encoding::BASE64
            .decode(self.signature.as_bytes())
            .ok()
            .and_then(|v| <[u8; 64]>::try_from(v).ok())
            .is_some_and(|b| {
                key.verify(
                    &Self::message(self.size, &self.hash),
                    &Signature::from_bytes(&b),
                )
                .is_ok()
            })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LogError {
    #[error("log entry {0} was changed, removed, inserted or reordered")]
    Broken(u64),
    #[error("the log does not reach the head signed for {0} entries: entries were removed")]
    Short(u64),
    #[error("the log disagrees with the head signed for {0} entries")]
    Diverged(u64),
    #[error("the head signed for {0} entries does not verify")]
    BadHead(u64),
}

/// A log being written.
#[derive(Debug, Clone, Default)]
pub struct MessageLog {
    entries: Vec<LogEntry>,
}

impl MessageLog {
    pub fn from_entries(entries: Vec<LogEntry>) -> Self {
        Self { entries }
    }

    pub fn entries(&self) -> &[LogEntry] {
        &self.entries
    }

    /// Appends a message; returns the new entry (to be written durably).
    pub fn append(
        &mut self,
        at: i64,
        direction: Direction,
        request_id: &str,
        peer: &str,
        message: &[u8],
    ) -> &LogEntry {
        let e = LogEntry::next(
            self.entries.last(),
            at,
            direction,
            request_id,
            peer,
            message_digest(message),
        );
        self.entries.push(e);
        self.entries.last().expect("just pushed")
    }

    pub fn head(&self, key: &SigningKey) -> LogHead {
        let hash = self
            .entries
            .last()
            .map_or_else(|| GENESIS.to_owned(), |l| l.hash.clone());
        let size = self.entries.len() as u64;
        LogHead {
            size,
            signature: data_encoding::BASE64
                .encode(&key.sign(&LogHead::message(size, &hash)).to_bytes()),
            hash,
        }
    }

    /// Recomputes the chain and checks it against heads signed by `key`
    /// (the other side's witnesses).
    pub fn verify(
        entries: &[LogEntry],
        heads: &[LogHead],
        key: &VerifyingKey,
    ) -> Result<(), LogError> {
        let mut prev = GENESIS.to_owned();
        for (i, e) in entries.iter().enumerate() {
            if e.seq != i as u64 || e.prev != prev || entry_hash(e) != e.hash {
                return Err(LogError::Broken(i as u64));
            }
            prev = e.hash.clone();
        }
        for head in heads {
            if !head.verify(key) {
                return Err(LogError::BadHead(head.size));
            }
            if head.size > entries.len() as u64 {
                return Err(LogError::Short(head.size));
            }
            let at = if head.size == 0 {
                GENESIS
            } else {
                entries[head.size as usize - 1].hash.as_str()
            };
            if at != head.hash {
                return Err(LogError::Diverged(head.size));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chain_and_its_witnessed_heads_catch_every_change() {
        let key = SigningKey::generate(&mut rand::rngs::OsRng);
        let mut log = MessageLog::default();
        for i in 0..10 {
            let dir = if i % 2 == 0 {
                Direction::Received
            } else {
                Direction::Sent
            };
            log.append(
                1_000 + i,
                dir,
                &format!("r-{}", i / 2),
                "hub",
                format!("message {i}").as_bytes(),
            );
        }
        let witness = log.head(&key);
        let vk = key.verifying_key();
        assert_eq!(
            MessageLog::verify(log.entries(), std::slice::from_ref(&witness), &vk),
            Ok(())
        );

        let mut changed = log.entries().to_vec();
        changed[4].request_id = "r-9".into();
        assert_eq!(
            MessageLog::verify(&changed, &[], &vk),
            Err(LogError::Broken(4))
        );
        let mut removed = log.entries().to_vec();
        removed.remove(3);
        assert_eq!(
            MessageLog::verify(&removed, &[], &vk),
            Err(LogError::Broken(3))
        );
        let mut swapped = log.entries().to_vec();
        swapped.swap(2, 3);
        assert_eq!(
            MessageLog::verify(&swapped, &[], &vk),
            Err(LogError::Broken(2))
        );
        // Cutting the end keeps the chain whole; the witnessed head does not.
        let cut = &log.entries()[..7];
        assert_eq!(MessageLog::verify(cut, &[], &vk), Ok(()));
        assert_eq!(
            MessageLog::verify(cut, std::slice::from_ref(&witness), &vk),
            Err(LogError::Short(10))
        );
        // Rewriting the whole chain from entry 5 on diverges from the head.
        let mut rewritten = MessageLog::from_entries(log.entries()[..5].to_vec());
        for i in 5..10 {
            rewritten.append(2_000 + i, Direction::Sent, "forged", "hub", b"forged");
        }
        assert_eq!(
            MessageLog::verify(rewritten.entries(), std::slice::from_ref(&witness), &vk),
            Err(LogError::Diverged(10))
        );
        let mut forged_head = witness;
        forged_head.hash = rewritten.entries()[9].hash.clone();
        assert_eq!(
            MessageLog::verify(rewritten.entries(), &[forged_head], &vk),
            Err(LogError::BadHead(10))
        );
    }
}
