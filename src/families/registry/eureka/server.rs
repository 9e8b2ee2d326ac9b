//! The `eureka` server: a peer-replicated, in-memory registry of leases with eviction and
//! self-preservation. See the protocol docs in [`super`].

use std::collections::{BTreeMap, VecDeque};

use super::super::{InstanceInfo, Observation};
use super::{
    EurekaBug, EurekaConfig, EurekaMessage, EurekaObservation, LeaseInfo, MAX_WINDOW_RENEWALS,
    ReplicationItem, ServerTimer,
};
use crate::process::{Context, NodeId, Process, TimerId};

const MS: i64 = 1_000_000;

/// One lease of the registry (Eureka's `Lease<InstanceInfo>`), times on the server's local
/// clock in nanoseconds.
#[derive(Clone, Debug, PartialEq)]
struct Lease {
    info: LeaseInfo,
    /// When this server put the lease in its registry (for the expected renewal count).
    registered_ns: i64,
    /// Last renewal (received or replicated) or registration (`lastUpdateTimestamp`).
    renewed_ns: i64,
}

/// Who sent an accepted change: an agent (replicate it to every peer) or a peer (do not).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Origin {
    Client,
    Peer,
}

/// A `eureka` registry server. Build a fresh one at boot and after every restart: the registry
/// is in memory only, and the server warms up from a peer (see [`super`]).
#[derive(Debug)]
pub struct EurekaServer {
    id: NodeId,
    peers: Vec<NodeId>,
    config: EurekaConfig,
    /// service -> instance -> lease.
    registry: BTreeMap<String, BTreeMap<String, Lease>>,
    /// Local times of the renewals accepted in the last `renewal_window`, oldest first.
    renewals: VecDeque<i64>,
    /// Items queued for each peer, with whether its flush timer is armed.
    outbox: BTreeMap<NodeId, (VecDeque<ReplicationItem>, bool)>,
    /// Self-preservation as of the last eviction run.
    preserving: bool,
    /// Waiting for the first `SyncReply` since start.
    syncing: bool,
}

impl EurekaServer {
    /// A server on node `id` with peers `peers` and `config` (validated by
    /// [`EurekaConfig::validate`]).
    pub fn new(id: NodeId, peers: Vec<NodeId>, config: EurekaConfig) -> Self {
        EurekaServer {
            id,
            peers,
            config,
            registry: BTreeMap::new(),
            renewals: VecDeque::new(),
            outbox: BTreeMap::new(),
            preserving: false,
            syncing: false,
        }
    }

    /// The node this server runs on.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// The instances of `service` in the registry, sorted by instance id.
    pub fn instances(&self, service: &str) -> Vec<InstanceInfo> {
        self.registry
            .get(service)
            .map(|leases| leases.values().map(|l| l.info.instance.clone()).collect())
            .unwrap_or_default()
    }

    fn observe_view(&self, ctx: &mut Context<'_>, service: &str) {
        let instances = self
            .registry
            .get(service)
            .map(|leases| leases.keys().cloned().collect())
            .unwrap_or_default();
        ctx.observe(Observation::ServerView {
            service: service.to_string(),
            instances,
        });
    }

    /// Queues `item` for every peer, arming each peer's flush timer if needed.
    fn replicate(&mut self, ctx: &mut Context<'_>, item: ReplicationItem) {
        for peer in self.peers.clone() {
            self.queue(ctx, peer, item.clone());
        }
    }

    fn queue(&mut self, ctx: &mut Context<'_>, peer: NodeId, item: ReplicationItem) {
        let (queue, armed) = self.outbox.entry(peer).or_default();
        if queue.len() >= self.config.replication_queue_max as usize {
            queue.pop_front();
        }
        queue.push_back(item);
        if !*armed {
            *armed = true;
            ctx.set_timer(
                self.config.replication_batch_delay.to_std(),
                ServerTimer::Flush { peer },
            );
        }
    }

    fn flush(&mut self, ctx: &mut Context<'_>, peer: NodeId) {
        let max = self.config.replication_batch_max as usize;
        let delay = self.config.replication_batch_delay.to_std();
        let Some((queue, armed)) = self.outbox.get_mut(&peer) else {
            return;
        };
        let items: Vec<ReplicationItem> = queue.drain(..queue.len().min(max)).collect();
        *armed = !queue.is_empty();
        if *armed {
            ctx.set_timer(delay, ServerTimer::Flush { peer });
        }
        if !items.is_empty() {
            ctx.send(peer, EurekaMessage::Replicate { items });
        }
    }

