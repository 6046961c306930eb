//! Model-based property test of replication into the national tier (proptest-state-machine):
//! real municipalities write hash-chained notices (moves across them included, so move-ins
//! park at the receiver); the network duplicates, drops, reorders and merges batches, and
//! re-sends stale ranges; the receiver crashes between batches and in the middle of one.
//! After every step the applied set per source is a contiguous prefix equal to the cursor,
//! every stored notice is the emitted one, and the projection, feed and retired codes equal
//! the fold of the applied notices. Deterministic companions: a forged last notice rejects its whole
//! batch and halts only its source; a gap applies nothing until it is filled.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failed test

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::marker::PhantomData;
use std::pin::pin;
use std::sync::Arc;
use std::task::Poll;

use identity::apply::changed_items;
use identity::ids::{LgCode, ResidentCode};
use identity::municipal::Municipality;
use identity::notice::{ChangeNotice, GENESIS, NoticeKind, NoticeRef, format_date, parse_date};
use identity::notice_sig::{NoticeKeyCert, NoticeSigner};
use identity::operator::{Operator, Role};
use identity::person::{FlaggedText, FourItems, Record, Sex};
use identity::replica::{self, Applied, Stop, Tier};
use identity::store::testing::{self, TestDb};
use identity::store::{self, Db};
use identity::test_keys::{TestNetworkCa, TestNoticeVerifier};
use proptest::prelude::*;
use proptest::sample::select;
use proptest::strategy::Union;
use proptest::test_runner::{Config, TestRunner};
use proptest_state_machine::{ReferenceStateMachine, StateMachineTest, prop_state_machine};
use sqlx::Row;

/// The municipalities (valid local-government codes, three prefectures).
const SOURCES: [&str; 3] = ["131016", "011002", "271004"];
/// Longest batch the network carries (a pull page, in miniature).
const MAX_BATCH: u64 = 4;
/// Longest batch a merge may make.
const MAX_MERGED: usize = 8;
/// Polls a batch may get before the receiver crashes under it (a whole batch takes ~1–15).
const MAX_POLLS: u32 = 16;
/// Resident codes pooled per municipality (more than any case can draw).
const POOL: usize = 64;
/// First recorded_at; every municipal write is one minute later than the one before.
const T0: i64 = 1_775_000_000;

// ---------------------------------------------------------------------------------------
// Reference model
// ---------------------------------------------------------------------------------------

/// How a resident leaves the register for good.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Removal {
    Death,
    Emigration,
    ExOfficio,
}

impl Removal {
    fn kind(self) -> NoticeKind {
        match self {
            Self::Death => NoticeKind::Death,
            Self::Emigration => NoticeKind::Emigration,
            Self::ExOfficio => NoticeKind::RemovalExOfficio,
        }
    }
}

/// A municipal write; residents are model ids (the SUT maps them to their current code).
/// `MoveIn` happens at the destination of `r`'s pending move-out and names that move-out.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Op {
    Register { birth: bool },
    MoveWithin { r: usize },
    Correct { r: usize },
    ChangeCode { r: usize },
    Remove { r: usize, why: Removal },
    MoveOut { r: usize, dest: usize },
    MoveIn { r: usize },
}

#[derive(Debug, Clone)]
enum Transition {
    /// Municipality `s` writes a notice; it is pushed onto the network at once.
    Emit { s: usize, op: Op },
    /// The sender (re-)sends seqs `from..from+len` of `s` (stale or fresh).
    Resend { s: usize, from: u64, len: u64 },
    /// In-flight message `i` reaches the receiver: one `apply_batch`.
    Deliver(usize),
    /// The network (or a sender batching retries) concatenates message `j` onto message `i`
    /// of the same source: batches out of order or repeating a seq.
    Merge(usize, usize),
    /// The network duplicates message `i`.
    Duplicate(usize),
    /// The network loses message `i`.
    Drop(usize),
    /// The network permutes what is in flight.
    Reorder(u64),
    /// The receiver process dies between batches and restarts on the same database.
    CrashReceiver,
    /// The receiver dies while applying message `i` (after at most `polls` polls of the
    /// batch), restarts, and the sender retries the same message.
    CrashMidBatch { i: usize, polls: u32 },
}

/// A batch in flight: seqs of one source, in batch order (consecutive unless merged).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Msg {
    s: usize,
    seqs: Vec<u64>,
}

#[derive(Debug, Clone)]
struct ModelNotice {
    kind: NoticeKind,
    resident: usize,
    /// `(source, seq)` of the move-out a move-in follows.
    predecessor: Option<(usize, u64)>,
}

/// What the receiver must answer to the last delivery.
#[derive(Debug, Clone)]
struct Delivery {
    msg: Msg,
    /// Cursor of `msg.s` before the batch.
    before: u64,
    outcome: Applied,
}

#[derive(Debug, Clone)]
struct Model {
    /// Per source: every notice written, seq = index + 1.
    emitted: Vec<Vec<ModelNotice>>,
    /// Per source: residents active on its register.
    active: Vec<BTreeSet<usize>>,
    /// Residents between move-out and move-in: `(from, move-out seq, destination)`.
    moving: BTreeMap<usize, (usize, u64, usize)>,
    /// Next resident id.
    residents: usize,
    inflight: Vec<Msg>,
    /// Per source: the receiver's committed applied prefix `1..=applied[s]`.
    applied: Vec<u64>,
    /// Every applied notice, in the order the receiver applied it (= feed order).
    log: Vec<(usize, u64)>,
    last: Option<Delivery>,
}

