//! The authorization table of the identity network's HTTP routes: which party may call which
//! route on which node. Pure: the caller's [`Party`] comes from its verified certificate (the
//! `net` crate's servers put it into the request), never from a header, path or body. A
//! refusal names a stable reason code (on the wire, forever) and is logged by the shell;
//! nothing is applied and nothing durable is written for it.

#![forbid(clippy::disallowed_methods)]

use crate::ids::{LgCode, PrefectureCode};
use crate::party::{Party, PartyKind};

/// The node answering.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    /// A municipality's node.
    Municipality(LgCode),
    /// A prefecture server.
    Prefecture(PrefectureCode),
    /// The national server.
    National,
}

impl Node {
    /// Name of the node kind in the table.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Municipality(_) => "municipality",
            Self::Prefecture(_) => "prefecture",
            Self::National => "national",
        }
    }
}

/// A route (or group of routes) of the identity network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `GET /v1/heads`: chain heads (sequence numbers and hashes, no personal data).
    Heads,
    /// `GET /v1/sources/{source}/notices` and `/keys`: the notices themselves (the register).
    Notices,
    /// `GET /v1/move-out/{code}`: the 転出証明書情報 of a moved-out resident.
    MoveOut,
    /// `POST /v1/move-in-notices`: a 転入通知 from the new municipality.
    MoveInNotice,
    /// `GET /v1/feed`, `/v1/feed/head`: the change-information feed.
    Feed,
    /// `POST /v1/code-pools`: resident codes for a municipality.
    CodePool,
    /// `POST /v1/provision/query|batch`: provision under the law table.
    Provision,
    /// `GET /v1/disclosure/{code}`, `GET /v1/statistics`: operator reports.
    Reports,
    /// `POST /v1/window/find`: a window (with its clerk) looks up a resident of its register.
    WindowFind,
    /// `POST /v1/window/register|move-within|move-out|move-in|remove|correct|change-code`: a
    /// window (with its clerk) changes its municipality's register.
    WindowChange,
    /// `POST /v1/window/disclosure`: a window (with its clerk) prints the disclosure report of a
    /// resident of its municipality.
    WindowDisclosure,
    /// `GET|POST /console/…`: the operator console's HTML pages (issue 12; not in the OpenAPI
    /// description).
    Console,
    /// `POST /v1/kiosk/challenge`, `/v1/kiosk/issue`: a convenience-store kiosk asks for a
    /// challenge and, with the resident's card's signature over it, for a residence certificate
    /// (コンビニ交付, docs/kiosk.md).
    Kiosk,
    /// `POST /v1/window/wide-area-copy`: a window (with its clerk) asks its own municipality's
    /// node for a copy of the residence record of a resident registered in another
    /// municipality (広域交付, docs/widearea.md).
    WindowWideArea,
    /// `POST /v1/wide-area/request`: a municipality's node relays its window's 広域交付 request
    /// to the national node, which finds the resident's municipality and relays it on.
    WideAreaRelay,
    /// `POST /v1/wide-area/issue`: the national node asks the resident's municipality to issue
    /// the copy for the requesting municipality's window.
    WideAreaIssue,
}

impl Route {
    /// Every route, in table order.
    pub const ALL: [Route; 16] = [
        Self::Heads,
        Self::Notices,
        Self::MoveOut,
        Self::MoveInNotice,
        Self::Feed,
        Self::CodePool,
        Self::Provision,
        Self::Reports,
        Self::WindowFind,
        Self::WindowChange,
        Self::WindowDisclosure,
        Self::Console,
        Self::Kiosk,
        Self::WindowWideArea,
        Self::WideAreaRelay,
        Self::WideAreaIssue,
    ];

    /// The path(s) in the table.
    pub fn path(self) -> &'static str {
        match self {
            Self::Heads => "GET /v1/heads",
            Self::Notices => "GET /v1/sources/{source}/notices",
            Self::MoveOut => "GET /v1/move-out/{code}",
            Self::MoveInNotice => "POST /v1/move-in-notices",
            Self::Feed => "GET /v1/feed, /v1/feed/head",
            Self::CodePool => "POST /v1/code-pools",
            Self::Provision => "POST /v1/provision/query, /batch",
            Self::Reports => "GET /v1/disclosure/{code}, /v1/statistics",
            Self::WindowFind => "POST /v1/window/find",
            Self::WindowChange => {
                "POST /v1/window/register, /move-within, /move-out, /move-in, /remove, /correct, /change-code"
            }
            Self::WindowDisclosure => "POST /v1/window/disclosure",
            Self::Console => "GET, POST /console/…",
            Self::Kiosk => "POST /v1/kiosk/challenge, /v1/kiosk/issue",
            Self::WindowWideArea => "POST /v1/window/wide-area-copy",
            Self::WideAreaRelay => "POST /v1/wide-area/request",
            Self::WideAreaIssue => "POST /v1/wide-area/issue",
        }
    }
}

