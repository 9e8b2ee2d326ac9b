//! Per-node simulated storage with a volatile and a durable part.
//!
//! The model is a key-value store of byte strings, like a directory of small files that can be
//! written whole, appended to (a write-ahead log) and truncated. An operation lands in the
//! volatile part (the OS page cache); [`Disk::sync`] makes every pending operation durable
//! (fsync). A crash ([`Disk::crash`]) throws away everything that was not synced,
//! so a protocol that answers before syncing can be caught losing data it promised to keep.
//! Reads see the latest write, synced or not, as a real file system does.
//!
//! madsim's own `fs` cannot model this (its `sync_all` does nothing and unsynced writes survive a
//! kill, see MADSIM-NOTES.md), hence this layer.

use std::borrow::Cow;
use std::collections::BTreeMap;

use indexmap::IndexMap;
use rustc_hash::FxBuildHasher;

/// One node's disk. [`Disk::keys_with_prefix`] lists keys in ascending order, so listings are
/// deterministic.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Disk {
    /// What survives a crash. Hashed, not ordered: a protocol may write a key per instance or
    /// item (single-decree Paxos: `acceptor/accepted/<instance>`; the quorum store: a key per
    /// data item), thousands per run, and a B-tree
    /// compared each new key with dozens of long, mostly equal keys. Its order (insertions and
    /// removals, deterministic like everything in a run) is never observed: listings sort.
    durable: IndexMap<String, Vec<u8>, FxBuildHasher>,
    /// Operations not yet synced, oldest first. A log rather than a map: writes are frequent and
    /// cheap, reads of unsynced keys rare (at boot). Keys are usually constants, so they are
    /// only copied when they become durable.
    pending: Vec<(Cow<'static, str>, Pending)>,
    /// Number of syncs so far (for statistics and tests).
    sync_count: u64,
}

/// One unsynced operation on a key.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Pending {
    /// Replace the value.
    Write(Vec<u8>),
    /// Delete the key.
    Remove,
    /// Add bytes at the end of the value (creating it if absent).
    Append(Vec<u8>),
    /// Keep only the first this many bytes of the value (if present).
    Truncate(usize),
}

impl Pending {
    /// Applies this operation to `value` (`None`: the key is absent).
    fn apply_to(&self, value: &mut Option<Vec<u8>>) {
        match self {
            Pending::Write(bytes) => *value = Some(bytes.clone()),
            Pending::Remove => *value = None,
            Pending::Append(bytes) => value.get_or_insert_default().extend_from_slice(bytes),
            Pending::Truncate(len) => {
                if let Some(value) = value {
                    value.truncate(*len);
                }
            }
        }
    }
}

impl Disk {
    /// Writes `value` under `key` (volatile until the next [`Disk::sync`]).
    pub fn write(&mut self, key: impl Into<Cow<'static, str>>, value: impl Into<Vec<u8>>) {
        self.pending
            .push((key.into(), Pending::Write(value.into())));
    }

    /// Removes `key` (volatile until the next [`Disk::sync`]).
    pub fn remove(&mut self, key: impl Into<Cow<'static, str>>) {
        self.pending.push((key.into(), Pending::Remove));
    }

    /// Appends `bytes` to the value under `key`, creating it if absent: a file opened for
    /// appending, such as a write-ahead log (volatile until the next [`Disk::sync`]). Appends
    /// to one key with nothing in between are staged as one write.
    pub fn append(&mut self, key: impl Into<Cow<'static, str>>, bytes: impl Into<Vec<u8>>) {
        let (key, bytes) = (key.into(), bytes.into());
        if let Some((last, Pending::Append(staged))) = self.pending.last_mut()
            && *last == key
        {
            staged.extend_from_slice(&bytes);
            return;
        }
        self.pending.push((key, Pending::Append(bytes)));
    }