impl Model {
    fn new() -> Self {
        let n = SOURCES.len();
        Self {
            emitted: vec![Vec::new(); n],
            active: vec![BTreeSet::new(); n],
            moving: BTreeMap::new(),
            residents: 0,
            inflight: Vec::new(),
            applied: vec![0; n],
            log: Vec::new(),
            last: None,
        }
    }

    /// The specification of `replica::apply_batch` at the national tier: duplicates are
    /// acknowledged, the next seq applies unless its move-out is not applied yet (park),
    /// anything beyond the next seq is a gap; the batch stops at the first park or gap.
    fn deliver(&mut self, msg: Msg) -> Delivery {
        let before = self.applied[msg.s];
        let mut out = Applied::default();
        for &seq in &msg.seqs {
            let cur = self.applied[msg.s];
            if seq <= cur {
                out.duplicates += 1;
                continue;
            }
            if seq > cur + 1 {
                out.stop = Some(Stop::Gap { expected: cur + 1 });
                break;
            }
            if let Some((ps, pseq)) = self.emitted[msg.s][idx(seq)].predecessor
                && self.applied[ps] < pseq
            {
                out.stop = Some(Stop::Parked { waiting_for: format!("{}/{pseq}", SOURCES[ps]) });
                break;
            }
            self.applied[msg.s] = seq;
            self.log.push((msg.s, seq));
            out.applied += 1;
        }
        out.cursor_seq = self.applied[msg.s];
        Delivery { msg, before, outcome: out }
    }
}

fn idx(seq: u64) -> usize {
    usize::try_from(seq - 1).unwrap()
}

/// Deterministic Fisher–Yates with xorshift64.
fn shuffle<T>(v: &mut [T], seed: u64) {
    let mut x = seed | 1;
    for i in (1..v.len()).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.swap(i, usize::try_from(x % (i as u64 + 1)).unwrap());
    }
}

struct Network;

impl ReferenceStateMachine for Network {
    type State = Model;
    type Transition = Transition;

    fn init_state() -> BoxedStrategy<Model> {
        Just(Model::new()).boxed()
    }

    fn transitions(st: &Model) -> BoxedStrategy<Transition> {
        let n = SOURCES.len();
        let mut arms: Vec<(u32, BoxedStrategy<Transition>)> = vec![
            (
                3,
                (0..n, any::<bool>()).prop_map(|(s, birth)| Transition::Emit { s, op: Op::Register { birth } }).boxed(),
            ),
            (1, Just(Transition::CrashReceiver).boxed()),
        ];
        let residents: Vec<(usize, usize)> =
            st.active.iter().enumerate().flat_map(|(s, set)| set.iter().map(move |r| (s, *r))).collect();
        if !residents.is_empty() {
            let change = (select(residents), 0..7u8, 0..n - 1, 0..3u8).prop_map(move |((s, r), k, d, why)| {
                let op = match k {
                    0 => Op::MoveWithin { r },
                    1 => Op::Correct { r },
                    2 => Op::ChangeCode { r },
                    3 => Op::Remove {
                        r,
                        why: [Removal::Death, Removal::Emigration, Removal::ExOfficio][usize::from(why)],
                    },
                    // Moves are the interesting case (parking): two slots of seven.
                    _ => Op::MoveOut { r, dest: (s + 1 + d) % n },
                };
                Transition::Emit { s, op }
            });
            arms.push((6, change.boxed()));
        }
        if !st.moving.is_empty() {
            let arrivals: Vec<(usize, usize)> = st.moving.iter().map(|(r, (_, _, dest))| (*dest, *r)).collect();
            arms.push((4, select(arrivals).prop_map(|(s, r)| Transition::Emit { s, op: Op::MoveIn { r } }).boxed()));
        }
        let written: Vec<(usize, u64)> =
            st.emitted.iter().enumerate().filter(|(_, e)| !e.is_empty()).map(|(s, e)| (s, e.len() as u64)).collect();
        if !written.is_empty() {
            let resend = select(written)
                .prop_flat_map(|(s, k)| {
                    (Just(s), 1..=k, 1..=MAX_BATCH).prop_map(move |(s, from, len)| (s, from, len.min(k - from + 1)))
                })
                .prop_map(|(s, from, len)| Transition::Resend { s, from, len });
            arms.push((3, resend.boxed()));
        }
        // A pull from the receiver's cursor (what the real puller sends for), so prefixes grow.
        let behind: Vec<(usize, u64, u64)> = (0..n)
            .filter(|s| (st.emitted[*s].len() as u64) > st.applied[*s])
            .map(|s| (s, st.applied[s] + 1, st.emitted[s].len() as u64 - st.applied[s]))
            .collect();
        if !behind.is_empty() {
            let pull = select(behind)
                .prop_flat_map(|(s, from, left)| (Just(s), Just(from), 1..=left.min(MAX_BATCH)))
                .prop_map(|(s, from, len)| Transition::Resend { s, from, len });
            arms.push((4, pull.boxed()));
        }
        let l = st.inflight.len();
        if l > 0 {
            arms.push((10, (0..l).prop_map(Transition::Deliver).boxed()));
            arms.push((2, (0..l).prop_map(Transition::Duplicate).boxed()));
            arms.push((2, (0..l).prop_map(Transition::Drop).boxed()));
            arms.push((2, (0..l, 0..MAX_POLLS).prop_map(|(i, polls)| Transition::CrashMidBatch { i, polls }).boxed()));
        }
        if l > 1 {
            arms.push((1, any::<u64>().prop_map(Transition::Reorder).boxed()));
        }
        let pairs: Vec<(usize, usize)> = (0..l)
            .flat_map(|i| (0..l).map(move |j| (i, j)))
            .filter(|(i, j)| {
                let (a, b) = (&st.inflight[*i], &st.inflight[*j]);
                i != j && a.s == b.s && a.seqs.len() + b.seqs.len() <= MAX_MERGED
            })
            .collect();
        if !pairs.is_empty() {
            arms.push((2, select(pairs).prop_map(|(i, j)| Transition::Merge(i, j)).boxed()));
        }
        Union::new_weighted(arms).boxed()
    }

