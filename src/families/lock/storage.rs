//! The fenced storage (role `fenced-storage`): a resource that accepts writes carrying a fencing
//! token and, with `check_fencing_token = true`, refuses a token lower than the highest it has
//! accepted (Kleppmann, "How to do distributed locking", 2016). See the family docs in
//! [`crate::families::lock`].

use serde::{Deserialize, Serialize};

use super::Message;
use super::{Observation, OptionError, StorageBug, Timer, read_record, write_record};
use crate::process::{Context, NodeId, Process, TimerId};

/// Disk key of the storage's record (the highest token accepted and the last data written).
pub const STATE_KEY: &str = "storage/state";

/// Options of a `fenced-storage` role.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    /// Refuse writes whose token is lower than the highest accepted so far (default true).
    #[serde(default = "crate::scenario::yes")]
    pub check_fencing_token: bool,
    /// Planted bugs to switch on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bugs: Vec<StorageBug>,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            check_fencing_token: true,
            bugs: Vec::new(),
        }
    }
}

impl StorageConfig {
    /// Every problem with these options (none: valid); every combination is valid today.
    pub fn validate(&self) -> Vec<OptionError> {
        Vec::new()
    }
}

/// What the storage keeps on its synced disk.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
struct State {
    highest: u64,
    data: String,
}

/// The fenced storage process. Its highest accepted token and last data are synced to disk with
/// every accepted write, so fencing survives a restart.
#[derive(Debug)]
pub struct FencedStorage {
    id: NodeId,
    config: StorageConfig,
    state: State,
}

impl FencedStorage {
    /// A storage on node `id` with `config`.
    pub fn new(id: NodeId, config: StorageConfig) -> Self {
        FencedStorage {
            id,
            config,
            state: State::default(),
        }
    }

    /// The node this storage runs on.
    pub fn id(&self) -> NodeId {
        self.id
    }

    fn fencing(&self) -> bool {
        self.config.check_fencing_token && !self.config.bugs.contains(&StorageBug::NoFencing)
    }
}

impl Process for FencedStorage {
    type Message = Message;
    type Timer = Timer;

    fn on_start(&mut self, ctx: &mut Context<'_>) {
        self.state = read_record(ctx.disk(), STATE_KEY).unwrap_or_default();
    }

    fn on_message(&mut self, ctx: &mut Context<'_>, from: NodeId, message: Message) {
        let Message::Write {
            request,
            token,
            data,
        } = message
        else {
            return; // only writes are for the storage
        };
        let highest = self.state.highest;
        if self.fencing() && token < highest {
            ctx.observe(Observation::WriteRefused {
                client: from,
                token,
                highest,
            });
            ctx.send(from, Message::WriteRefused { request, highest });
            return;
        }
        self.state.highest = highest.max(token);
        self.state.data = data;
        write_record(ctx.disk(), STATE_KEY, &self.state, true);
        ctx.observe(Observation::WriteAccepted {
            client: from,
            token,
        });
        ctx.send(from, Message::WriteOk { request });
    }

    fn on_timer(&mut self, _ctx: &mut Context<'_>, _id: TimerId, _timer: Timer) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::families::lock::{observed, sent};
    use crate::process::TestContext;

    const STORAGE: NodeId = NodeId(1);
    const C1: NodeId = NodeId(2);
    const C2: NodeId = NodeId(3);

    fn write(request: u64, token: u64) -> Message {
        Message::Write {
            request,
            token,
            data: format!("w{request}"),
        }
    }

    fn started(config: StorageConfig) -> (FencedStorage, TestContext) {
        let mut tc = TestContext::new(STORAGE, 1);
        let mut s = FencedStorage::new(STORAGE, config);
        s.on_start(&mut tc.ctx());
        (s, tc)
    }

    #[test]
    fn accepts_increasing_and_equal_tokens() {
        let (mut s, mut tc) = started(StorageConfig::default());
        s.on_message(&mut tc.ctx(), C1, write(1, 33));
        s.on_message(&mut tc.ctx(), C1, write(2, 33));
        s.on_message(&mut tc.ctx(), C2, write(1, 34));
        let effects = tc.take_effects();
        assert_eq!(
            sent(&effects),
            vec![
                (C1, Message::WriteOk { request: 1 }),
                (C1, Message::WriteOk { request: 2 }),
                (C2, Message::WriteOk { request: 1 }),
            ]
        );
        assert_eq!(observed(&effects).len(), 3);
    }

    #[test]
    fn refuses_a_token_lower_than_the_highest_accepted() {
        let (mut s, mut tc) = started(StorageConfig::default());
        s.on_message(&mut tc.ctx(), C2, write(1, 34));
        tc.take_effects();
        s.on_message(&mut tc.ctx(), C1, write(7, 33));
        let effects = tc.take_effects();
        assert_eq!(
            sent(&effects),
            vec![(
                C1,
                Message::WriteRefused {
                    request: 7,
                    highest: 34
                }
            )]
        );
        assert_eq!(
            observed(&effects),
            vec![Observation::WriteRefused {
                client: C1,
                token: 33,
                highest: 34
            }]
        );
    }

    #[test]
    fn highest_token_survives_a_restart() {
        let (mut s, mut tc) = started(StorageConfig::default());
        s.on_message(&mut tc.ctx(), C2, write(1, 34));
        tc.crash();
        let mut s2 = FencedStorage::new(STORAGE, StorageConfig::default());
        s2.on_start(&mut tc.ctx());
        s2.on_message(&mut tc.ctx(), C1, write(7, 33));
        assert_eq!(
            sent(&tc.take_effects()),
            vec![(
                C1,
                Message::WriteRefused {
                    request: 7,
                    highest: 34
                }
            )]
        );
        drop(s);
    }

    #[test]
    fn without_token_checking_a_lower_token_is_accepted() {
        let (mut s, mut tc) = started(StorageConfig {
            check_fencing_token: false,
            ..StorageConfig::default()
        });
        s.on_message(&mut tc.ctx(), C2, write(1, 34));
        s.on_message(&mut tc.ctx(), C1, write(7, 33));
        assert_eq!(
            sent(&tc.take_effects())[1],
            (C1, Message::WriteOk { request: 7 })
        );
    }

    #[test]
    fn bug_no_fencing_accepts_a_lower_token_even_with_checking_on() {
        let (mut s, mut tc) = started(StorageConfig {
            check_fencing_token: true,
            bugs: vec![StorageBug::NoFencing],
        });
        s.on_message(&mut tc.ctx(), C2, write(1, 34));
        s.on_message(&mut tc.ctx(), C1, write(7, 33));
        let effects = tc.take_effects();
        assert_eq!(sent(&effects)[1], (C1, Message::WriteOk { request: 7 }));
        assert_eq!(
            observed(&effects)[1],
            Observation::WriteAccepted {
                client: C1,
                token: 33
            }
        );
    }

    #[test]
    fn config_parses_and_rejects_unknown_keys() {
        assert!(toml::from_str::<StorageConfig>("check_fencing = true").is_err());
        let c: StorageConfig = toml::from_str("bugs = [\"no-fencing\"]").unwrap();
        assert!(c.check_fencing_token);
        assert_eq!(c.bugs, vec![StorageBug::NoFencing]);
        assert!(toml::from_str::<StorageConfig>("bugs = [\"no-such-bug\"]").is_err());
    }
}