    /// Puts (or refreshes) a lease; replicates it when a client registered.
    fn register(&mut self, ctx: &mut Context<'_>, info: LeaseInfo, origin: Origin) {
        let now = ctx.local_time_ns();
        let service = info.instance.service.clone();
        let leases = self.registry.entry(service.clone()).or_default();
        let changed = match leases.get_mut(&info.instance.instance) {
            Some(lease) => {
                lease.info = info.clone();
                lease.renewed_ns = now;
                false
            }
            None => {
                leases.insert(
                    info.instance.instance.clone(),
                    Lease {
                        info: info.clone(),
                        registered_ns: now,
                        renewed_ns: now,
                    },
                );
                true
            }
        };
        if changed {
            self.observe_view(ctx, &service);
        }
        if origin == Origin::Client {
            self.replicate(ctx, ReplicationItem::Register { lease: info });
        }
    }

    /// Renews a lease; false if there is none (Eureka's 404).
    fn renew(
        &mut self,
        ctx: &mut Context<'_>,
        service: &str,
        instance: &str,
        origin: Origin,
    ) -> bool {
        let now = ctx.local_time_ns();
        let Some(lease) = self
            .registry
            .get_mut(service)
            .and_then(|leases| leases.get_mut(instance))
        else {
            return false;
        };
        lease.renewed_ns = now;
        if self.renewals.len() >= MAX_WINDOW_RENEWALS {
            self.renewals.pop_front();
        }
        self.renewals.push_back(now);
        if origin == Origin::Client {
            self.replicate(
                ctx,
                ReplicationItem::Renew {
                    service: service.to_string(),
                    instance: instance.to_string(),
                },
            );
        }
        true
    }

    /// Removes a lease; true if there was one. Replicates a client's cancel either way.
    fn cancel(
        &mut self,
        ctx: &mut Context<'_>,
        service: &str,
        instance: &str,
        origin: Origin,
    ) -> bool {
        let existed = self.remove(service, instance).is_some();
        if existed {
            self.observe_view(ctx, service);
        }
        if origin == Origin::Client {
            self.replicate(
                ctx,
                ReplicationItem::Cancel {
                    service: service.to_string(),
                    instance: instance.to_string(),
                },
            );
        }
        existed
    }

    fn remove(&mut self, service: &str, instance: &str) -> Option<Lease> {
        let leases = self.registry.get_mut(service)?;
        let lease = leases.remove(instance);
        if leases.is_empty() {
            self.registry.remove(service);
        }
        lease
    }

    /// (renewals accepted in the window, renewals expected in it) at local time `now`.
    fn window_counts(&mut self, now: i64) -> (u64, f64) {
        let window = self.config.renewal_window.as_nanos() as i64;
        while self.renewals.front().is_some_and(|&t| t <= now - window) {
            self.renewals.pop_front();
        }
        let expected = self
            .registry
            .values()
            .flat_map(|leases| leases.values())
            .map(|l| {
                // Renewals due in the window: `window / interval` for a lease older than the
                // window, else those due since its registration.
                let interval = l.info.renewal_interval_ms.max(1) as f64 * MS as f64;
                let age = (now - l.registered_ns).max(0);
                if age >= window {
                    window as f64 / interval
                } else {
                    (age as f64 / interval).floor()
                }
            })
            .sum();
        (self.renewals.len() as u64, expected)
    }