    fn preconditions(st: &Model, t: &Transition) -> bool {
        match t {
            Transition::Emit { s, op } => match op {
                Op::Register { .. } => true,
                Op::MoveWithin { r } | Op::Correct { r } | Op::ChangeCode { r } | Op::Remove { r, .. } => {
                    st.active[*s].contains(r)
                }
                Op::MoveOut { r, dest } => st.active[*s].contains(r) && dest != s,
                Op::MoveIn { r } => st.moving.get(r).is_some_and(|(_, _, dest)| dest == s),
            },
            Transition::Resend { s, from, len } => {
                *from >= 1 && *len >= 1 && from + len - 1 <= st.emitted[*s].len() as u64
            }
            Transition::Deliver(i)
            | Transition::Duplicate(i)
            | Transition::Drop(i)
            | Transition::CrashMidBatch { i, .. } => *i < st.inflight.len(),
            Transition::Merge(i, j) => {
                *i < st.inflight.len()
                    && *j < st.inflight.len()
                    && i != j
                    && st.inflight[*i].s == st.inflight[*j].s
                    && st.inflight[*i].seqs.len() + st.inflight[*j].seqs.len() <= MAX_MERGED
            }
            Transition::Reorder(_) | Transition::CrashReceiver => true,
        }
    }

    fn apply(mut st: Model, t: &Transition) -> Model {
        st.last = None;
        match t {
            Transition::Emit { s, op } => {
                let s = *s;
                let seq = st.emitted[s].len() as u64 + 1;
                let (kind, resident, predecessor) = match op {
                    Op::Register { birth } => {
                        let r = st.residents;
                        st.residents += 1;
                        st.active[s].insert(r);
                        (if *birth { NoticeKind::Birth } else { NoticeKind::FirstRegistration }, r, None)
                    }
                    Op::MoveWithin { r } => (NoticeKind::MoveWithin, *r, None),
                    Op::Correct { r } => (NoticeKind::Correction, *r, None),
                    Op::ChangeCode { r } => (NoticeKind::CodeChange, *r, None),
                    Op::Remove { r, why } => {
                        st.active[s].remove(r);
                        (why.kind(), *r, None)
                    }
                    Op::MoveOut { r, dest } => {
                        st.active[s].remove(r);
                        st.moving.insert(*r, (s, seq, *dest));
                        (NoticeKind::MoveOut, *r, None)
                    }
                    Op::MoveIn { r } => {
                        let (from, out_seq, _) = st.moving.remove(r).unwrap();
                        st.active[s].insert(*r);
                        (NoticeKind::MoveIn, *r, Some((from, out_seq)))
                    }
                };
                st.emitted[s].push(ModelNotice { kind, resident, predecessor });
                st.inflight.push(Msg { s, seqs: vec![seq] });
            }
            Transition::Resend { s, from, len } => st.inflight.push(Msg { s: *s, seqs: (*from..from + len).collect() }),
            Transition::Merge(i, j) => {
                let tail = st.inflight[*j].seqs.clone();
                st.inflight[*i].seqs.extend(tail);
                st.inflight.remove(*j);
            }
            Transition::Deliver(i) | Transition::CrashMidBatch { i, .. } => {
                let m = st.inflight.remove(*i);
                st.last = Some(st.deliver(m));
            }
            Transition::Duplicate(i) => {
                let m = st.inflight[*i].clone();
                st.inflight.push(m);
            }
            Transition::Drop(i) => {
                st.inflight.remove(*i);
            }
            Transition::Reorder(seed) => shuffle(&mut st.inflight, *seed),
            Transition::CrashReceiver => {}
        }
        st
    }
}

// ---------------------------------------------------------------------------------------
// System under test: real municipalities (SQLite) and a real national receiver
// ---------------------------------------------------------------------------------------

/// Where the receiver's database lives.
trait Engine: 'static {
    async fn receiver() -> TestDb;
}

#[derive(Debug)]
struct OnSqlite;
impl Engine for OnSqlite {
    async fn receiver() -> TestDb {
        testing::sqlite().unwrap()
    }
}

#[derive(Debug)]
struct OnPostgres;
impl Engine for OnPostgres {
    async fn receiver() -> TestDb {
        testing::postgres().await.unwrap().expect("JPKI_TEST_PG_URL is set")
    }
}

struct Sut {
    munis: Vec<Municipality>,
    /// Per source: the real notices, seq = index + 1.
    emitted: Vec<Vec<ChangeNotice>>,
    /// Model resident id → current resident code.
    codes: BTreeMap<usize, ResidentCode>,
    now: i64,
    receiver: Db,
    receiver_url: String,
    /// Highest cursor seen per source (it must never move backwards).
    seen: RefCell<Vec<u64>>,
    stats: Stats,
    _dbs: Vec<TestDb>,
    // Last: the pools above are dropped while the runtime still exists.
    rt: tokio::runtime::Runtime,
}

