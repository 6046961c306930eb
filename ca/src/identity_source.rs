//! Where the CA gets identity items and change notices: the national node of the identity
//! network, over HTTP or in process. Identity items are always obtained as a provision under
//! the law table (purpose B1-020, 公的個人認証法), so each one is authorised and logged by the
//! identity network — never taken from the request.

use std::collections::BTreeSet;

use identity::client::Peer;
use identity::ids::ResidentCode;
use identity::law::Field;
use identity::national::{FeedEntry, National};
use identity::notice::ChangeNotice;
use identity::notice_sig::NoticeKeyCert;
use identity::person::ResidentStatus;
use identity::provision::{Agency, Lookup, Provided, Provider, Query};
use time::Date;

use crate::error::{Error, Result};

/// The law-table purpose under which the CA receives identity information.
pub const PURPOSE: &str = "B1-020";

/// The identity of a resident as the CA needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resident {
    /// 住民票コード.
    pub resident_code: String,
    /// 氏名 and its substitute flags.
    pub name: (String, String),
    /// 住所 and its substitute flags.
    pub address: (String, String),
    /// 生年月日.
    pub date_of_birth: Date,
    /// 性別 (1, 2, 9).
    pub sex: u8,
    /// Register status.
    pub status: ResidentStatus,
    /// 全国地方公共団体コード of the municipality holding the record.
    pub municipality: String,
}

/// The national node, reached over mutual TLS with the CA's network credential (its party
/// `ca:<id>` is the agency `<id>` registered for B1-020 and the only kind of party the feed is
/// served to), or in process.
#[derive(Debug, Clone)]
pub enum IdentitySource {
    /// Over HTTPS: a client of the national node presenting the CA's credential.
    Http(Peer),
    /// In process (the main job and tests): the national node and the CA's registered agency.
    Local {
        /// The national node.
        national: National,
        /// The CA as an agency.
        agency: Agency,
    },
}

fn fields() -> BTreeSet<Field> {
    [Field::Name, Field::Address, Field::DateOfBirth, Field::Sex, Field::ResidentCode, Field::ChangeInfo].into()
}

impl IdentitySource {
    /// The provider in process.
    pub fn provider(&self) -> Option<&Provider> {
        match self {
            Self::Local { national, .. } => Some(national.provider()),
            Self::Http(_) => None,
        }
    }

    /// Looks a resident up (a logged provision). `None` if no record matches.
    pub async fn resident(&self, code: &str, now: i64) -> Result<Option<Resident>> {
        let code: ResidentCode = code.parse().map_err(|e| Error::invalid("resident code", e))?;
        let q = Query { purpose: PURPOSE.into(), by: Lookup::ResidentCode(code), fields: fields() };
        let p: Provided = match self {
            Self::Http(national) => national.post_json("/v1/provision/query", &q).await?,
            Self::Local { national, agency } => national.provider().query(agency, &q, now).await?,
        };
        if !p.found {
            return Ok(None);
        }
        parse(&p).map(Some)
    }

    /// The feed's newest position; read before a lookup, it bounds what the lookup reflects.
    pub async fn feed_head(&self) -> Result<u64> {
        Ok(match self {
            Self::Http(national) => national.feed_head().await?,
            Self::Local { national, .. } => national.feed_head().await?,
        })
    }

    /// The feed's newest position once it is past `after`, or after `wait_ms` (at most
    /// [`identity::client::MAX_WAIT_MS`]) without news: the follower's long poll.
    pub async fn feed_head_wait(&self, after: u64, wait_ms: u64) -> Result<u64> {
        Ok(match self {
            Self::Http(national) => national.feed_head_wait(after, wait_ms).await?,
            Self::Local { national, .. } => {
                let deadline = tokio::time::Instant::now()
                    + std::time::Duration::from_millis(wait_ms.min(identity::client::MAX_WAIT_MS));
                let mut changes = national.db().watch();
                let mut head = national.feed_head().await?;
                while head <= after
                    && tokio::time::timeout_at(deadline, changes.changed()).await.is_ok_and(|r| r.is_ok())
                {
                    head = national.feed_head().await?;
                }
                head
            }
        })
    }

    /// The signed notices of `source` after seq `after` (at most `limit`), as the national node
    /// stores them: what the CA checks each feed entry against.
    pub async fn notices(&self, source: &str, after: u64, limit: u32) -> Result<Vec<ChangeNotice>> {
        Ok(match self {
            Self::Http(national) => national.notices(source, after, limit).await?,
            Self::Local { national, .. } => identity::store::notices_after(national.db(), source, after, limit).await?,
        })
    }

    /// The notice-key certificates of `source` the national node holds.
    pub async fn notice_keys(&self, source: &str) -> Result<Vec<NoticeKeyCert>> {
        Ok(match self {
            Self::Http(national) => national.notice_keys(source).await?,
            Self::Local { national, .. } => identity::store::notice_keys(national.db(), source).await?,
        })
    }

    /// The national change feed after `after`.
    pub async fn feed(&self, after: u64, limit: u32) -> Result<Vec<FeedEntry>> {
        Ok(match self {
            Self::Http(national) => national.feed(after, limit).await?,
            Self::Local { national, .. } => national.feed_after(after, limit).await?,
        })
    }
}

fn text(p: &Provided, key: &str) -> Result<(String, String)> {
    let v = p.items.get(key).ok_or_else(|| Error::Identity(format!("no {key} in the provision")))?;
    let t = v.get("text").and_then(|t| t.as_str());
    let f = v.get("flags").and_then(|t| t.as_str());
    match (t, f) {
        (Some(t), Some(f)) => Ok((t.to_owned(), f.to_owned())),
        _ => Err(Error::Identity(format!("malformed {key} in the provision"))),
    }
}

fn parse(p: &Provided) -> Result<Resident> {
    let s = |k: &str| p.items.get(k).and_then(|v| v.as_str()).map(str::to_owned);
    let code = s("resident_code").ok_or_else(|| Error::Identity("no resident code".into()))?;
    let dob = s("date_of_birth").ok_or_else(|| Error::Identity("no date of birth".into()))?;
    let date_of_birth = identity::notice::parse_date("date_of_birth", &dob)?;
    let sex = p.items.get("sex").and_then(|v| v.as_u64()).and_then(|v| u8::try_from(v).ok());
    let sex = sex.filter(|s| matches!(s, 1 | 2 | 9)).ok_or_else(|| Error::Identity("bad sex code".into()))?;
    let change = p.items.get("change_info").ok_or_else(|| Error::Identity("no change info".into()))?;
    let municipality = change
        .get("municipality")
        .and_then(|m| m.as_str())
        .ok_or_else(|| Error::Identity("no municipality".into()))?
        .to_owned();
    let status = p.status.ok_or_else(|| Error::Identity("no status".into()))?;
    Ok(Resident {
        resident_code: code,
        name: text(p, "name")?,
        address: text(p, "address")?,
        date_of_birth,
        sex,
        status,
        municipality,
    })
}