    /// The eviction task (`AbstractInstanceRegistry.evict`).
    fn evict(&mut self, ctx: &mut Context<'_>) {
        let now = ctx.local_time_ns();
        let (renewals, expected) = self.window_counts(now);
        let preserving = self.config.preserving(renewals, expected);
        if preserving != self.preserving {
            self.preserving = preserving;
            ctx.observe(EurekaObservation::SelfPreservation {
                active: preserving,
                renewals_in_window: renewals,
                expected_renewals_in_window: expected,
            });
        }
        if preserving && !self.config.bug(EurekaBug::NoSelfPreservation) {
            return;
        }
        let first_miss = self.config.bug(EurekaBug::EvictOnFirstMiss);
        let expired: Vec<(String, String, u64, u64)> = self
            .registry
            .iter()
            .flat_map(|(service, leases)| leases.iter().map(move |(id, l)| (service, id, l)))
            .filter_map(|(service, id, l)| {
                let age_ns = (now - l.renewed_ns).max(0) as u64;
                let limit_ms = if first_miss {
                    l.info.renewal_interval_ms
                } else {
                    l.info.ttl_ms
                };
                (age_ns >= limit_ms * MS as u64).then(|| {
                    (
                        service.clone(),
                        id.clone(),
                        age_ns / MS as u64,
                        l.info.ttl_ms,
                    )
                })
            })
            .collect();
        for (service, instance, lease_age_ms, ttl_ms) in expired {
            self.remove(&service, &instance);
            ctx.observe(EurekaObservation::Evicted {
                service: service.clone(),
                instance,
                lease_age_ms,
                ttl_ms,
                renewals_in_window: renewals,
                expected_renewals_in_window: expected,
                self_preservation: preserving,
            });
            self.observe_view(ctx, &service);
        }
    }

    fn on_replicate(&mut self, ctx: &mut Context<'_>, from: NodeId, items: Vec<ReplicationItem>) {
        for item in items {
            match item {
                ReplicationItem::Register { lease } => self.register(ctx, lease, Origin::Peer),
                ReplicationItem::Renew { service, instance } => {
                    if !self.renew(ctx, &service, &instance, Origin::Peer) {
                        ctx.send(from, EurekaMessage::ReplicaNotFound { service, instance });
                    }
                }
                ReplicationItem::Cancel { service, instance } => {
                    self.cancel(ctx, &service, &instance, Origin::Peer);
                }
            }
        }
    }

    fn on_sync_reply(&mut self, ctx: &mut Context<'_>, from: NodeId, leases: Vec<LeaseInfo>) {
        if !self.syncing {
            return;
        }
        self.syncing = false;
        let count = leases.len() as u64;
        for lease in leases {
            self.register(ctx, lease, Origin::Peer);
        }
        ctx.observe(EurekaObservation::WarmedUp {
            peer: from,
            leases: count,
        });
    }
}

impl Process for EurekaServer {
    type Message = EurekaMessage;
    type Timer = ServerTimer;

    fn on_start(&mut self, ctx: &mut Context<'_>) {
        ctx.set_timer(self.config.eviction_interval.to_std(), ServerTimer::Evict);
        self.syncing = !self.peers.is_empty();
        for &peer in &self.peers {
            ctx.send(peer, EurekaMessage::SyncRequest);
        }
    }

    fn on_message(&mut self, ctx: &mut Context<'_>, from: NodeId, message: EurekaMessage) {
        match message {
            EurekaMessage::Register {
                request,
                instance,
                ttl_ms,
                renewal_interval_ms,
            } => {
                let info = LeaseInfo {
                    instance,
                    ttl_ms,
                    renewal_interval_ms,
                };
                self.register(ctx, info, Origin::Client);
                ctx.send(from, EurekaMessage::Registered { request });
            }
            EurekaMessage::Renew {
                request,
                service,
                instance,
            } => {
                let answer = if self.renew(ctx, &service, &instance, Origin::Client) {
                    EurekaMessage::Renewed { request }
                } else {
                    EurekaMessage::NotFound { request }
                };
                ctx.send(from, answer);
            }
            EurekaMessage::Cancel {
                request,
                service,
                instance,
            } => {
                let existed = self.cancel(ctx, &service, &instance, Origin::Client);
                ctx.send(from, EurekaMessage::Cancelled { request, existed });
            }
            EurekaMessage::Lookup { request, service } => {
                let instances = self.instances(&service);
                ctx.send(from, EurekaMessage::Instances { request, instances });
            }
            EurekaMessage::Replicate { items } => self.on_replicate(ctx, from, items),
            EurekaMessage::ReplicaNotFound { service, instance } => {
                let lease = self
                    .registry
                    .get(&service)
                    .and_then(|leases| leases.get(&instance))
                    .map(|l| l.info.clone());
                if let Some(lease) = lease {
                    self.queue(ctx, from, ReplicationItem::Register { lease });
                }
            }
            EurekaMessage::SyncRequest => {
                let leases = self
                    .registry
                    .values()
                    .flat_map(|leases| leases.values().map(|l| l.info.clone()))
                    .collect();
                ctx.send(from, EurekaMessage::SyncReply { leases });
            }
            EurekaMessage::SyncReply { leases } => self.on_sync_reply(ctx, from, leases),
            // Answers are for agents.
            EurekaMessage::Registered { .. }
            | EurekaMessage::Renewed { .. }
            | EurekaMessage::NotFound { .. }
            | EurekaMessage::Cancelled { .. }
            | EurekaMessage::Instances { .. } => {}
        }
    }