/// What a case exercised (printed per case with `REPLICATION_MODEL_STATS=1 … --nocapture`).
#[derive(Debug, Default)]
struct Stats {
    batches: u32,
    applied: u64,
    duplicates: u64,
    gaps: u32,
    parks: u32,
    restarts: u32,
    crashes_mid_batch: u32,
    /// Crashes after which the batch turned out committed.
    crashes_committed: u32,
    /// Crashes that rolled back a batch that would have applied something.
    crashes_mid_applying: u32,
}

impl Stats {
    fn count(&mut self, a: &Applied) {
        self.batches += 1;
        self.applied += a.applied;
        self.duplicates += a.duplicates;
        match a.stop {
            Some(Stop::Gap { .. }) => self.gaps += 1,
            Some(Stop::Parked { .. }) => self.parks += 1,
            None => {}
        }
    }
}

fn lg(s: &str) -> LgCode {
    s.parse().unwrap()
}

fn clerk() -> Operator {
    Operator::new("clerk", Role::MunicipalClerk).unwrap()
}

fn text(field: &'static str, s: &str) -> FlaggedText {
    FlaggedText::plain(field, s).unwrap()
}

/// `n` distinct valid resident codes from body `start`.
fn pool(start: u64, n: usize) -> Vec<ResidentCode> {
    (start..start + n as u64)
        .map(|v| ResidentCode::from_body(std::array::from_fn(|k| ((v / 10u64.pow(9 - k as u32)) % 10) as u8)).unwrap())
        .collect()
}

/// The model's network CA (the HMAC test double of `identity::test_keys`).
fn network_ca() -> TestNetworkCa {
    TestNetworkCa::new("replication-model")
}

/// A fresh verifier: nothing admitted in memory, as after a receiver restart.
fn verifier() -> Arc<TestNoticeVerifier> {
    network_ca().verifier()
}

/// A municipality with its notice key installed.
async fn signed(db: Db, code: &str) -> Municipality {
    Municipality::open(db, lg(code)).await.unwrap().with_signer(network_ca().issue(&lg(code), "2026")).await.unwrap()
}

/// Stores the notice key of `code` at `receiver` (what a pull fetches over HTTP).
async fn admit(receiver: &Db, code: &str) {
    let k = network_ca().issue(&lg(code), "2026");
    let cert = NoticeKeyCert { key_id: k.key_id().to_owned(), cert: k.key_cert().to_vec() };
    let got = replica::admit_keys(receiver, &*verifier(), &lg(code), &[cert], T0).await.unwrap();
    assert!(got.len() <= 1);
}

fn effective() -> time::Date {
    parse_date("date", "2026-04-01").unwrap()
}

impl Sut {
    async fn open<E: Engine>() -> (Vec<Municipality>, Db, String, Vec<TestDb>) {
        let mut dbs = Vec::new();
        let mut munis = Vec::new();
        for (i, code) in SOURCES.iter().enumerate() {
            // The municipalities only generate notices: SQLite whatever the receiver runs on.
            let t = testing::sqlite().unwrap();
            let m = signed(Db::open(&t.url).await.unwrap(), code).await;
            m.add_pool(&pool(1_000_000 * (i as u64 + 1), POOL)).await.unwrap();
            munis.push(m);
            dbs.push(t);
        }
        let t = E::receiver().await;
        let receiver = Db::open(&t.url).await.unwrap();
        for code in SOURCES {
            admit(&receiver, code).await;
        }
        let url = t.url.clone();
        dbs.push(t);
        (munis, receiver, url, dbs)
    }

    fn emit(&mut self, st: &Model, s: usize, op: &Op) {
        self.now += 60;
        let (now, eff, op_) = (self.now, effective(), clerk());
        let m = &self.munis[s];
        let model = st.emitted[s].last().unwrap();
        let code = self.codes.get(&model.resident).cloned();
        let n = self.rt.block_on(async {
            match op {
                Op::Register { .. } => {
                    let items = FourItems {
                        name: text("name", &format!("住民　{}", model.resident)),
                        address: text("address", &format!("{}番地", now)),
                        date_of_birth: parse_date("dob", "1990-02-28").unwrap(),
                        sex: if model.resident.is_multiple_of(2) { Sex::Female } else { Sex::Male },
                    };
                    m.register(&op_, model.kind, items, eff, now).await
                }
                Op::MoveWithin { .. } => {
                    m.move_within(&op_, code.as_ref().unwrap(), text("address", &format!("転居先{now}")), eff, now)
                        .await
                }
                Op::Correct { .. } => {
                    let code = code.as_ref().unwrap();
                    let mut items = m.get(code).await.unwrap().items;
                    items.name = text("name", &format!("訂正　{now}"));
                    m.correct(&op_, code, items, eff, now).await
                }
                Op::ChangeCode { .. } => m.change_code(&op_, code.as_ref().unwrap(), eff, now).await,
                Op::Remove { why, .. } => m.remove(&op_, code.as_ref().unwrap(), why.kind(), eff, now).await,
                Op::MoveOut { dest, .. } => {
                    m.move_out(&op_, code.as_ref().unwrap(), lg(SOURCES[*dest]), eff, now).await
                }
                Op::MoveIn { .. } => {
                    let (from, _) = model.predecessor.unwrap();
                    let cert = self.munis[from].move_out_certificate(code.as_ref().unwrap()).await.unwrap();
                    m.move_in(&op_, &cert, text("address", &format!("転入先{now}")), eff, now).await
                }
            }
        });
        let n = n.unwrap_or_else(|e| panic!("municipality {} refused {op:?}: {e}", SOURCES[s]));
        // The real notice is the one the model expects.
        assert_eq!(n.key, NoticeRef { source: lg(SOURCES[s]), seq: st.emitted[s].len() as u64 });
        assert_eq!(n.body.kind, model.kind);
        assert_eq!(
            n.body.predecessor,
            model.predecessor.map(|(ps, pseq)| NoticeRef { source: lg(SOURCES[ps]), seq: pseq })
        );
        assert_eq!(n.prev_hash, self.emitted[s].last().map_or(GENESIS, |p| p.hash), "the municipal chain is linked");
        self.codes.insert(model.resident, n.body.record.resident_code.clone());
        self.emitted[s].push(n);
    }

