//! Per-node simulated storage with a volatile and a durable part.
//!
//! The model is a key-value store of byte strings, like a directory of small files. A write
//! lands in the volatile part (the OS page cache); [`Disk::sync`] makes every pending write and
//! removal durable (fsync). A crash ([`Disk::crash`]) throws away everything that was not synced,
//! so a protocol that answers before syncing can be caught losing data it promised to keep.
//! Reads see the latest write, synced or not, as a real file system does.
//!
//! madsim's own `fs` cannot model this (its `sync_all` does nothing and unsynced writes survive a
//! kill, see MADSIM-NOTES.md), hence this layer.

use std::collections::BTreeMap;
use std::ops::Bound;

/// One node's disk. Keys are ordered, so [`Disk::keys_with_prefix`] lists them deterministically.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Disk {
    /// What survives a crash.
    durable: BTreeMap<String, Vec<u8>>,
    /// Writes (`Some`) and removals (`None`) not yet synced, oldest first. A log rather than a
    /// map: writes are frequent and cheap, reads of unsynced keys rare (at boot).
    pending: Vec<(String, Option<Vec<u8>>)>,
    /// Number of syncs so far (for statistics and tests).
    sync_count: u64,
}

impl Disk {
    /// Writes `value` under `key` (volatile until the next [`Disk::sync`]).
    pub fn write(&mut self, key: impl Into<String>, value: impl Into<Vec<u8>>) {
        self.pending.push((key.into(), Some(value.into())));
    }

    /// Removes `key` (volatile until the next [`Disk::sync`]).
    pub fn remove(&mut self, key: impl Into<String>) {
        self.pending.push((key.into(), None));
    }

    /// The current value of `key`, including unsynced writes.
    pub fn read(&self, key: &str) -> Option<&[u8]> {
        match self.pending.iter().rev().find(|(k, _)| k == key) {
            Some((_, pending)) => pending.as_deref(),
            None => self.durable.get(key).map(Vec::as_slice),
        }
    }

    /// Every key starting with `prefix` that currently has a value, in ascending order.
    pub fn keys_with_prefix(&self, prefix: &str) -> Vec<String> {
        let mut current: BTreeMap<&str, bool> = self
            .durable
            .range::<str, _>((Bound::Included(prefix), Bound::Unbounded))
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, _)| (k.as_str(), true))
            .collect();
        for (key, value) in self.pending.iter().filter(|(k, _)| k.starts_with(prefix)) {
            current.insert(key, value.is_some());
        }
        current
            .into_iter()
            .filter(|&(_, present)| present)
            .map(|(k, _)| k.to_string())
            .collect()
    }

    /// Makes every pending write and removal durable, in order. Returns how many writes and
    /// removals it made durable.
    pub fn sync(&mut self) -> usize {
        let touched = self.pending.len();
        for (key, value) in self.pending.drain(..) {
            match value {
                Some(value) => self.durable.insert(key, value),
                None => self.durable.remove(&key),
            };
        }
        self.sync_count += 1;
        touched
    }

    /// True if some write or removal is not yet durable.
    pub fn has_unsynced(&self) -> bool {
        !self.pending.is_empty()
    }

    /// A crash: every unsynced write and removal is lost. Returns how many were lost (each
    /// write and removal counts, even of the same key).
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
            disk.read("term"),
            Some(&b"4"[..]),
            "reads see unsynced writes"
        );
        assert_eq!(disk.read("vote"), None, "reads see unsynced removals");
        assert_eq!(disk.crash(), 3);
        assert_eq!(disk.read("term"), Some(&b"3"[..]));
        assert_eq!(disk.read("vote"), Some(&b"n2"[..]));
        assert_eq!(disk.read("log/1"), None);
    }

    #[test]
    fn the_newest_unsynced_write_wins_until_and_after_sync() {
        let mut disk = Disk::default();
        disk.write("k", b"1".to_vec());
        disk.remove("k");
        disk.write("k", b"2".to_vec());
        assert_eq!(disk.read("k"), Some(&b"2"[..]));
        assert_eq!(disk.sync(), 3);
        assert_eq!(disk.read("k"), Some(&b"2"[..]));
        disk.write("k", b"3".to_vec());
        disk.remove("k");
        assert_eq!(disk.read("k"), None);
        assert_eq!(disk.keys_with_prefix("k"), Vec::<String>::new());
        disk.sync();
        assert_eq!(disk.read("k"), None);
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
}
