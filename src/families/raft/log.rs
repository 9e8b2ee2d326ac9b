//! The Raft log in memory, and its layout on the simulated disk.
//!
//! In memory: the last snapshot's index and term, then the entries after it
//! (`entries[0]` has index `snapshot_index + 1`). Index 0 is the empty prefix, of term 0.
//!
//! On disk (three keys, like small files):
//! - `raft/hard-state`: `"<term> <voted_for or ->"`;
//! - `raft/log`: a write-ahead log of the entries after the snapshot: the index of its first
//!   entry (8 bytes, little-endian), then one record per entry: its length (4 bytes,
//!   little-endian) and the entry as MessagePack (rmp-serde's compact form). Appending an entry
//!   appends a record; a conflict truncates the file at the first removed record; a snapshot
//!   rewrites the file with the entries it keeps (as LogCabin's and etcd's logs do, minus
//!   segments);
//! - `raft/snapshot`: the last snapshot as MessagePack (index, term, state machine text).
//!
//! MessagePack rather than JSON because every entry is written once per node and the snapshot
//! holds the whole key-value store as text, which JSON would escape again.
//!
//! Writers here only stage writes; the node syncs once at the end of each step (Figure 2:
//! persist before answering), so the snapshot and the rewritten log become durable together.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::families::kv::Op;
use crate::families::raft::Entry;
use crate::process::NodeId;
use crate::process::disk::Disk;

const HARD_STATE_KEY: &str = "raft/hard-state";
const SNAPSHOT_KEY: &str = "raft/snapshot";
const LOG_KEY: &str = "raft/log";
/// Bytes of the log file's header (the first entry's index).
const LOG_HEADER_BYTES: usize = 8;
/// Bytes of a record's length prefix.
const RECORD_LENGTH_BYTES: usize = 4;

fn encode(value: &impl Serialize) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(128);
    rmp_serde::encode::write(&mut bytes, value).expect("log items serialize");
    bytes
}

/// Appends `entry` to `file` as one log record (length, then MessagePack).
fn encode_record<C: Serialize>(entry: &Entry<C>, file: &mut Vec<u8>) {
    let start = file.len();
    file.extend_from_slice(&[0; RECORD_LENGTH_BYTES]);
    rmp_serde::encode::write(file, entry).expect("entries serialize");
    let len = u32::try_from(file.len() - start - RECORD_LENGTH_BYTES).expect("entries are small");
    file[start..start + RECORD_LENGTH_BYTES].copy_from_slice(&len.to_le_bytes());
}

/// The in-memory log: a snapshot boundary and the entries after it, and where each entry's
/// record starts in the `raft/log` file. `C` is the state machine's command type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Log<C = Op> {
    snapshot_index: u64,
    snapshot_term: u64,
    entries: Vec<Entry<C>>,
    /// Byte offset of each entry's record in the log file (parallel to `entries`).
    record_offsets: Vec<usize>,
    /// Length of the log file in bytes (0: no file yet).
    file_bytes: usize,
}

/// A snapshot as stored on disk.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Last index it covers.
    pub index: u64,
    /// Term of that entry.
    pub term: u64,
    /// The state machine (`Sessions::to_snapshot` text).
    pub data: String,
}

impl<C> Default for Log<C> {
    fn default() -> Self {
        Log {
            snapshot_index: 0,
            snapshot_term: 0,
            entries: Vec::new(),
            record_offsets: Vec::new(),
            file_bytes: 0,
        }
    }
}

/// Everything a node reloads at boot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Durable<C = Op> {
    /// `currentTerm`.
    pub term: u64,
    /// `votedFor`.
    pub voted_for: Option<NodeId>,
    /// The log.
    pub log: Log<C>,
    /// The last snapshot, if any.
    pub snapshot: Option<Snapshot>,
}

impl<C> Default for Durable<C> {
    fn default() -> Self {
        Durable {
            term: 0,
            voted_for: None,
            log: Log::default(),
            snapshot: None,
        }
    }
}

