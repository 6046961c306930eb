//! The wire of the municipal window's routes (`POST /v1/window/…`): what a window service
//! sends for its clerk and what the nodes answer. A window (`urn:jpki:window:LGCODE:ID`, from
//! its mutual-TLS certificate) calls its own municipality's node (find, register, moves,
//! removal, correction, code change) and the national node (a resident's disclosure report),
//! each request signed by the clerk's own key (three headers, [`crate::authz::ClerkCheck`]).
//! Bodies are JSON; a resident code, name or address is never in a path or query.
//!
//! The routes: [`crate::window_routes`]; the client: [`crate::client::window_call`].

#![forbid(clippy::disallowed_methods)]

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use time::Date;

use crate::ids::{LgCode, ResidentCode};
use crate::notice::NoticeKind;
use crate::person::{FlaggedText, FourItems, Record};
pub use crate::provision::{DisclosureRow, Lookup};

/// `POST /v1/window/find` (municipality node).
pub const FIND: &str = "/v1/window/find";
/// `POST /v1/window/register` (municipality node).
pub const REGISTER: &str = "/v1/window/register";
/// `POST /v1/window/move-within` (municipality node).
pub const MOVE_WITHIN: &str = "/v1/window/move-within";
/// `POST /v1/window/move-out` (municipality node).
pub const MOVE_OUT: &str = "/v1/window/move-out";
/// `POST /v1/window/move-in` (municipality node).
pub const MOVE_IN: &str = "/v1/window/move-in";
/// `POST /v1/window/remove` (municipality node).
pub const REMOVE: &str = "/v1/window/remove";
/// `POST /v1/window/correct` (municipality node).
pub const CORRECT: &str = "/v1/window/correct";
/// `POST /v1/window/change-code` (municipality node).
pub const CHANGE_CODE: &str = "/v1/window/change-code";
/// `POST /v1/window/disclosure` (national node).
pub const DISCLOSURE: &str = "/v1/window/disclosure";

/// A window request: its route and the type of its answer, for [`crate::client::window_call`].
pub trait WindowRequest: Serialize + Sync {
    /// The route's path (the node is the caller's choice: [`DISCLOSURE`] is the national
    /// node's, every other the municipality's).
    const PATH: &'static str;
    /// What a success answers.
    type Answer: DeserializeOwned;
}

/// How a resident enters the register at the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Registration {
    /// 出生.
    Birth,
    /// 職権記載 / first registration (e.g. arrival from abroad).
    FirstRegistration,
}

impl Registration {
    /// The notice kind it records.
    pub fn kind(self) -> NoticeKind {
        match self {
            Self::Birth => NoticeKind::Birth,
            Self::FirstRegistration => NoticeKind::FirstRegistration,
        }
    }
}

/// Why a resident leaves the register.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Removal {
    /// 死亡.
    Death,
    /// 国外転出.
    Emigration,
    /// 職権消除.
    RemovalExOfficio,
}

impl Removal {
    /// The notice kind it records.
    pub fn kind(self) -> NoticeKind {
        match self {
            Self::Death => NoticeKind::Death,
            Self::Emigration => NoticeKind::Emigration,
            Self::RemovalExOfficio => NoticeKind::RemovalExOfficio,
        }
    }
}

/// `POST /v1/window/find`: a resident of this municipality's register, by 住民票コード or by an
/// exact match of all four items (there is no other search).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FindRequest {
    /// Who: `{"resident_code": "…"}` or `{"four_items": {name, address, date_of_birth, sex}}`.
    pub by: Lookup,
}

/// What `POST /v1/window/find` answers: the matching records of this register, any status (a
/// miss is 404 `not_found`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Found {
    /// The records (one by code; one or more by four items), in resident-code order.
    pub records: Vec<Record>,
}

/// `POST /v1/window/register`: birth or first registration; the code is drawn from the pool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    /// How the resident enters the register.
    pub kind: Registration,
    /// The four items.
    pub items: FourItems,
    /// 異動年月日 (`YYYY-MM-DD`).
    #[schema(value_type = String, format = Date)]
    pub effective_date: Date,
}

