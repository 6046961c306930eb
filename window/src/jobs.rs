//! Card operations as jobs: the reader is worked on a blocking thread while the clerk's page
//! polls the job's steps. One job runs at a time (one reader on the desk); a job belongs to the
//! session that started it and only that session can see it. Jobs are kept in memory, the last
//! [`KEEP`] finished ones; their ids are random and carry nothing about the resident.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};

use card::writer::Step;

/// How many finished jobs are kept for their pages.
pub const KEEP: usize = 32;

/// What a job does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A first issuance.
    Issue,
    /// Finishing an interrupted issuance.
    Resume,
    /// New keys and certificates on an issued card.
    Renew,
    /// A PIN reset.
    PinReset,
    /// An interrupted personalisation wiped back to blank.
    Wipe,
}

impl Kind {
    /// The page title.
    pub fn title(self) -> &'static str {
        match self {
            Kind::Issue => "カードの発行",
            Kind::Resume => "カードの発行（再開）",
            Kind::Renew => "電子証明書の更新",
            Kind::PinReset => "暗証番号の再設定",
            Kind::Wipe => "カードの初期化",
        }
    }

    /// Whether the job reports the issuance [`Step`]s.
    pub fn has_steps(self) -> bool {
        matches!(self, Kind::Issue | Kind::Resume | Kind::Renew)
    }
}

/// What a finished job did, for the clerk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Done {
    /// One line per fact (card serial, certificates written, …).
    pub lines: Vec<String>,
}

/// Why a job failed, for the clerk (see [`crate::messages`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failed {
    /// Stable code (the card error's kind or the CA's refusal code).
    pub code: String,
    /// What happened.
    pub what: String,
    /// What to do next.
    pub next: String,
}

/// A job's state as its page shows it.
#[derive(Debug, Clone, Default)]
pub struct State {
    /// The steps completed so far.
    pub steps: Vec<Step>,
    /// `None` while running.
    pub outcome: Option<Result<Done, Failed>>,
}

/// One card operation.
#[derive(Debug)]
pub struct Job {
    /// Random id (URL-safe).
    pub id: String,
    /// The session that started it.
    pub session: String,
    /// What it does.
    pub kind: Kind,
    state: Mutex<State>,
}

impl Job {
    /// Its state now.
    pub fn state(&self) -> State {
        self.state.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Records a completed step.
    pub fn step(&self, s: Step) {
        let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if !st.steps.contains(&s) {
            st.steps.push(s);
        }
    }

    /// Records the outcome.
    pub fn finish(&self, outcome: Result<Done, Failed>) {
        self.state.lock().unwrap_or_else(PoisonError::into_inner).outcome = Some(outcome);
    }
}

/// The window's jobs.
#[derive(Debug, Default)]
pub struct Jobs {
    list: Mutex<VecDeque<Arc<Job>>>,
}

impl Jobs {
    /// A new job for `session`, or `None` while another job is running (one reader).
    pub fn begin(&self, session: &str, kind: Kind) -> Option<Arc<Job>> {
        let mut list = self.list.lock().unwrap_or_else(PoisonError::into_inner);
        if list.iter().any(|j| j.state().outcome.is_none()) {
            return None;
        }
        while list.len() >= KEEP {
            list.pop_front();
        }
        let id = hex::encode(rand::random::<[u8; 16]>());
        let job = Arc::new(Job { id, session: session.to_owned(), kind, state: Mutex::new(State::default()) });
        list.push_back(job.clone());
        Some(job)
    }

    /// Job `id`, if it belongs to `session`.
    pub fn get(&self, id: &str, session: &str) -> Option<Arc<Job>> {
        let list = self.list.lock().unwrap_or_else(PoisonError::into_inner);
        list.iter().find(|j| j.id == id && j.session == session).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_job_at_a_time_and_only_for_its_session() {
        let jobs = Jobs::default();
        let a = jobs.begin("s1", Kind::Issue).unwrap();
        assert!(jobs.begin("s1", Kind::Wipe).is_none(), "the reader is busy");
        assert!(jobs.get(&a.id, "s2").is_none(), "another session cannot see it");
        a.step(Step::CardDetected);
        a.step(Step::CardDetected);
        assert_eq!(jobs.get(&a.id, "s1").unwrap().state().steps, vec![Step::CardDetected]);
        a.finish(Ok(Done { lines: vec![] }));
        let b = jobs.begin("s1", Kind::Wipe).unwrap();
        assert_ne!(a.id, b.id);
        b.finish(Err(Failed { code: "x".into(), what: String::new(), next: String::new() }));
        for _ in 0..KEEP + 3 {
            jobs.begin("s1", Kind::Issue).unwrap().finish(Ok(Done { lines: vec![] }));
        }
        assert!(jobs.get(&a.id, "s1").is_none(), "old jobs are dropped");
    }
}