impl<C: Clone + Serialize> Log<C> {
    /// Index of the last entry (the snapshot's if the log is empty; 0 if nothing at all).
    pub fn last_index(&self) -> u64 {
        self.snapshot_index + self.entries.len() as u64
    }

    /// Term of the last entry.
    pub fn last_term(&self) -> u64 {
        self.entries.last().map_or(self.snapshot_term, |e| e.term)
    }

    /// Index of the last entry covered by the snapshot (0: none).
    pub fn snapshot_index(&self) -> u64 {
        self.snapshot_index
    }

    /// Term of the snapshot's last entry.
    pub fn snapshot_term(&self) -> u64 {
        self.snapshot_term
    }

    /// The term of the entry at `index`: known for the snapshot boundary and every entry after
    /// it; `None` below the snapshot or past the end.
    pub fn term_at(&self, index: u64) -> Option<u64> {
        if index == self.snapshot_index {
            Some(self.snapshot_term)
        } else if index < self.snapshot_index || index > self.last_index() {
            None
        } else {
            Some(self.entries[(index - self.snapshot_index - 1) as usize].term)
        }
    }

    /// The entry at `index` (after the snapshot, at most the last index).
    pub fn entry(&self, index: u64) -> &Entry<C> {
        assert!(
            index > self.snapshot_index && index <= self.last_index(),
            "entry {index} is outside the log ({}, {}]",
            self.snapshot_index,
            self.last_index()
        );
        &self.entries[(index - self.snapshot_index - 1) as usize]
    }

    /// Up to `max` entries starting at `from` (after the snapshot).
    pub fn entries_from(&self, from: u64, max: usize) -> Vec<Entry<C>> {
        if from <= self.snapshot_index || from > self.last_index() {
            return Vec::new();
        }
        let start = (from - self.snapshot_index - 1) as usize;
        let end = (start + max).min(self.entries.len());
        self.entries[start..end].to_vec()
    }

    /// The first index of the run of entries of `term` that ends at `index` (for fast back-up).
    pub fn first_index_of_term_run(&self, index: u64) -> u64 {
        let term = self.term_at(index);
        let mut i = index;
        while i > self.snapshot_index + 1 && self.term_at(i - 1) == term {
            i -= 1;
        }
        i
    }

    /// The last index holding an entry of `term`, if the log has one.
    pub fn last_index_of_term(&self, term: u64) -> Option<u64> {
        let mut i = self.last_index();
        while i > self.snapshot_index {
            match self.term_at(i) {
                Some(t) if t == term => return Some(i),
                Some(t) if t < term => return None,
                _ => i -= 1,
            }
        }
        (self.snapshot_term == term && self.snapshot_index > 0).then_some(self.snapshot_index)
    }

    /// Appends an entry in memory and stages the append of its record.
    pub fn append(&mut self, entry: Entry<C>, disk: &mut Disk) {
        let mut bytes = Vec::with_capacity(128);
        if self.file_bytes == 0 {
            bytes.extend_from_slice(&(self.snapshot_index + 1).to_le_bytes());
            self.file_bytes = LOG_HEADER_BYTES;
        }
        let record_start = bytes.len();
        encode_record(&entry, &mut bytes);
        self.record_offsets.push(self.file_bytes);
        self.file_bytes += bytes.len() - record_start;
        disk.append(LOG_KEY, bytes);
        self.entries.push(entry);
    }

    /// Deletes every entry from `index` on, in memory and (staged) on disk.
    pub fn truncate_from(&mut self, index: u64, disk: &mut Disk) {
        assert!(
            index > self.snapshot_index,
            "cannot truncate into the snapshot"
        );
        let keep = (index - self.snapshot_index - 1) as usize;
        if keep < self.entries.len() {
            self.file_bytes = self.record_offsets[keep];
            disk.truncate(LOG_KEY, self.file_bytes);
            self.entries.truncate(keep);
            self.record_offsets.truncate(keep);
        }
    }