/// Why a party was refused: a stable code on the wire and in logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denial {
    /// The route does not exist on this kind of node.
    NotServedHere,
    /// This kind of party never calls this route.
    WrongParty,
    /// A prefecture that is not this municipality's own.
    NotOwnPrefecture,
    /// The caller is not the municipality the request is about.
    NotOwnMunicipality,
    /// The 転出証明書 goes only to the municipality the resident moved to.
    NotDestination,
    /// The agency (or CA) named by the certificate is not registered at this provision point
    /// (decided by the shell, which reads the agency registry; not a cell of the table).
    AgencyNotRegistered,
}

impl Denial {
    /// The wire code.
    pub fn code(self) -> &'static str {
        match self {
            Self::NotServedHere => "route_not_served_here",
            Self::WrongParty => "party_not_allowed",
            Self::NotOwnPrefecture => "not_own_prefecture",
            Self::NotOwnMunicipality => "not_own_municipality",
            Self::NotDestination => "not_move_destination",
            Self::AgencyNotRegistered => "agency_not_registered",
        }
    }
}

/// The static cell of the table: may `caller` use `route` on `node`? Route-specific checks on
/// the request's content (the move-out's destination, the pool's municipality) are
/// [`check_destination`] and [`check_own_municipality`].
pub fn authorize(node: &Node, route: Route, caller: &Party) -> Result<(), Denial> {
    use PartyKind as K;
    let kind = caller.kind();
    let allowed: &[PartyKind] = match (node, route) {
        (Node::Municipality(_), Route::Heads) => &[K::Prefecture, K::Operator],
        (Node::Municipality(_), Route::Notices) => &[K::Prefecture],
        (Node::Municipality(_), Route::MoveOut | Route::MoveInNotice) => &[K::Municipality],
        (Node::Prefecture(_), Route::Heads) => &[K::National, K::Operator],
        (Node::Prefecture(_), Route::Notices) => &[K::National],
        (Node::National, Route::Heads) => &[K::Ca, K::Operator],
        (Node::National, Route::Notices) => &[K::Ca],
        (Node::National, Route::Feed) => &[K::Ca],
        (Node::National, Route::CodePool) => &[K::Municipality],
        (Node::Prefecture(_) | Node::National, Route::Provision) => &[K::Agency, K::Ca],
        (Node::Prefecture(_) | Node::National, Route::Reports | Route::Console) => &[K::Operator],
        (Node::Municipality(_), Route::WindowFind | Route::WindowChange) => &[K::Window],
        (Node::National, Route::WindowDisclosure) => &[K::Window],
        (Node::Municipality(_), Route::Kiosk) => &[K::Kiosk],
        (Node::Municipality(_), Route::WindowWideArea) => &[K::Window],
        (Node::National, Route::WideAreaRelay) => &[K::Municipality],
        (Node::Municipality(_), Route::WideAreaIssue) => &[K::National],
        _ => return Err(Denial::NotServedHere),
    };
    if !allowed.contains(&kind) {
        return Err(Denial::WrongParty);
    }
    match (node, caller) {
        // A municipality serves its notices (and heads) only to its own prefecture.
        (Node::Municipality(m), Party::Prefecture(p)) if m.prefecture() != *p => Err(Denial::NotOwnPrefecture),
        // 転出証明書 and 転入通知 come from other municipalities, never from itself.
        (Node::Municipality(m), Party::Municipality(c)) if m == c => Err(Denial::NotOwnMunicipality),
        // A window acts only on its own municipality's register.
        (Node::Municipality(m), Party::Window(_)) if caller.station().map(|(w, _)| w) != Some(m.clone()) => {
            Err(Denial::NotOwnMunicipality)
        }
        _ => Ok(()),
    }
}