    fn batch(&self, m: &Msg) -> Vec<ChangeNotice> {
        m.seqs.iter().map(|seq| self.emitted[m.s][idx(*seq)].clone()).collect()
    }

    /// The receiver process dies: its pool is closed (an open transaction is rolled back,
    /// as SQLite and PostgreSQL do for a dead connection) and it reopens the same database.
    fn restart(&mut self) {
        self.rt.block_on(self.receiver.close());
        self.receiver = self.rt.block_on(Db::open(&self.receiver_url)).unwrap();
    }

    fn crash_mid_batch(&mut self, st: &Model, polls: u32) {
        let d = st.last.as_ref().unwrap();
        let batch = self.batch(&d.msg);
        let finished = self.rt.block_on(async {
            let v = verifier();
            let mut fut = pin!(replica::apply_batch(&self.receiver, Tier::National, &*v, &batch));
            // Polled only when woken, so `polls` counts the batch's steps (roughly one per
            // database round trip); at the limit the future is dropped wherever it is —
            // mid-transaction, mid-query or mid-commit — as if the process died.
            let mut left = polls;
            std::future::poll_fn(|cx| {
                if left == 0 {
                    return Poll::Ready(None);
                }
                left -= 1;
                fut.as_mut().poll(cx).map(Some)
            })
            .await
        });
        self.restart();
        let (cur, _) = self.rt.block_on(replica::cursor(&self.receiver, SOURCES[d.msg.s])).unwrap();
        let after = d.outcome.cursor_seq;
        assert!(
            cur.applied_seq == d.before || cur.applied_seq == after,
            "a crash left {} at seq {} (before {}, after {after}): the batch was applied in part",
            SOURCES[d.msg.s],
            cur.applied_seq,
            d.before
        );
        let committed = cur.applied_seq == after && after != d.before;
        if let Some(r) = finished {
            assert_eq!(r.unwrap(), d.outcome, "{:?}", d.msg);
            assert!(committed || after == d.before);
        }
        self.stats.crashes_mid_batch += 1;
        self.stats.crashes_committed += u32::from(committed);
        self.stats.crashes_mid_applying += u32::from(!committed && d.outcome.applied > 0);
        self.stats.count(&d.outcome);
        // All or nothing: the whole state is exactly the one after the batch, or the one before.
        if committed {
            self.check(&st.applied, &st.log);
        } else {
            let mut applied = st.applied.clone();
            applied[d.msg.s] = d.before;
            let n = usize::try_from(d.outcome.applied).unwrap();
            self.check(&applied, &st.log[..st.log.len() - n]);
        }
        // The sender retries the message against the restarted receiver.
        let got = self.rt.block_on(replica::apply_batch(&self.receiver, Tier::National, &*verifier(), &batch)).unwrap();
        if committed {
            assert_eq!((got.applied, got.cursor_seq), (0, after), "retry after a committed batch");
        } else {
            assert_eq!(got, d.outcome, "retry of {:?}", d.msg);
        }
    }