    /// Makes `snapshot` the new log prefix: entries up to its index are dropped (in memory and
    /// staged on disk). If `keep_suffix` the entries after it stay (their prefix matched),
    /// otherwise the whole log is dropped.
    pub fn install_snapshot(&mut self, snapshot: &Snapshot, keep_suffix: bool, disk: &mut Disk) {
        let old_last = self.last_index();
        if keep_suffix && snapshot.index < old_last {
            let keep_from = (snapshot.index - self.snapshot_index) as usize;
            self.entries.drain(..keep_from);
        } else {
            self.entries.clear();
        }
        self.snapshot_index = snapshot.index;
        self.snapshot_term = snapshot.term;
        // The file is rewritten with the kept entries, its header naming the new first index.
        let mut file = (self.snapshot_index + 1).to_le_bytes().to_vec();
        self.record_offsets.clear();
        for entry in &self.entries {
            self.record_offsets.push(file.len());
            encode_record(entry, &mut file);
        }
        self.file_bytes = file.len();
        disk.write(LOG_KEY, file);
        disk.write(SNAPSHOT_KEY, encode(snapshot));
    }

    /// Iterates over `(index, entry)` from `from` to the end.
    pub fn iter_from(&self, from: u64) -> impl Iterator<Item = (u64, &Entry<C>)> {
        let start = from.max(self.snapshot_index + 1);
        let skip = (start - self.snapshot_index - 1) as usize;
        self.entries
            .iter()
            .enumerate()
            .skip(skip)
            .map(|(i, e)| (self.snapshot_index + 1 + i as u64, e))
    }
}

/// Stages the hard state (`currentTerm`, `votedFor`).
pub fn write_hard_state(disk: &mut Disk, term: u64, voted_for: Option<NodeId>) {
    let vote = voted_for.map_or("-".to_string(), |v| v.0.to_string());
    disk.write(HARD_STATE_KEY, format!("{term} {vote}"));
}