    fn on_timer(&mut self, ctx: &mut Context<'_>, _id: TimerId, timer: ServerTimer) {
        match timer {
            ServerTimer::Evict => {
                self.evict(ctx);
                ctx.set_timer(self.config.eviction_interval.to_std(), ServerTimer::Evict);
            }
            ServerTimer::Flush { peer } => self.flush(ctx, peer),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{observed, sent, timers};
    use super::*;
    use crate::process::TestContext;
    use crate::scenario::Duration;

    const S1: NodeId = NodeId(0);
    const S2: NodeId = NodeId(1);
    const S3: NodeId = NodeId(2);
    const I1: NodeId = NodeId(5);
    const SEC: i64 = 1_000_000_000;

    fn info(name: &str) -> InstanceInfo {
        InstanceInfo {
            service: "web".into(),
            instance: name.into(),
            node: I1,
            tags: Vec::new(),
            weight: 1,
        }
    }

    fn register(request: u64, name: &str) -> EurekaMessage {
        EurekaMessage::Register {
            request,
            instance: info(name),
            ttl_ms: 10_000,
            renewal_interval_ms: 1_000,
        }
    }

    fn renew(request: u64, name: &str) -> EurekaMessage {
        EurekaMessage::Renew {
            request,
            service: "web".into(),
            instance: name.into(),
        }
    }

    /// Eviction every second, a 5 s window, replication after 100 ms.
    fn config() -> EurekaConfig {
        EurekaConfig {
            eviction_interval: Duration::from_secs(1),
            renewal_window: Duration::from_secs(5),
            replication_batch_delay: Duration::from_millis(100),
            ..EurekaConfig::default()
        }
    }

    fn started(config: EurekaConfig) -> (EurekaServer, TestContext) {
        let mut tc = TestContext::new(S1, 1);
        let mut s = EurekaServer::new(S1, vec![S2, S3], config);
        s.on_start(&mut tc.ctx());
        tc.take_effects();
        // No peer answers the sync in these tests.
        (s, tc)
    }

    fn evict_at(s: &mut EurekaServer, tc: &mut TestContext, t: i64) -> Vec<EurekaObservation> {
        tc.local_time_ns = t;
        s.on_timer(&mut tc.ctx(), TimerId(99), ServerTimer::Evict);
        observed::<EurekaObservation>(&tc.take_effects())
    }

    /// Registers `names` at 0 and renews every one each second until `until_s` (exclusive).
    fn registered_and_renewed(
        config: EurekaConfig,
        names: &[&str],
        until_s: i64,
    ) -> (EurekaServer, TestContext) {
        let (mut s, mut tc) = started(config);
        for (i, n) in names.iter().enumerate() {
            s.on_message(&mut tc.ctx(), I1, register(i as u64, n));
        }
        for t in 1..until_s {
            tc.local_time_ns = t * SEC;
            for n in names {
                s.on_message(&mut tc.ctx(), I1, renew(0, n));
            }
        }
        tc.take_effects();
        (s, tc)
    }

    #[test]
    fn register_answers_reports_the_view_and_replicates_to_every_peer_in_one_batch() {
        let (mut s, mut tc) = started(config());
        s.on_message(&mut tc.ctx(), I1, register(7, "a"));
        s.on_message(&mut tc.ctx(), I1, renew(8, "a"));
        let effects = tc.take_effects();
        assert_eq!(
            sent::<EurekaMessage>(&effects),
            vec![
                (I1, EurekaMessage::Registered { request: 7 }),
                (I1, EurekaMessage::Renewed { request: 8 })
            ]
        );
        assert_eq!(
            observed::<Observation>(&effects),
            vec![Observation::ServerView {
                service: "web".into(),
                instances: vec!["a".into()]
            }]
        );
        let flushes = timers::<ServerTimer>(&effects);
        assert_eq!(flushes.len(), 2, "one flush timer per peer: {flushes:?}");
        assert_eq!(flushes[0].1, 100);
        s.on_timer(&mut tc.ctx(), flushes[0].0, flushes[0].2.clone());
        let batch = sent::<EurekaMessage>(&tc.take_effects());
        assert_eq!(batch.len(), 1);
        let (to, EurekaMessage::Replicate { items }) = &batch[0] else {
            panic!("{batch:?}")
        };
        assert_eq!(*to, S2);
        assert_eq!(items.len(), 2);
        assert!(matches!(items[1], ReplicationItem::Renew { .. }));
    }

    #[test]
    fn renew_of_an_unknown_instance_is_answered_not_found_and_not_replicated() {
        let (mut s, mut tc) = started(config());
        s.on_message(&mut tc.ctx(), I1, renew(3, "ghost"));
        let effects = tc.take_effects();
        assert_eq!(
            sent::<EurekaMessage>(&effects),
            vec![(I1, EurekaMessage::NotFound { request: 3 })]
        );
        assert!(timers::<ServerTimer>(&effects).is_empty());
    }

    #[test]
    fn replicated_renew_of_an_unknown_instance_makes_the_origin_replicate_the_registration() {
        let (mut peer, mut ptc) = started(config());
        peer.on_message(
            &mut ptc.ctx(),
            S2,
            EurekaMessage::Replicate {
                items: vec![ReplicationItem::Renew {
                    service: "web".into(),
                    instance: "a".into(),
                }],
            },
        );
        let answer = sent::<EurekaMessage>(&ptc.take_effects());
        assert_eq!(
            answer,
            vec![(
                S2,
                EurekaMessage::ReplicaNotFound {
                    service: "web".into(),
                    instance: "a".into()
                }
            )]
        );
        // The origin (here `s`, which has the lease) queues the registration for that peer.
        let (mut s, mut tc) = started(config());
        s.on_message(&mut tc.ctx(), I1, register(1, "a"));
        tc.take_effects();
        s.on_message(&mut tc.ctx(), S3, answer[0].1.clone());
        s.on_timer(&mut tc.ctx(), TimerId(0), ServerTimer::Flush { peer: S3 });
        let sent = sent::<EurekaMessage>(&tc.take_effects());
        let EurekaMessage::Replicate { items } = &sent[0].1 else {
            panic!("{sent:?}")
        };
        assert!(matches!(
            items.last(),
            Some(ReplicationItem::Register { .. })
        ));
        // A replicated registration registers without replicating further.
        peer.on_message(
            &mut ptc.ctx(),
            S2,
            EurekaMessage::Replicate {
                items: items.clone(),
            },
        );
        let effects = ptc.take_effects();
        assert!(timers::<ServerTimer>(&effects).is_empty());
        assert_eq!(peer.instances("web"), vec![info("a")]);
    }

    #[test]
    fn lookup_answers_from_the_local_registry_sorted() {
        let (mut s, mut tc) = started(config());
        s.on_message(&mut tc.ctx(), I1, register(1, "b"));
        s.on_message(&mut tc.ctx(), I1, register(2, "a"));
        tc.take_effects();
        s.on_message(
            &mut tc.ctx(),
            I1,
            EurekaMessage::Lookup {
                request: 9,
                service: "web".into(),
            },
        );
        assert_eq!(
            sent::<EurekaMessage>(&tc.take_effects()),
            vec![(
                I1,
                EurekaMessage::Instances {
                    request: 9,
                    instances: vec![info("a"), info("b")]
                }
            )]
        );
    }

    #[test]
    fn lease_is_evicted_once_its_duration_passed_without_renewal_and_not_before() {
        // Ten instances renew until 20 s; "a" stops at 10 s (the others keep the count above
        // 85%: 9 of 10).
        let names = ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j"];
        let (mut s, mut tc) = registered_and_renewed(config(), &names, 10);
        for t in 10..30 {
            tc.local_time_ns = t * SEC;
            for n in &names[1..] {
                s.on_message(&mut tc.ctx(), I1, renew(0, n));
            }
            tc.take_effects();
            let evicted = evict_at(&mut s, &mut tc, t * SEC + SEC / 2);
            let evictions: Vec<_> = evicted
                .iter()
                .filter(|o| matches!(o, EurekaObservation::Evicted { .. }))
                .collect();
            // Last renewal at 9 s, lease 10 s: evicted at the first run at or after 19 s.
            if t == 19 {
                assert_eq!(
                    evictions,
                    vec![&EurekaObservation::Evicted {
                        service: "web".into(),
                        instance: "a".into(),
                        lease_age_ms: 10_500,
                        ttl_ms: 10_000,
                        renewals_in_window: 45,
                        expected_renewals_in_window: 50.0,
                        self_preservation: false,
                    }]
                );
            } else {
                assert!(evictions.is_empty(), "at {t}: {evictions:?}");
            }
        }
        assert_eq!(s.instances("web").len(), 9);
    }

    #[test]
    fn self_preservation_keeps_every_lease_when_renewals_stop_everywhere() {
        let (mut s, mut tc) = registered_and_renewed(config(), &["a", "b", "c"], 10);
        let mut facts = Vec::new();
        for t in 10..40 {
            facts.extend(evict_at(&mut s, &mut tc, t * SEC));
        }
        assert_eq!(s.instances("web").len(), 3, "nothing evicted: {facts:?}");
        assert!(matches!(
            facts[0],
            EurekaObservation::SelfPreservation { active: true, .. }
        ));
        assert!(
            !facts
                .iter()
                .any(|f| matches!(f, EurekaObservation::Evicted { .. }))
        );
    }

    #[test]
    fn bug_no_self_preservation_evicts_every_lease_when_renewals_stop() {
        let config = EurekaConfig {
            bugs: vec![EurekaBug::NoSelfPreservation],
            ..config()
        };
        let (mut s, mut tc) = registered_and_renewed(config, &["a", "b", "c"], 10);
        let mut facts = Vec::new();
        for t in 10..40 {
            facts.extend(evict_at(&mut s, &mut tc, t * SEC));
        }
        assert!(s.instances("web").is_empty());
        let evicted: Vec<_> = facts
            .iter()
            .filter_map(|f| match f {
                EurekaObservation::Evicted {
                    self_preservation, ..
                } => Some(*self_preservation),
                _ => None,
            })
            .collect();
        assert_eq!(evicted, vec![true, true, true]);
    }

    #[test]
    fn self_preservation_off_in_the_options_evicts_as_the_bug_does() {
        let config = EurekaConfig {
            self_preservation: false,
            ..config()
        };
        let (mut s, mut tc) = registered_and_renewed(config, &["a", "b"], 10);
        for t in 10..40 {
            evict_at(&mut s, &mut tc, t * SEC);
        }
        assert!(s.instances("web").is_empty());
    }

    #[test]
    fn bug_evict_on_first_miss_evicts_after_one_renewal_interval() {
        let config = EurekaConfig {
            bugs: vec![EurekaBug::EvictOnFirstMiss],
            ..config()
        };
        let names = ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j"];
        let (mut s, mut tc) = registered_and_renewed(config, &names, 10);
        // Every instance renewed at 9 s; at 10.2 s "a" has missed one interval.
        tc.local_time_ns = 10 * SEC + SEC / 10;
        for n in &names[1..] {
            s.on_message(&mut tc.ctx(), I1, renew(0, n));
        }
        tc.take_effects();
        let facts = evict_at(&mut s, &mut tc, 10 * SEC + SEC / 5);
        assert!(matches!(
            &facts[..],
            [EurekaObservation::Evicted { instance, lease_age_ms: 1_200, ttl_ms: 10_000, .. }] if instance == "a"
        ));
    }

    #[test]
    fn cancel_removes_and_replicates_and_answers_whether_it_existed() {
        let (mut s, mut tc) = started(config());
        s.on_message(&mut tc.ctx(), I1, register(1, "a"));
        tc.take_effects();
        let cancel = |request| EurekaMessage::Cancel {
            request,
            service: "web".into(),
            instance: "a".into(),
        };
        s.on_message(&mut tc.ctx(), I1, cancel(2));
        s.on_message(&mut tc.ctx(), I1, cancel(3));
        let effects = tc.take_effects();
        assert_eq!(
            sent::<EurekaMessage>(&effects),
            vec![
                (
                    I1,
                    EurekaMessage::Cancelled {
                        request: 2,
                        existed: true
                    }
                ),
                (
                    I1,
                    EurekaMessage::Cancelled {
                        request: 3,
                        existed: false
                    }
                )
            ]
        );
        assert_eq!(
            observed::<Observation>(&effects),
            vec![Observation::ServerView {
                service: "web".into(),
                instances: vec![]
            }]
        );
    }

    #[test]
    fn restarted_server_asks_its_peers_and_warms_up_from_the_first_answer_only() {
        let mut tc = TestContext::new(S1, 1);
        let mut s = EurekaServer::new(S1, vec![S2, S3], config());
        s.on_start(&mut tc.ctx());
        let asked: Vec<NodeId> = sent::<EurekaMessage>(&tc.take_effects())
            .into_iter()
            .filter(|(_, m)| *m == EurekaMessage::SyncRequest)
            .map(|(to, _)| to)
            .collect();
        assert_eq!(asked, vec![S2, S3]);
        let lease = |name: &str| LeaseInfo {
            instance: info(name),
            ttl_ms: 10_000,
            renewal_interval_ms: 1_000,
        };
        s.on_message(
            &mut tc.ctx(),
            S3,
            EurekaMessage::SyncReply {
                leases: vec![lease("a")],
            },
        );
        s.on_message(
            &mut tc.ctx(),
            S2,
            EurekaMessage::SyncReply {
                leases: vec![lease("b")],
            },
        );
        let effects = tc.take_effects();
        assert_eq!(s.instances("web"), vec![info("a")]);
        assert!(
            observed::<EurekaObservation>(&effects).contains(&EurekaObservation::WarmedUp {
                peer: S3,
                leases: 1
            })
        );
        assert!(
            timers::<ServerTimer>(&effects).is_empty(),
            "synced leases are not replicated"
        );
    }

    #[test]
    fn replication_queue_drops_the_oldest_beyond_its_limit_and_batches_are_bounded() {
        let (mut s, mut tc) = started(EurekaConfig {
            replication_queue_max: 3,
            replication_batch_max: 2,
            ..config()
        });
        for i in 0..5 {
            s.on_message(&mut tc.ctx(), I1, register(i, &format!("i{i}")));
        }
        tc.take_effects();
        s.on_timer(&mut tc.ctx(), TimerId(0), ServerTimer::Flush { peer: S2 });
        let effects = tc.take_effects();
        let batch = sent::<EurekaMessage>(&effects);
        let EurekaMessage::Replicate { items } = &batch[0].1 else {
            panic!()
        };
        let names: Vec<&str> = items
            .iter()
            .map(|i| match i {
                ReplicationItem::Register { lease } => lease.instance.instance.as_str(),
                _ => "",
            })
            .collect();
        assert_eq!(names, vec!["i2", "i3"]);
        assert_eq!(
            timers::<ServerTimer>(&effects).len(),
            1,
            "the rest goes in the next batch"
        );
    }

    #[test]
    fn config_validation_names_each_bad_key() {
        assert!(EurekaConfig::default().validate().is_empty());
        let bad = EurekaConfig {
            eviction_interval: Duration(0),
            renewal_window: Duration::from_secs(7200),
            renewal_percent_threshold: 1.5,
            replication_batch_max: 0,
            replication_queue_max: 2_000_000,
            ..EurekaConfig::default()
        };
        let paths: Vec<String> = bad.validate().iter().map(|e| e.path.join(".")).collect();
        assert_eq!(
            paths,
            vec![
                "eviction_interval",
                "renewal_window",
                "renewal_percent_threshold",
                "replication_batch_max",
                "replication_queue_max"
            ]
        );
        assert!(toml::from_str::<EurekaConfig>("eviction_intervall = \"1s\"").is_err());
        let parsed: EurekaConfig =
            toml::from_str("renewal_window = \"5s\"\nbugs = [\"evict-on-first-miss\"]").unwrap();
        assert_eq!(parsed.bugs, vec![EurekaBug::EvictOnFirstMiss]);
        assert_eq!(parsed.renewal_percent_threshold, 0.85);
    }
}