    /// Checks every invariant against the model's applied prefixes and apply order.
    fn check(&self, applied: &[u64], log: &[(usize, u64)]) {
        let db = &self.receiver;
        let emitted = &self.emitted;
        let cursors = self.rt.block_on(async {
            let mut cursors = Vec::new();
            // Cursors and contiguous prefixes, each stored notice identical to the emitted one.
            for (s, code) in SOURCES.iter().enumerate() {
                let (cur, halted) = replica::cursor(db, code).await.unwrap();
                assert_eq!(halted, None, "{code} halted");
                let k = applied[s];
                assert_eq!(cur.applied_seq, k, "cursor of {code}");
                assert_eq!(cur.applied_hash, if k == 0 { GENESIS } else { emitted[s][idx(k)].hash }, "head of {code}");
                let stored = store::notices_after(db, code, 0, 10_000).await.unwrap();
                assert!(stored.as_slice() == &emitted[s][..usize::try_from(k).unwrap()], "history of {code}");
                cursors.push(cur.applied_seq);
            }
            let rows = sqlx::query("SELECT source, seq, hash, prev_hash FROM change_notice ORDER BY source, seq")
                .fetch_all(db.pool())
                .await
                .unwrap();
            let got: Vec<(String, i64, Vec<u8>, Vec<u8>)> = rows
                .iter()
                .map(|r| (r.try_get(0).unwrap(), r.try_get(1).unwrap(), r.try_get(2).unwrap(), r.try_get(3).unwrap()))
                .collect();
            let mut want: BTreeMap<&str, &[ChangeNotice]> = BTreeMap::new();
            for (s, code) in SOURCES.iter().enumerate() {
                want.insert(code, &emitted[s][..usize::try_from(applied[s]).unwrap()]);
            }
            let want: Vec<(String, i64, Vec<u8>, Vec<u8>)> = want
                .into_iter()
                .flat_map(|(code, ns)| {
                    ns.iter().map(move |n| {
                        (code.to_owned(), i64::try_from(n.key.seq).unwrap(), n.hash.to_vec(), n.prev_hash.to_vec())
                    })
                })
                .collect();
            assert_eq!(got, want, "change_notice holds exactly the applied prefixes");

            // The fold of the applied notices, in apply order.
            let mut fold: BTreeMap<String, (Record, NoticeRef)> = BTreeMap::new();
            let mut feed = Vec::new();
            let mut retired = BTreeSet::new();
            for (i, (s, seq)) in log.iter().enumerate() {
                let n = &emitted[*s][idx(*seq)];
                let rec = &n.body.record;
                let prev_code = n.body.previous_code.as_ref().unwrap_or(&rec.resident_code).to_string();
                let prev = fold.get(&prev_code).map(|(r, _)| r.clone());
                if n.body.kind == NoticeKind::CodeChange {
                    assert!(fold.remove(&prev_code).is_some(), "a code change of an unknown code");
                    retired.insert((prev_code, rec.resident_code.to_string()));
                }
                fold.insert(rec.resident_code.to_string(), (rec.clone(), n.key.clone()));
                let changed: Vec<&str> = changed_items(prev.as_ref(), rec).iter().map(|c| c.as_str()).collect();
                feed.push((
                    i as i64 + 1,
                    n.key.source.to_string(),
                    i64::try_from(n.key.seq).unwrap(),
                    rec.resident_code.to_string(),
                    n.body.previous_code.as_ref().map(ToString::to_string),
                    i64::from(n.body.kind.code()),
                    changed.join(","),
                    format_date(n.body.effective_date),
                    n.body.recorded_at,
                ));
            }

            // Projection == fold.
            let rows = sqlx::query(
                "SELECT resident_code, municipality, status, version, name, date_of_birth, sex, address, record,
                        last_source, last_seq FROM resident ORDER BY resident_code",
            )
            .fetch_all(db.pool())
            .await
            .unwrap();
            let mut projection = BTreeMap::new();
            for r in &rows {
                let code: String = r.try_get(0).unwrap();
                let rec: Record = serde_json::from_slice(&r.try_get::<Vec<u8>, _>(8).unwrap()).unwrap();
                assert_eq!(rec.resident_code.as_str(), code);
                assert_eq!(r.try_get::<String, _>(1).unwrap(), rec.municipality.as_str());
                assert_eq!(r.try_get::<i64, _>(2).unwrap(), i64::from(u8::from(rec.status)));
                assert_eq!(r.try_get::<i64, _>(3).unwrap(), i64::try_from(rec.version).unwrap());
                assert_eq!(r.try_get::<String, _>(4).unwrap(), rec.items.name.text());
                assert_eq!(r.try_get::<String, _>(5).unwrap(), format_date(rec.items.date_of_birth));
                assert_eq!(r.try_get::<i64, _>(6).unwrap(), i64::from(u8::from(rec.items.sex)));
                assert_eq!(r.try_get::<String, _>(7).unwrap(), rec.items.address.text());
                let from = NoticeRef {
                    source: lg(&r.try_get::<String, _>(9).unwrap()),
                    seq: u64::try_from(r.try_get::<i64, _>(10).unwrap()).unwrap(),
                };
                projection.insert(code, (rec, from));
            }
            assert_same(&projection, &fold, "the projection is the fold of the applied notices; resident");

            // One feed entry per applied notice, gapless, in apply order.
            let rows = sqlx::query(
                "SELECT feed_seq, source, seq, resident_code, previous_code, kind, changed, effective_date, recorded_at
                 FROM feed ORDER BY feed_seq",
            )
            .fetch_all(db.pool())
            .await
            .unwrap();
            let got: Vec<_> = rows
                .iter()
                .map(|r| {
                    (
                        r.try_get::<i64, _>(0).unwrap(),
                        r.try_get::<String, _>(1).unwrap(),
                        r.try_get::<i64, _>(2).unwrap(),
                        r.try_get::<String, _>(3).unwrap(),
                        r.try_get::<Option<String>, _>(4).unwrap(),
                        r.try_get::<i64, _>(5).unwrap(),
                        r.try_get::<String, _>(6).unwrap(),
                        r.try_get::<String, _>(7).unwrap(),
                        r.try_get::<i64, _>(8).unwrap(),
                    )
                })
                .collect();
            assert_eq!(got, feed, "the feed is one gapless entry per applied notice");
            let counter: Option<i64> = sqlx::query("SELECT value FROM counter WHERE name = 'feed'")
                .fetch_optional(db.pool())
                .await
                .unwrap()
                .map(|r| r.try_get(0).unwrap());
            assert_eq!(counter.unwrap_or(0), log.len() as i64, "feed counter");

            let rows = sqlx::query("SELECT code, replaced_by FROM retired_code").fetch_all(db.pool()).await.unwrap();
            let got: BTreeSet<(String, String)> =
                rows.iter().map(|r| (r.try_get(0).unwrap(), r.try_get(1).unwrap())).collect();
            assert_eq!(got, retired, "retired codes");
            cursors
        });
        let mut seen = self.seen.borrow_mut();
        for (s, c) in cursors.into_iter().enumerate() {
            assert!(c >= seen[s], "cursor of {} moved backwards: {} -> {c}", SOURCES[s], seen[s]);
            seen[s] = c;
        }
    }
}