    /// Cuts the value under `key` to its first `len` bytes; no effect if it is absent or
    /// shorter (volatile until the next [`Disk::sync`]).
    pub fn truncate(&mut self, key: impl Into<Cow<'static, str>>, len: usize) {
        self.pending.push((key.into(), Pending::Truncate(len)));
    }

    /// The current value of `key`, including unsynced operations (borrowed unless some are
    /// pending on this key).
    pub fn read(&self, key: &str) -> Option<Cow<'_, [u8]>> {
        let durable = self.durable.get(key).map(Vec::as_slice);
        let mut ops = self.pending.iter().filter(|(k, _)| k == key).peekable();
        if ops.peek().is_none() {
            return durable.map(Cow::Borrowed);
        }
        let mut value = durable.map(<[u8]>::to_vec);
        for (_, op) in ops {
            op.apply_to(&mut value);
        }
        value.map(Cow::Owned)
    }

    /// Every key starting with `prefix` that currently has a value, in ascending order. Reads
    /// every durable key (a boot-time listing, not a per-step one).
    pub fn keys_with_prefix(&self, prefix: &str) -> Vec<String> {
        let mut current: BTreeMap<&str, bool> = self
            .durable
            .keys()
            .filter(|k| k.starts_with(prefix))
            .map(|k| (k.as_str(), true))
            .collect();
        for (key, op) in self.pending.iter().filter(|(k, _)| k.starts_with(prefix)) {
            let present = match op {
                Pending::Write(_) | Pending::Append(_) => true,
                Pending::Remove => false,
                Pending::Truncate(_) => current.get(key.as_ref()).copied().unwrap_or(false),
            };
            current.insert(key.as_ref(), present);
        }
        current
            .into_iter()
            .filter(|&(_, present)| present)
            .map(|(k, _)| k.to_string())
            .collect()
    }

    /// Makes every pending operation durable, in order. Returns how many staged writes,
    /// appends, truncations and removals it made durable.
    pub fn sync(&mut self) -> usize {
        let touched = self.pending.len();
        for (key, op) in self.pending.drain(..) {
            match op {
                // An owned key (built per write, e.g. per log slot) is looked up once; a
                // constant one is copied only the first time it becomes durable.
                Pending::Write(value) => match key {
                    Cow::Owned(key) => {
                        self.durable.insert(key, value);
                    }
                    Cow::Borrowed(key) => match self.durable.get_mut(key) {
                        Some(old) => *old = value,
                        None => {
                            self.durable.insert(key.to_string(), value);
                        }
                    },
                },
                Pending::Remove => {
                    self.durable.swap_remove(key.as_ref());
                }
                Pending::Append(bytes) => match self.durable.get_mut(key.as_ref()) {
                    Some(value) => value.extend_from_slice(&bytes),
                    None => {
                        self.durable.insert(key.into_owned(), bytes);
                    }
                },
                Pending::Truncate(len) => {
                    if let Some(value) = self.durable.get_mut(key.as_ref()) {
                        value.truncate(len);
                    }
                }
            }
        }
        self.sync_count += 1;
        touched
    }

    /// True if some operation is not yet durable.
    pub fn has_unsynced(&self) -> bool {
        !self.pending.is_empty()
    }

    /// A crash: every unsynced operation is lost. Returns how many were lost (each staged write,
    /// append, truncation and removal counts, even of the same key).
    pub fn crash(&mut self) -> usize {
        let lost = self.pending.len();
        self.pending.clear();
        lost
    }

    /// Number of [`Disk::sync`] calls so far.
    pub fn sync_count(&self) -> u64 {
        self.sync_count
    }

    /// Total bytes currently stored durably (keys and values).
    pub fn durable_bytes(&self) -> usize {
        self.durable.iter().map(|(k, v)| k.len() + v.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synced_writes_survive_a_crash_and_unsynced_ones_do_not() {
        let mut disk = Disk::default();
        disk.write("term", b"3".to_vec());
        disk.write("vote", b"n2".to_vec());
        assert_eq!(disk.sync(), 2);
        disk.write("term", b"4".to_vec());
        disk.remove("vote");
        disk.write("log/1", b"x".to_vec());
        assert_eq!(
            disk.read("term").as_deref(),
            Some(&b"4"[..]),
            "reads see unsynced writes"
        );
        assert_eq!(
            disk.read("vote").as_deref(),
            None,
            "reads see unsynced removals"
        );
        assert_eq!(disk.crash(), 3);
        assert_eq!(disk.read("term").as_deref(), Some(&b"3"[..]));
        assert_eq!(disk.read("vote").as_deref(), Some(&b"n2"[..]));
        assert_eq!(disk.read("log/1").as_deref(), None);
    }

    #[test]
    fn the_newest_unsynced_write_wins_until_and_after_sync() {
        let mut disk = Disk::default();
        disk.write("k", b"1".to_vec());
        disk.remove("k");
        disk.write("k", b"2".to_vec());
        assert_eq!(disk.read("k").as_deref(), Some(&b"2"[..]));
        assert_eq!(disk.sync(), 3);
        assert_eq!(disk.read("k").as_deref(), Some(&b"2"[..]));
        disk.write("k", b"3".to_vec());
        disk.remove("k");
        assert_eq!(disk.read("k").as_deref(), None);
        assert_eq!(disk.keys_with_prefix("k"), Vec::<String>::new());
        disk.sync();
        assert_eq!(disk.read("k").as_deref(), None);
        assert_eq!(disk.durable_bytes(), 0);
    }

    #[test]
    fn keys_with_prefix_merges_durable_and_pending_in_order() {
        let mut disk = Disk::default();
        disk.write("log/2", b"b".to_vec());
        disk.write("log/1", b"a".to_vec());
        disk.write("meta", b"m".to_vec());
        disk.sync();
        disk.write("log/3", b"c".to_vec());
        disk.remove("log/1");
        assert_eq!(disk.keys_with_prefix("log/"), vec!["log/2", "log/3"]);
        disk.crash();
        assert_eq!(disk.keys_with_prefix("log/"), vec!["log/1", "log/2"]);
    }

    #[test]
    fn appends_and_truncations_are_durable_only_once_synced() {
        let mut disk = Disk::default();
        disk.append("wal", b"ab");
        disk.append("wal", b"cd");
        assert_eq!(disk.read("wal").as_deref(), Some(&b"abcd"[..]));
        assert_eq!(disk.sync(), 1, "adjacent appends to one key are one write");
        disk.append("wal", b"ef");
        disk.write("meta", b"m".to_vec());
        disk.append("wal", b"gh");
        disk.truncate("wal", 3);
        assert_eq!(disk.read("wal").as_deref(), Some(&b"abc"[..]));
        assert_eq!(disk.crash(), 4);
        assert_eq!(disk.read("wal").as_deref(), Some(&b"abcd"[..]));
        assert_eq!(disk.read("meta"), None);
        disk.truncate("wal", 1);
        disk.append("wal", b"z");
        disk.truncate("absent", 0);
        assert_eq!(disk.keys_with_prefix(""), vec!["wal"]);
        assert_eq!(disk.sync(), 3);
        assert_eq!(disk.read("wal").as_deref(), Some(&b"az"[..]));
        assert_eq!(disk.read("absent"), None);
        assert_eq!(disk.durable_bytes(), 3 + 2);
    }

    #[test]
    fn an_append_creates_the_key_and_a_removal_ends_it() {
        let mut disk = Disk::default();
        disk.append("wal", b"x");
        assert_eq!(disk.keys_with_prefix("w"), vec!["wal"]);
        disk.sync();
        disk.remove("wal");
        disk.append("wal", b"y");
        assert_eq!(disk.read("wal").as_deref(), Some(&b"y"[..]));
        disk.sync();
        assert_eq!(disk.read("wal").as_deref(), Some(&b"y"[..]));
        disk.remove("wal");
        disk.truncate("wal", 0);
        assert_eq!(disk.keys_with_prefix("w"), Vec::<String>::new());
    }
}