/// Reads everything durable. A disk written by this module always parses; anything else is a
/// programmer error and panics with the key.
pub fn load<C: DeserializeOwned>(disk: &Disk) -> Durable<C> {
    let mut durable = Durable::default();
    if let Some(bytes) = disk.read(HARD_STATE_KEY) {
        let text = std::str::from_utf8(&bytes).expect("hard state is text");
        let (term, vote) = text.split_once(' ').expect("hard state is `term vote`");
        durable.term = term.parse().expect("term is a number");
        durable.voted_for = (vote != "-").then(|| NodeId(vote.parse().expect("vote is a node")));
    }
    if let Some(bytes) = disk.read(SNAPSHOT_KEY) {
        let snapshot: Snapshot = rmp_serde::from_slice(&bytes).expect("snapshot parses");
        durable.log.snapshot_index = snapshot.index;
        durable.log.snapshot_term = snapshot.term;
        durable.snapshot = Some(snapshot);
    }
    if let Some(file) = disk.read(LOG_KEY) {
        let (header, mut rest) = file
            .split_first_chunk::<LOG_HEADER_BYTES>()
            .expect("the log file starts with its first index");
        assert_eq!(
            u64::from_le_bytes(*header),
            durable.log.snapshot_index + 1,
            "the log file does not start right after the snapshot"
        );
        let log = &mut durable.log;
        log.file_bytes = LOG_HEADER_BYTES;
        while let Some((len, after)) = rest.split_first_chunk::<RECORD_LENGTH_BYTES>() {
            let len = u32::from_le_bytes(*len) as usize;
            let entry: Entry<C> = rmp_serde::from_slice(&after[..len]).expect("entry parses");
            log.record_offsets.push(log.file_bytes);
            log.file_bytes += RECORD_LENGTH_BYTES + len;
            log.entries.push(entry);
            rest = &after[len..];
        }
        assert!(rest.is_empty(), "the log file ends inside a record");
    }
    durable
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::families::kv::Op;
    use crate::families::raft::Payload;

    #[test]
    fn the_log_file_is_a_header_and_length_prefixed_records() {
        let mut disk = Disk::default();
        let mut log = Log::default();
        log.append(e(1), &mut disk);
        log.append(e(2), &mut disk);
        let file = disk.read(LOG_KEY).unwrap().into_owned();
        let record = |t| {
            let body = rmp_serde::to_vec(&e(t)).unwrap();
            [&(body.len() as u32).to_le_bytes()[..], &body].concat()
        };
        assert_eq!(
            file,
            [&1u64.to_le_bytes()[..], &record(1), &record(2)].concat()
        );
        assert_eq!(disk.keys_with_prefix("raft/"), vec![LOG_KEY]);
    }

    fn e(term: u64) -> Entry {
        Entry {
            term,
            payload: Payload::Noop,
        }
    }

    #[test]
    fn every_kind_of_entry_comes_back_from_the_disk() {
        let command = |op| {
            Payload::Command(std::sync::Arc::new(crate::families::kv::Command {
                client: NodeId(6),
                request: 9,
                op,
            }))
        };
        let key = || "k\"1".to_string();
        let payloads = [
            Payload::Noop,
            command(Op::Get { key: key() }),
            command(Op::Put {
                key: key(),
                value: "v;".into(),
            }),
            command(Op::Append {
                key: key(),
                value: "".into(),
            }),
            command(Op::Cas {
                key: key(),
                from: "a".into(),
                to: "b".into(),
            }),
        ];
        let mut disk = Disk::default();
        let mut log = Log::default();
        for (term, payload) in payloads.iter().enumerate() {
            let entry = Entry {
                term: term as u64 + 1,
                payload: payload.clone(),
            };
            log.append(entry, &mut disk);
        }
        let snapshot = Snapshot {
            index: 0,
            term: 0,
            data: "{\"k\":[1]}".into(),
        };
        disk.write(SNAPSHOT_KEY, encode(&snapshot));
        disk.sync();
        let back = load(&disk);
        assert_eq!(back.log, log);
        assert_eq!(back.snapshot, Some(snapshot));
    }

    #[test]
    fn the_log_survives_a_crash_exactly_as_synced() {
        let mut disk = Disk::default();
        let mut log = Log::default();
        for t in [1, 1, 2, 3] {
            log.append(e(t), &mut disk);
        }
        write_hard_state(&mut disk, 3, Some(NodeId(2)));
        disk.sync();
        log.truncate_from(3, &mut disk);
        log.append(e(4), &mut disk);
        disk.crash();
        let back: Durable = load(&disk);
        assert_eq!(back.term, 3);
        assert_eq!(back.voted_for, Some(NodeId(2)));
        assert_eq!(back.log.last_index(), 4);
        assert_eq!(back.log.last_term(), 3, "the unsynced truncation was lost");
    }

    #[test]
    fn snapshots_replace_the_prefix_and_keep_a_matching_suffix() {
        let mut disk = Disk::default();
        let mut log = Log::default();
        for t in [1, 1, 2, 2, 3] {
            log.append(e(t), &mut disk);
        }
        assert_eq!(log.first_index_of_term_run(4), 3);
        assert_eq!(log.last_index_of_term(2), Some(4));
        assert_eq!(log.last_index_of_term(5), None);
        let snap = Snapshot {
            index: 3,
            term: 2,
            data: "{}".into(),
        };
        log.install_snapshot(&snap, true, &mut disk);
        disk.sync();
        assert_eq!(log.term_at(3), Some(2));
        assert_eq!(log.term_at(2), None);
        assert_eq!(log.last_index(), 5);
        assert_eq!(log.entries_from(4, 10).len(), 2);
        let back = load(&disk);
        assert_eq!(back.log, log);
        assert_eq!(back.snapshot, Some(snap));
        let later = Snapshot {
            index: 9,
            term: 4,
            data: "{}".into(),
        };
        log.install_snapshot(&later, false, &mut disk);
        disk.sync();
        assert_eq!(log.last_index(), 9);
        assert_eq!(log.last_term(), 4);
        assert_eq!(load(&disk).log, log);
    }
}