struct Replication<E>(PhantomData<E>);

impl<E: Engine> StateMachineTest for Replication<E> {
    type SystemUnderTest = Sut;
    type Reference = Network;

    fn init_test(_: &Model) -> Sut {
        // Current-thread: a crash mid-batch is a number of polls of one future, nothing
        // else runs concurrently on the receiver.
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let (munis, receiver, receiver_url, dbs) = rt.block_on(Sut::open::<E>());
        Sut {
            munis,
            emitted: vec![Vec::new(); SOURCES.len()],
            codes: BTreeMap::new(),
            now: T0,
            receiver,
            receiver_url,
            seen: RefCell::new(vec![0; SOURCES.len()]),
            stats: Stats::default(),
            _dbs: dbs,
            rt,
        }
    }

    fn apply(mut sut: Sut, st: &Model, t: Transition) -> Sut {
        match t {
            Transition::Emit { s, op } => sut.emit(st, s, &op),
            Transition::Deliver(_) => {
                let d = st.last.as_ref().unwrap();
                let got = sut.rt.block_on(replica::apply_batch(
                    &sut.receiver,
                    Tier::National,
                    &*verifier(),
                    &sut.batch(&d.msg),
                ));
                assert_eq!(got.unwrap(), d.outcome, "delivery of {:?}", d.msg);
                sut.stats.count(&d.outcome);
            }
            Transition::CrashMidBatch { polls, .. } => sut.crash_mid_batch(st, polls),
            Transition::CrashReceiver => {
                sut.stats.restarts += 1;
                sut.restart();
            }
            // The network is the model's: nothing reaches the receiver.
            Transition::Resend { .. }
            | Transition::Merge(..)
            | Transition::Duplicate(_)
            | Transition::Drop(_)
            | Transition::Reorder(_) => {}
        }
        sut
    }

    fn check_invariants(sut: &Sut, st: &Model) {
        sut.check(&st.applied, &st.log);
    }

    fn teardown(sut: Sut, _: Model) {
        if std::env::var_os("REPLICATION_MODEL_STATS").is_some() {
            let moves = sut.emitted.iter().flatten().filter(|n| n.body.kind == NoticeKind::MoveIn).count();
            eprintln!("{:?}, move-ins written {moves}", sut.stats);
        }
        let Sut { munis, receiver, rt, .. } = sut;
        rt.block_on(async {
            receiver.close().await;
            for m in munis {
                m.db().close().await;
            }
        });
    }
}

/// `assert_eq!` of two maps that names the first key that differs.
fn assert_same<K: Ord + std::fmt::Debug, V: PartialEq + std::fmt::Debug>(
    got: &BTreeMap<K, V>,
    want: &BTreeMap<K, V>,
    what: &str,
) {
    for k in got.keys().chain(want.keys()) {
        assert_eq!(got.get(k), want.get(k), "{what} {k:?} (left: receiver, right: model)");
    }
}

fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

prop_state_machine! {
    #![proptest_config(Config { cases: cases(64), ..Config::default() })]

    /// Duplicate, drop, reorder, stale re-sends, gaps, parked move-ins and receiver crashes
    /// (between and inside batches) on a SQLite receiver.
    #[test]
    fn replication_on_sqlite(sequential 1..60 => Replication<OnSqlite>);
}

/// The same machine on a PostgreSQL receiver, when `JPKI_TEST_PG_URL` is set (fewer cases:
/// every case creates a database).
#[test]
fn replication_on_postgres() {
    if !testing::pg_configured() {
        eprintln!("JPKI_TEST_PG_URL not set: PostgreSQL model skipped");
        return;
    }
    let config = Config { cases: cases(16), source_file: Some(file!()), ..Config::default() };
    let mut runner = TestRunner::new(config.clone());
    let result = runner.run(&Network::sequential_strategy(1..60), |(init, transitions, seen)| {
        Replication::<OnPostgres>::test_sequential(config.clone(), init, transitions, seen);
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}\n{runner}");
    }
}

// ---------------------------------------------------------------------------------------
// Deterministic companions (forgery halts a source for good, so it is kept out of the model)
// ---------------------------------------------------------------------------------------

/// Four notices of one resident at `code`: a birth and three moves within.
async fn chain_of_four(code: &str, pool_start: u64, dbs: &mut Vec<TestDb>) -> Vec<ChangeNotice> {
    let t = testing::sqlite().unwrap();
    let m = signed(Db::open(&t.url).await.unwrap(), code).await;
    dbs.push(t);
    m.add_pool(&pool(pool_start, 4)).await.unwrap();
    let (op, eff) = (clerk(), effective());
    let items = FourItems {
        name: text("name", "山田　花子"),
        address: text("address", "1丁目"),
        date_of_birth: parse_date("dob", "2026-03-31").unwrap(),
        sex: Sex::Female,
    };
    let first = m.register(&op, NoticeKind::Birth, items, eff, T0).await.unwrap();
    let resident = first.body.record.resident_code.clone();
    let mut out = vec![first];
    for k in 2..=4 {
        out.push(m.move_within(&op, &resident, text("address", &format!("{k}丁目")), eff, T0 + k).await.unwrap());
    }
    out
}