/// The 転出証明書 of a resident goes only to the municipality the resident moved to.
pub fn check_destination(caller: &Party, destination: &LgCode) -> Result<(), Denial> {
    match caller {
        Party::Municipality(c) if c == destination => Ok(()),
        _ => Err(Denial::NotDestination),
    }
}

/// A request about a municipality (a pool, a 転入通知's new municipality) must come from it.
pub fn check_own_municipality(caller: &Party, municipality: &LgCode) -> Result<(), Denial> {
    match caller {
        Party::Municipality(c) if c == municipality => Ok(()),
        _ => Err(Denial::NotOwnMunicipality),
    }
}

/// Header with the clerk's certificate (DER, hex) on a window's request (`net::clerk`).
pub const CLERK_HEADER_CERT: &str = "x-jpki-clerk-certificate";
/// Header with the clerk's signing time (unix seconds).
pub const CLERK_HEADER_TIME: &str = "x-jpki-clerk-time";
/// Header with the clerk's signature (DER `Ecdsa-Sig-Value`, hex) over the window's party, the
/// method, the path, the time and SHA-384 of the body.
pub const CLERK_HEADER_SIGNATURE: &str = "x-jpki-clerk-signature";

/// The three clerk header values of one request, as received (`None` if absent).
#[derive(Debug, Clone, Copy, Default)]
pub struct ClerkHeaderValues<'a> {
    /// [`CLERK_HEADER_CERT`].
    pub cert: Option<&'a str>,
    /// [`CLERK_HEADER_TIME`].
    pub time: Option<&'a str>,
    /// [`CLERK_HEADER_SIGNATURE`].
    pub signature: Option<&'a str>,
}

/// Why a clerk's signature was not accepted: the verifier's stable code (`clerk_missing`,
/// `clerk_not_trusted`, `clerk_stale`, `clerk_other_municipality`, `clerk_bad_signature`; on
/// the wire as the 401's `reason`, forever) and a detail for the clerk (no personal data).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClerkRefused {
    /// The stable code.
    pub code: &'static str,
    /// What is wrong, for a person.
    pub detail: String,
}

/// Authenticates the clerk on whose behalf a window makes a request: the clerk's certificate
/// chains to the network CA, is valid, unrevoked and for clerk signing, names a clerk of the
/// window's own municipality, the time is fresh, and the signature over the window's party,
/// `method`, `path`, time and `body` verifies. identity holds no PKI: the `net` crate implements
/// this over its `ClerkVerifier`, and the node's shell injects it into the routers.
pub trait ClerkCheck: Send + Sync + std::fmt::Debug {
    /// The clerk, or why not.
    fn check(
        &self,
        window: &Party,
        method: &str,
        path: &str,
        body: &[u8],
        headers: ClerkHeaderValues<'_>,
        now: i64,
    ) -> Result<Party, ClerkRefused>;
}

/// A node that admits no clerk (no clerk verifier configured, e.g. an in-process test node
/// without a network CA): every window request is refused `clerk_not_trusted`, nothing is
/// written. `jpki serve` always installs the `net` crate's verifier.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoClerks;

impl ClerkCheck for NoClerks {
    fn check(
        &self,
        _: &Party,
        _: &str,
        _: &str,
        _: &[u8],
        _: ClerkHeaderValues<'_>,
        _: i64,
    ) -> Result<Party, ClerkRefused> {
        Err(ClerkRefused { code: "clerk_not_trusted", detail: "this node admits no clerks (no clerk verifier)".into() })
    }
}

/// After a [`ClerkCheck`] accepted `clerk` for `window`: the clerk must be a clerk of the
/// window's own municipality (the verifier checks it too; this holds whatever verifier is
/// installed).
pub fn check_clerk_of_window(window: &Party, clerk: &Party) -> Result<(), ClerkRefused> {
    match (window.station(), clerk.station(), clerk.kind()) {
        (Some((w, _)), Some((c, _)), PartyKind::Clerk) if w == c => Ok(()),
        _ => {
            Err(ClerkRefused { code: "clerk_other_municipality", detail: format!("{clerk} does not work at {window}") })
        }
    }
}