/// `POST /v1/window/move-within`: 転居, a new address within the municipality.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MoveWithinRequest {
    /// The resident.
    pub resident_code: ResidentCode,
    /// The new address.
    pub address: FlaggedText,
    /// 異動年月日.
    #[schema(value_type = String, format = Date)]
    pub effective_date: Date,
}

/// `POST /v1/window/move-out`: 転出 to another municipality.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MoveOutRequest {
    /// The resident.
    pub resident_code: ResidentCode,
    /// The municipality moved to.
    pub destination: LgCode,
    /// 異動年月日.
    #[schema(value_type = String, format = Date)]
    pub effective_date: Date,
}

/// `POST /v1/window/move-in`: 転入. The node fetches the 転出証明書情報 from the old
/// municipality's node (from its own peer directory, never from the request) and sends it the
/// 転入通知.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MoveInRequest {
    /// The resident (their code stays).
    pub resident_code: ResidentCode,
    /// The municipality moved from.
    pub old_municipality: LgCode,
    /// The new address here.
    pub address: FlaggedText,
    /// 異動年月日.
    #[schema(value_type = String, format = Date)]
    pub effective_date: Date,
}

/// `POST /v1/window/remove`: death, emigration or ex-officio removal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RemoveRequest {
    /// The resident.
    pub resident_code: ResidentCode,
    /// Why.
    pub reason: Removal,
    /// 異動年月日.
    #[schema(value_type = String, format = Date)]
    pub effective_date: Date,
}

/// `POST /v1/window/correct`: 職権修正 of the four items (all four, as they should be).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CorrectRequest {
    /// The resident.
    pub resident_code: ResidentCode,
    /// The corrected four items.
    pub items: FourItems,
    /// 異動年月日.
    #[schema(value_type = String, format = Date)]
    pub effective_date: Date,
}

/// `POST /v1/window/change-code`: 住民票コード変更 on request; the old code is retired forever.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangeCodeRequest {
    /// The resident's current code.
    pub resident_code: ResidentCode,
    /// 異動年月日.
    #[schema(value_type = String, format = Date)]
    pub effective_date: Date,
}

/// `POST /v1/window/disclosure` (national node): the resident's disclosure report, for a
/// resident currently registered in the window's municipality.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DisclosureRequest {
    /// The resident.
    pub resident_code: ResidentCode,
}

/// What every change route answers: the change as committed (one signed notice, one
/// operator-log row naming window and clerk).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Changed {
    /// 異動事由.
    pub kind: NoticeKind,
    /// The notice's sequence number in this municipality's chain.
    pub seq: u64,
    /// The record after the change (a registration's or code change's new code is here).
    pub record: Record,
    /// A code change: the retired code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_code: Option<ResidentCode>,
    /// A move-in: whether the old municipality has the 転入通知 (`false`: it could not be
    /// reached; the move-in is committed, and repeating the same move-in request sends it again
    /// without recording anything twice).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old_municipality_notified: Option<bool>,
    /// A move-in whose 転入通知 failed: why (no personal data).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl WindowRequest for FindRequest {
    const PATH: &'static str = FIND;
    type Answer = Found;
}
impl WindowRequest for RegisterRequest {
    const PATH: &'static str = REGISTER;
    type Answer = Changed;
}
impl WindowRequest for MoveWithinRequest {
    const PATH: &'static str = MOVE_WITHIN;
    type Answer = Changed;
}
impl WindowRequest for MoveOutRequest {
    const PATH: &'static str = MOVE_OUT;
    type Answer = Changed;
}
impl WindowRequest for MoveInRequest {
    const PATH: &'static str = MOVE_IN;
    type Answer = Changed;
}
impl WindowRequest for RemoveRequest {
    const PATH: &'static str = REMOVE;
    type Answer = Changed;
}
impl WindowRequest for CorrectRequest {
    const PATH: &'static str = CORRECT;
    type Answer = Changed;
}
impl WindowRequest for ChangeCodeRequest {
    const PATH: &'static str = CHANGE_CODE;
    type Answer = Changed;
}
impl WindowRequest for DisclosureRequest {
    const PATH: &'static str = DISCLOSURE;
    type Answer = Vec<DisclosureRow>;
}