async fn count(db: &Db, sql: &'static str) -> i64 {
    sqlx::query(sql).fetch_one(db.pool()).await.unwrap().try_get(0).unwrap()
}

#[tokio::test]
async fn a_forged_last_notice_rejects_its_whole_batch_and_halts_only_its_source() {
    let mut dbs = Vec::new();
    let a = chain_of_four("131016", 5_000_000, &mut dbs).await;
    let b = chain_of_four("271004", 6_000_000, &mut dbs).await;
    for t in testing::all().await.unwrap() {
        let db = Db::open(&t.url).await.unwrap();
        admit(&db, "131016").await;
        admit(&db, "271004").await;
        let ok = replica::apply_batch(&db, Tier::National, &*verifier(), &a[..1]).await.unwrap();
        assert_eq!(ok.applied, 1, "{}", t.label);

        // Content changed after sealing, at the end of an otherwise valid batch.
        let mut forged = a[3].clone();
        forged.body.record.items.address = text("address", "偽の住所");
        let e = replica::apply_batch(&db, Tier::National, &*verifier(), &[a[1].clone(), a[2].clone(), forged])
            .await
            .unwrap_err();
        assert!(matches!(e, identity::Error::Diverged { seq: 4, .. }), "{}: {e}", t.label);
        assert_eq!(e.kind(), identity::ErrorKind::Integrity);
        let (cur, halted) = replica::cursor(&db, "131016").await.unwrap();
        assert_eq!((cur.applied_seq, cur.applied_hash), (1, a[0].hash), "{}: nothing of the batch applied", t.label);
        assert!(halted.is_some(), "{}", t.label);
        assert_eq!(count(&db, "SELECT COUNT(*) FROM change_notice").await, 1, "{}", t.label);
        assert_eq!(count(&db, "SELECT COUNT(*) FROM feed").await, 1, "{}", t.label);
        assert_eq!(count(&db, "SELECT MAX(last_seq) FROM resident").await, 1, "{}", t.label);

        // Halted for good: even the genuine next notice is refused until an operator resumes.
        let e = replica::apply_batch(&db, Tier::National, &*verifier(), &a[1..2]).await.unwrap_err();
        assert!(matches!(e, identity::Error::Halted { .. }), "{}: {e}", t.label);
        // Another source is unaffected.
        assert_eq!(
            replica::apply_batch(&db, Tier::National, &*verifier(), &b[..2]).await.unwrap().applied,
            2,
            "{}",
            t.label
        );

        // A different notice for an already applied seq (split brain) halts that source too.
        let mut other = b[0].body.clone();
        other.operator = "mallory".into();
        let split = ChangeNotice::seal(lg("271004"), 1, GENESIS, other);
        let e = replica::apply_batch(&db, Tier::National, &*verifier(), &[split, b[2].clone()]).await.unwrap_err();
        assert!(matches!(e, identity::Error::Diverged { seq: 1, .. }), "{}: {e}", t.label);
        let (cur, halted) = replica::cursor(&db, "271004").await.unwrap();
        assert_eq!(cur.applied_seq, 2, "{}", t.label);
        assert!(halted.is_some(), "{}", t.label);

        // After the operator resumes, the genuine chain continues where it stopped.
        replica::resume(
            &db,
            &identity::operator::Operator::new("nat-op", identity::operator::Role::NationalOperator).unwrap(),
            "131016",
            0,
        )
        .await
        .unwrap();
        let ok = replica::apply_batch(&db, Tier::National, &*verifier(), &a[1..]).await.unwrap();
        assert_eq!((ok.applied, ok.cursor_seq), (3, 4), "{}", t.label);
        assert_eq!(count(&db, "SELECT COUNT(*) FROM feed").await, 6, "{}", t.label);
        assert_eq!(count(&db, "SELECT MAX(feed_seq) FROM feed").await, 6, "{}: gapless feed", t.label);
        db.close().await;
    }
}

#[tokio::test]
async fn a_gap_applies_nothing_until_it_is_filled() {
    let mut dbs = Vec::new();
    let a = chain_of_four("011002", 7_000_000, &mut dbs).await;
    for t in testing::all().await.unwrap() {
        let db = Db::open(&t.url).await.unwrap();
        admit(&db, "011002").await;
        replica::apply_batch(&db, Tier::National, &*verifier(), &a[..1]).await.unwrap();
        // Seqs 3 and 4 before 2: nothing applies, the receiver asks for 2.
        let got = replica::apply_batch(&db, Tier::National, &*verifier(), &a[2..]).await.unwrap();
        assert_eq!(got, Applied { applied: 0, duplicates: 0, stop: Some(Stop::Gap { expected: 2 }), cursor_seq: 1 });
        assert_eq!(count(&db, "SELECT COUNT(*) FROM change_notice").await, 1, "{}", t.label);
        assert_eq!(count(&db, "SELECT COUNT(*) FROM feed").await, 1, "{}", t.label);
        // A stale page from seq 1 fills the gap: one duplicate, three applied.
        let got = replica::apply_batch(&db, Tier::National, &*verifier(), &a).await.unwrap();
        assert_eq!(got, Applied { applied: 3, duplicates: 1, stop: None, cursor_seq: 4 }, "{}", t.label);
        assert_eq!(count(&db, "SELECT COUNT(*) FROM feed").await, 4, "{}", t.label);
        db.close().await;
    }
}