/// The table as Markdown (party kind × route, one table per node kind), as in
/// `docs/authorization.md`; a test keeps the two equal.
pub fn render_table() -> String {
    let nodes = [
        Node::Municipality("131016".parse().unwrap_or_else(|_| unreachable!("a valid code"))),
        Node::Prefecture("13".parse().unwrap_or_else(|_| unreachable!("a valid code"))),
        Node::National,
    ];
    let example = |k: PartyKind, node: &Node| -> Party {
        let code = match (k, node) {
            (PartyKind::Municipality, _) => Some("131041"),
            (PartyKind::Prefecture, _) => Some("13"),
            (PartyKind::National, _) => None,
            // A window of the municipality node's own municipality (the cells' condition).
            (PartyKind::Window | PartyKind::Clerk, _) => Some("131016:X1"),
            _ => Some("x1"),
        };
        Party::new(k, code).unwrap_or(Party::National)
    };
    let mut out = String::new();
    for node in &nodes {
        out.push_str(&format!("\n### {} node\n\n| route |", node.kind()));
        for k in PartyKind::ALL {
            out.push_str(&format!(" {} |", k.as_str()));
        }
        out.push_str("\n|---|");
        for _ in PartyKind::ALL {
            out.push_str("---|");
        }
        out.push('\n');
        for r in Route::ALL {
            if authorize(node, r, &Party::Operator("x".into())) == Err(Denial::NotServedHere) {
                continue;
            }
            out.push_str(&format!("| `{}` |", r.path()));
            for k in PartyKind::ALL {
                let cell = match authorize(node, r, &example(k, node)) {
                    Ok(()) => match (node, k, r) {
                        (Node::Municipality(_), PartyKind::Prefecture, _) => "own prefecture",
                        (Node::Municipality(_), PartyKind::Municipality, Route::MoveOut) => "destination only",
                        (Node::Municipality(_), PartyKind::Municipality, Route::MoveInNotice) => "itself as new",
                        (Node::National, PartyKind::Municipality, Route::CodePool) => "itself only",
                        (_, PartyKind::Agency | PartyKind::Ca, Route::Provision) => "registered purposes",
                        (Node::Municipality(_), PartyKind::Window, _) => "own municipality, with a clerk of it",
                        (Node::National, PartyKind::Window, _) => "own municipality's residents, with a clerk of it",
                        (Node::Municipality(_), PartyKind::Kiosk, Route::Kiosk) => {
                            "its own challenge, with the card of a resident here"
                        }
                        (Node::National, PartyKind::Municipality, Route::WideAreaRelay) => {
                            "for its own window, a resident registered elsewhere"
                        }
                        (Node::Municipality(_), PartyKind::National, Route::WideAreaIssue) => {
                            "relaying another municipality's window, for a resident here"
                        }
                        _ => "yes",
                    },
                    Err(_) => "—",
                };
                out.push_str(&format!(" {cell} |"));
            }
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Party {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }
    fn m(s: &str) -> Node {
        Node::Municipality(s.parse().unwrap_or_else(|e| panic!("{s}: {e}")))
    }

    #[test]
    fn municipalities_serve_only_their_own_prefecture_and_other_municipalities() {
        let chiyoda = m("131016");
        assert_eq!(authorize(&chiyoda, Route::Notices, &p("prefecture:13")), Ok(()));
        assert_eq!(authorize(&chiyoda, Route::Notices, &p("prefecture:27")), Err(Denial::NotOwnPrefecture));
        assert_eq!(authorize(&chiyoda, Route::Heads, &p("prefecture:27")), Err(Denial::NotOwnPrefecture));
        for other in [
            "national",
            "municipality:271004",
            "ca:jpki-ca",
            "operator:op1",
            "agency:jps",
            "window:131016:W1",
            "clerk:131016:C1",
        ] {
            assert_eq!(authorize(&chiyoda, Route::Notices, &p(other)), Err(Denial::WrongParty), "{other}");
        }
        assert_eq!(authorize(&chiyoda, Route::MoveOut, &p("municipality:271004")), Ok(()));
        assert_eq!(authorize(&chiyoda, Route::MoveOut, &p("municipality:131016")), Err(Denial::NotOwnMunicipality));
        assert_eq!(authorize(&chiyoda, Route::MoveInNotice, &p("prefecture:13")), Err(Denial::WrongParty));
        assert_eq!(authorize(&chiyoda, Route::Feed, &p("ca:jpki-ca")), Err(Denial::NotServedHere));
        assert_eq!(
            check_destination(&p("municipality:271004"), &"271004".parse().unwrap_or_else(|_| panic!())),
            Ok(())
        );
        assert_eq!(
            check_destination(&p("municipality:131041"), &"271004".parse().unwrap_or_else(|_| panic!())),
            Err(Denial::NotDestination)
        );
    }

    #[test]
    fn the_national_node_serves_the_feed_to_cas_reports_to_operators_pools_to_municipalities() {
        let n = Node::National;
        assert_eq!(authorize(&n, Route::Feed, &p("ca:jpki-ca")), Ok(()));
        for other in ["municipality:131016", "prefecture:13", "operator:op1", "agency:jps", "validator:v1"] {
            assert_eq!(authorize(&n, Route::Feed, &p(other)), Err(Denial::WrongParty), "{other}");
        }
        assert_eq!(authorize(&n, Route::Reports, &p("operator:op1")), Ok(()));
        for other in ["municipality:131016", "prefecture:13", "ca:jpki-ca", "agency:jps"] {
            assert_eq!(authorize(&n, Route::Reports, &p(other)), Err(Denial::WrongParty), "{other}");
        }
        assert_eq!(authorize(&n, Route::CodePool, &p("municipality:131016")), Ok(()));
        assert_eq!(authorize(&n, Route::CodePool, &p("operator:op1")), Err(Denial::WrongParty));
        let own: LgCode = "131016".parse().unwrap_or_else(|_| panic!());
        assert_eq!(check_own_municipality(&p("municipality:131016"), &own), Ok(()));
        assert_eq!(check_own_municipality(&p("municipality:271004"), &own), Err(Denial::NotOwnMunicipality));
        assert_eq!(authorize(&n, Route::Notices, &p("prefecture:13")), Err(Denial::WrongParty));
        assert_eq!(authorize(&n, Route::Provision, &p("agency:jps")), Ok(()));
        assert_eq!(authorize(&n, Route::Provision, &p("municipality:131016")), Err(Denial::WrongParty));
        assert_eq!(authorize(&n, Route::MoveOut, &p("municipality:131016")), Err(Denial::NotServedHere));
    }

    #[test]
    fn prefectures_serve_copies_only_to_the_national_node() {
        let n = Node::Prefecture("13".parse().unwrap_or_else(|_| panic!()));
        assert_eq!(authorize(&n, Route::Notices, &p("national")), Ok(()));
        for other in ["municipality:131016", "prefecture:13", "prefecture:27", "ca:jpki-ca", "operator:op1"] {
            assert_eq!(authorize(&n, Route::Notices, &p(other)), Err(Denial::WrongParty), "{other}");
        }
        assert_eq!(authorize(&n, Route::Feed, &p("ca:jpki-ca")), Err(Denial::NotServedHere));
        assert_eq!(authorize(&n, Route::Reports, &p("operator:op1")), Ok(()));
    }

    #[test]
    fn windows_act_only_at_their_own_municipality_and_ask_the_national_node_for_disclosure() {
        let chiyoda = m("131016");
        for r in [Route::WindowFind, Route::WindowChange] {
            assert_eq!(authorize(&chiyoda, r, &p("window:131016:W01")), Ok(()));
            assert_eq!(authorize(&chiyoda, r, &p("window:271004:W01")), Err(Denial::NotOwnMunicipality));
            for other in [
                "clerk:131016:C1",
                "municipality:131016",
                "municipality:271004",
                "operator:op1",
                "prefecture:13",
                "national",
            ] {
                assert_eq!(authorize(&chiyoda, r, &p(other)), Err(Denial::WrongParty), "{other}");
            }
            assert_eq!(authorize(&Node::National, r, &p("window:131016:W01")), Err(Denial::NotServedHere));
        }
        let n = Node::National;
        assert_eq!(authorize(&n, Route::WindowDisclosure, &p("window:271004:W01")), Ok(()));
        assert_eq!(authorize(&n, Route::WindowDisclosure, &p("operator:op1")), Err(Denial::WrongParty));
        assert_eq!(authorize(&n, Route::WindowDisclosure, &p("clerk:131016:C1")), Err(Denial::WrongParty));
        assert_eq!(authorize(&chiyoda, Route::WindowDisclosure, &p("window:131016:W01")), Err(Denial::NotServedHere));
        let pref = Node::Prefecture("13".parse().unwrap_or_else(|_| panic!()));
        assert_eq!(authorize(&pref, Route::WindowFind, &p("window:131016:W01")), Err(Denial::NotServedHere));
    }

    #[test]
    fn kiosks_reach_only_the_kiosk_routes_of_a_municipality_node() {
        let chiyoda = m("131016");
        assert_eq!(authorize(&chiyoda, Route::Kiosk, &p("kiosk:cvs-0001")), Ok(()));
        for other in
            ["window:131016:W01", "clerk:131016:C1", "municipality:131016", "operator:op1", "agency:jps", "national"]
        {
            assert_eq!(authorize(&chiyoda, Route::Kiosk, &p(other)), Err(Denial::WrongParty), "{other}");
        }
        for r in Route::ALL.into_iter().filter(|r| *r != Route::Kiosk) {
            assert!(authorize(&chiyoda, r, &p("kiosk:cvs-0001")).is_err(), "{r:?}");
            assert!(authorize(&Node::National, r, &p("kiosk:cvs-0001")).is_err(), "{r:?}");
        }
        assert_eq!(authorize(&Node::National, Route::Kiosk, &p("kiosk:cvs-0001")), Err(Denial::NotServedHere));
        let pref = Node::Prefecture("13".parse().unwrap_or_else(|_| panic!()));
        assert_eq!(authorize(&pref, Route::Kiosk, &p("kiosk:cvs-0001")), Err(Denial::NotServedHere));
    }

    #[test]
    fn wide_area_copies_go_window_to_own_node_to_national_to_the_residents_node_only() {
        let chiyoda = m("131016");
        let n = Node::National;
        // The window asks its own node only.
        assert_eq!(authorize(&chiyoda, Route::WindowWideArea, &p("window:131016:W01")), Ok(()));
        assert_eq!(
            authorize(&chiyoda, Route::WindowWideArea, &p("window:271004:W01")),
            Err(Denial::NotOwnMunicipality)
        );
        assert_eq!(authorize(&n, Route::WindowWideArea, &p("window:131016:W01")), Err(Denial::NotServedHere));
        // Only a municipality's node reaches the relay; only the national node the issuer.
        assert_eq!(authorize(&n, Route::WideAreaRelay, &p("municipality:131016")), Ok(()));
        assert_eq!(authorize(&chiyoda, Route::WideAreaIssue, &p("national")), Ok(()));
        for other in ["window:131016:W01", "clerk:131016:C1", "prefecture:13", "operator:op1", "agency:jps", "national"]
        {
            assert_eq!(authorize(&n, Route::WideAreaRelay, &p(other)), Err(Denial::WrongParty), "{other}");
        }
        for other in [
            "municipality:271004",
            "municipality:131016",
            "window:131016:W01",
            "prefecture:13",
            "operator:op1",
            "kiosk:cvs-0001",
        ] {
            assert_eq!(authorize(&chiyoda, Route::WideAreaIssue, &p(other)), Err(Denial::WrongParty), "{other}");
        }
        assert_eq!(authorize(&chiyoda, Route::WideAreaRelay, &p("municipality:271004")), Err(Denial::NotServedHere));
        assert_eq!(authorize(&n, Route::WideAreaIssue, &p("national")), Err(Denial::NotServedHere));
        let pref = Node::Prefecture("13".parse().unwrap_or_else(|_| panic!()));
        for r in [Route::WindowWideArea, Route::WideAreaRelay, Route::WideAreaIssue] {
            assert_eq!(authorize(&pref, r, &p("national")), Err(Denial::NotServedHere), "{r:?}");
        }
    }

    #[test]
    fn a_clerk_must_work_at_the_windows_municipality() {
        let w = p("window:131016:W01");
        assert_eq!(check_clerk_of_window(&w, &p("clerk:131016:C0001")), Ok(()));
        for other in ["clerk:271004:C0001", "window:131016:W02", "operator:op1"] {
            let e = check_clerk_of_window(&w, &p(other)).err().unwrap_or_else(|| panic!("{other} accepted"));
            assert_eq!(e.code, "clerk_other_municipality", "{other}");
        }
        let refused = NoClerks.check(&w, "POST", "/v1/window/find", b"{}", ClerkHeaderValues::default(), 0);
        assert_eq!(refused.map_err(|e| e.code), Err("clerk_not_trusted"));
    }

    #[test]
    fn the_documented_table_is_the_code() {
        let doc = include_str!("../../docs/authorization.md");
        let table = render_table();
        assert!(doc.contains(&table), "docs/authorization.md is out of date; the table is now:\n{table}");
    }
}
