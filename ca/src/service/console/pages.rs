//! The console's pages as `maud` markup: pure functions of what the handlers read (and `now`),
//! Japanese labels, tables with header cells, a label on every input, no inline script or
//! style. Nothing here reads the database or decides anything.

use maud::{Markup, html};
use time::OffsetDateTime;

use crate::authority::CertRecord;
use crate::ceremony::{CeremonyProgress, Direction, GenerationStatus, KeyState, Step};
use crate::crl::Reason;
use crate::emergency::PlanProgress;
use crate::hierarchy::{CaId, Environment, Purpose};
use crate::publish::{CrlRecord, Published};
use crate::revocation::CertKind;
use crate::status::{CertStatus, Certificate};

/// The console's navigation: (href, label).
pub const NAV: [(&str, &str); 6] = [
    ("/console", "概要・CA世代"),
    ("/console/crl", "CRL"),
    ("/console/responders", "OCSP応答者"),
    ("/console/certificates", "証明書検索"),
    ("/console/audit", "監査"),
    ("/console/rotation", "ローテーション"),
];

/// The service name in every page's header.
pub const SERVICE: &str = "JPKI CA 運用コンソール";

/// A whole page for the operator `who` (party URI).
pub fn page(who: &str, title: &str, body: Markup) -> Markup {
    web::layout(title, &web::Nav { service: SERVICE, links: &NAV, who: Some(who), sign_out: None }, body)
}

/// Unix seconds as `YYYY-MM-DD hh:mm:ss UTC`.
pub fn when(t: i64) -> String {
    let f = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second] UTC");
    OffsetDateTime::from_unix_timestamp(t).ok().and_then(|d| d.format(&f).ok()).unwrap_or_else(|| t.to_string())
}

/// The Japanese name of a CA: hierarchy, root or prefecture unit, production or test.
pub fn ca_name(ca: &CaId) -> String {
    let purpose = match ca.purpose {
        Purpose::Signature => "署名用",
        Purpose::Authentication => "利用者証明用",
    };
    let env = match ca.env {
        Environment::Production => "本番",
        Environment::Test => "試験",
    };
    match &ca.prefecture {
        None => format!("{purpose} ルートCA（{env}）"),
        Some(p) => format!("{purpose} 発行CA 都道府県{p}（{env}）"),
    }
}

/// A slug's Japanese name, or the slug itself if it is not one.
fn slug_name(slug: &str) -> String {
    CaId::parse(slug).map(|c| ca_name(&c)).unwrap_or_else(|_| slug.to_owned())
}

fn state_name(s: KeyState) -> &'static str {
    match s {
        KeyState::Pending => "待機中（有効化前）",
        KeyState::Issuing => "発行中",
        KeyState::Retired => "退役（CRL・OCSPのみ署名）",
        KeyState::Archived => "保管（署名なし）",
        KeyState::RolledBack => "ロールバック済み",
    }
}

/// The Japanese label of a revocation reason, with its RFC 5280 name.
pub fn reason_label(r: Reason) -> &'static str {
    match r {
        Reason::Unspecified => "理由の指定なし（unspecified）",
        Reason::KeyCompromise => "鍵の危殆化（keyCompromise）",
        Reason::CaCompromise => "CAの危殆化（cACompromise）",
        Reason::AffiliationChanged => "記載事項の変更（affiliationChanged）",
        Reason::Superseded => "更新による置換（superseded）",
        Reason::CessationOfOperation => "利用の終了（cessationOfOperation）",
        Reason::CertificateHold => "一時停止・カード紛失（certificateHold、解除なし）",
    }
}

fn kind_label(k: CertKind) -> &'static str {
    match k {
        CertKind::Signature => "署名用電子証明書",
        CertKind::Authentication => "利用者証明用電子証明書",
        CertKind::OcspResponder => "OCSP応答者証明書",
        CertKind::Authority => "CA証明書",
    }
}

fn direction_label(d: Direction) -> &'static str {
    match d {
        Direction::NewWithOld => "NewWithOld（新しい鍵を旧鍵が認証）",
        Direction::OldWithNew => "OldWithNew（旧鍵を新しい鍵が認証）",
    }
}

/// What went wrong and what to do next.
pub fn refusal(code: &str, detail: &str, next: &str) -> Markup {
    html! {
        div.message role="alert" {
            p.what { "要求を処理できませんでした（" code { (code) } "）。" }
            p.next { strong { "次の操作: " } (next) }
        }
        p.muted { "詳細: " (detail) }
        p { a href="/console" { "概要へ戻る" } }
    }
}

/// `GET /console`: every CA with its generations.
pub fn overview(gens: &[GenerationStatus], now: i64) -> Markup {
    let mut cas: Vec<&CaId> = Vec::new();
    for g in gens {
        if !cas.contains(&&g.generation.ca) {
            cas.push(&g.generation.ca);
        }
    }
    // Production before test, signature before authentication, each root before its
    // prefecture units.
    cas.sort_by_key(|c| (c.env as i64, c.purpose as i64, c.prefecture.clone()));
    html! {
        p { "現在時刻: " (when(now)) "。各CAの鍵世代と状態です（" a href="/console/rotation" { "ローテーション" } "で鍵儀式の進み具合を確認できます）。" }
        @if cas.is_empty() {
            p { "CAはまだ作られていません（" code { "jpki ca init" } "）。" }
        }
        @for ca in &cas {
            section aria-labelledby=(format!("ca-{}", ca.slug())) {
                h2 id=(format!("ca-{}", ca.slug())) { (ca_name(ca)) " " code { (ca.slug()) } }
                table {
                    thead { tr {
                        th scope="col" { "世代" } th scope="col" { "鍵の状態" } th scope="col" { "アルゴリズム" }
                        th scope="col" { "鍵識別子（SKI）" } th scope="col" { "有効期限（notAfter）" }
                        th scope="col" { "発行数" } th scope="col" { "リンク証明書" }
                    } }
                    tbody {
                        @for g in gens.iter().filter(|g| g.generation.ca == **ca) {
                            tr {
                                th scope="row" { "g" (g.generation.generation) }
                                td { (state_name(g.state)) }
                                td { code { (g.generation.algorithm.name()) } }
                                td { code.ski { (hex::encode(&g.generation.key_id)) } }
                                td { (when(g.generation.not_after)) }
                                td { (g.issued) }
                                td {
                                    @if g.links.is_empty() { "なし" }
                                    @else {
                                        ul { @for (serial, d, signer) in &g.links {
                                            li { (direction_label(*d)) " シリアル " code { (serial) } "（g" (signer) " が署名）" }
                                        } }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn shard_label(shard: i64) -> String {
    if shard < 0 { "ARL（CA証明書の失効リスト）".to_owned() } else { format!("シャード {shard}") }
}

/// `GET /console/crl`: the newest CRL of every shard and the publish button.
pub fn crls(crls: &[CrlRecord], can_publish: bool, token: &str, now: i64) -> Markup {
    html! {
        p { "各CA世代のシャードごとに、最後に公開したCRLです。現在時刻: " (when(now)) }
        @if crls.is_empty() {
            p { "まだCRLを公開していません。" }
        } @else {
            table {
                caption { "公開済みCRL（シャードごとの最新）" }
                thead { tr {
                    th scope="col" { "CA" } th scope="col" { "世代" } th scope="col" { "範囲" } th scope="col" { "CRL番号" }
                    th scope="col" { "thisUpdate" } th scope="col" { "nextUpdate" } th scope="col" { "失効エントリ数" }
                    th scope="col" { "サイズ（バイト）" }
                } }
                tbody {
                    @for c in crls {
                        tr {
                            td { (slug_name(&c.ca)) " " code { (c.ca) } }
                            td { "g" (c.generation) }
                            td { (shard_label(c.shard)) }
                            td { (c.number) }
                            td { (when(c.this_update)) }
                            td {
                                (when(c.next_update))
                                @if c.next_update <= now { " " strong { "（期限切れ：すぐに公開してください）" } }
                            }
                            td { (c.entries) }
                            td { (c.bytes) }
                        }
                    }
                }
            }
        }
        h2 { "今すぐ公開" }
        @if can_publish {
            p { "署名を続けている全世代（待機中・発行中・退役）のCRLとARLを公開します（" code { "jpki ca-op crl" } " と同じ処理で、監査記録に残ります）。" }
            form.stack method="post" action="/console/crl/publish" {
                input type="hidden" name=(web::csrf::FIELD) value=(token);
                button type="submit" { "CRLを公開する" }
            }
        } @else {
            p { "このCAサービスは公開ディレクトリなしで起動されているため、ここからは公開できません（" code { "--publish-dir" } "）。" }
        }
    }
}

/// The result of a publication.
pub fn published(done: &[Published]) -> Markup {
    html! {
        div.notice-ok role="status" { p { (done.len()) " 件のCRL・ARLを公開しました。" } }
        table {
            caption { "公開したCRL" }
            thead { tr {
                th scope="col" { "CA" } th scope="col" { "世代" } th scope="col" { "範囲" } th scope="col" { "CRL番号" }
                th scope="col" { "失効エントリ数" } th scope="col" { "サイズ（バイト）" }
            } }
            tbody {
                @for p in done {
                    tr {
                        td { (slug_name(&p.ca)) " " code { (p.ca) } }
                        td { "g" (p.generation) }
                        td { (shard_label(p.shard)) }
                        td { (p.number) }
                        td { (p.entries) }
                        td { (p.bytes) }
                    }
                }
            }
        }
        p { a href="/console/crl" { "CRLの一覧へ戻る" } }
    }
}

fn validity(record: &CertRecord, now: i64) -> &'static str {
    match (&record.revoked, record.not_after) {
        (Some(_), _) => "失効",
        (None, Some(t)) if t <= now => "期限切れ",
        (None, Some(_)) => "有効",
        (None, None) => "未発行",
    }
}

/// `GET /console/responders`.
pub fn responders(certs: &[CertRecord], now: i64) -> Markup {
    html! {
        p { "検証サービス（validator）に発行した委任OCSP応答者証明書です（" code { "POST /v1/responders" } "）。" }
        @if certs.is_empty() {
            p { "応答者証明書はまだ発行されていません。" }
        } @else {
            table {
                caption { "OCSP応答者証明書（有効期限の遅い順）" }
                thead { tr {
                    th scope="col" { "シリアル番号" } th scope="col" { "応答するCA" } th scope="col" { "世代" }
                    th scope="col" { "有効期間の開始" } th scope="col" { "有効期限（notAfter）" } th scope="col" { "状態" }
                } }
                tbody {
                    @for c in certs {
                        tr {
                            td { a href=(format!("/console/certificates?serial={}", c.serial)) { code { (c.serial) } } }
                            td { (slug_name(&c.ca)) " " code { (c.ca) } }
                            td { "g" (c.generation) }
                            td { (c.not_before.map(when).unwrap_or_default()) }
                            td { (c.not_after.map(when).unwrap_or_default()) }
                            td { (validity(c, now)) }
                        }
                    }
                }
            }
        }
    }
}

/// A certificate found by serial: its status (as the status route reads it) and its record.
#[derive(Debug, Clone)]
pub struct Found {
    /// What `GET /v1/status/certificates/{serial}` answers.
    pub status: Certificate,
    /// Kind, validity, shard (no resident is shown).
    pub record: CertRecord,
}

fn status_label(s: &CertStatus) -> String {
    match s {
        CertStatus::Good => "有効（失効していません）".to_owned(),
        CertStatus::Revoked { at, reason } => format!("失効（{}、{}）", reason_label(*reason), when(*at)),
        CertStatus::NotIssued => "未発行（番号だけが予約されました）".to_owned(),
    }
}

/// One certificate's facts (never the resident it names).
fn certificate(f: &Found, now: i64) -> Markup {
    let r = &f.record;
    html! {
        dl.record {
            dt { "シリアル番号" } dd { code { (f.status.serial) } }
            dt { "種類" } dd { (kind_label(r.kind)) }
            dt { "発行CA" } dd { (slug_name(&f.status.issuer_slug)) " " code { (f.status.issuer_slug) } " g" (f.status.issuer_generation) }
            dt { "有効期間" } dd {
                (r.not_before.map(when).unwrap_or_default()) " 〜 " (r.not_after.map(when).unwrap_or_default())
                @if r.not_after.is_some_and(|t| t <= now) { "（期限切れ）" }
            }
            dt { "CRLシャード" } dd { (r.shard) }
            dt { "状態" } dd.status { strong { (status_label(&f.status.status)) } }
            @if let Some((_, _, cause)) = &r.revoked {
                dt { "失効の経緯" } dd { (cause) }
            }
        }
    }
}

/// `GET /console/certificates`: the search form, and what was found.
pub fn search(serial: Option<&str>, found: Option<&Found>, token: &str, now: i64) -> Markup {
    html! {
        p { "証明書はシリアル番号（16進）でのみ検索できます。氏名・住民票コードでは検索できません。" }
        form.stack method="get" action="/console/certificates" role="search" {
            label for="serial" { "シリアル番号（16進）"
                input #serial type="text" name="serial" value=(serial.unwrap_or("")) required
                    pattern="[0-9A-Fa-f]{1,64}" maxlength="64" autocomplete="off" spellcheck="false"
                    aria-describedby="serial-help";
            }
            span #serial-help .muted { "例: 5f3a9c（1〜32バイト）" }
            button type="submit" { "検索する" }
        }
        @if let Some(f) = found {
            h2 { "検索結果" }
            (certificate(f, now))
            @if f.status.status == CertStatus::Good && f.record.not_after.is_some_and(|t| t > now) {
                h2 { "この証明書を失効させる" }
                p { "失効は取り消せません。理由と経緯は監査記録に残ります。" }
                form.stack method="post" action="/console/certificates/revoke" {
                    input type="hidden" name=(web::csrf::FIELD) value=(token);
                    input type="hidden" name="serial" value=(f.status.serial);
                    label for="reason" { "失効理由（RFC 5280）"
                        select #reason name="reason" required {
                            @for r in Reason::ALL {
                                option value=(r.name()) selected[r == Reason::KeyCompromise] { (reason_label(r)) }
                            }
                        }
                    }
                    label for="cause" { "経緯（記録用、200文字まで）"
                        input #cause type="text" name="cause" required maxlength="200" autocomplete="off";
                    }
                    button.danger #revoke type="submit" { "失効させる" }
                }
            }
        }
    }
}

/// The result of a revocation.
pub fn revoked(f: &Found, now: i64) -> Markup {
    html! {
        div.notice-ok role="status" {
            p { "証明書 " code { (f.status.serial) } " を失効させました。監査記録に記録しました。" }
        }
        (certificate(f, now))
        p { a href="/console/certificates" { "別の証明書を検索する" } }
    }
}

/// `GET /console/audit`: the chain's verification and its head.
pub fn audit(verified: Result<(), String>, seq: i64, hash: &[u8]) -> Markup {
    html! {
        @match &verified {
            Ok(()) => div.notice-ok role="status" {
                p { strong { "検証に成功しました。" } "監査証跡の " (seq) " 行すべてのハッシュ連鎖が正しく、改ざん・削除はありません。" }
            },
            Err(detail) => div.message role="alert" {
                p.what { strong { "監査証跡のハッシュ連鎖が壊れています。" } "記録が改ざんまたは削除された可能性があります。" }
                p { "詳細: " (detail) }
                p.next { strong { "次の操作: " } "CAの操作を止め、監査ジャーナル（" code { "JPKI_CA_AUDIT_JOURNAL" } "）と照合してください（docs/operations.md）。" }
            },
        }
        dl.record {
            dt { "先頭（最新行）の番号" } dd { (seq) }
            dt { "先頭のハッシュ（SHA-256）" } dd { code.hash { (hex::encode(hash)) } }
        }
        p.muted { "ページを開くたびに、証跡の全行を最初から検証します（" code { "jpki ca audit" } " と同じ検証）。" }
    }
}

fn step_text(s: &Step) -> String {
    match s {
        Step::GenerateKey { algorithm, store } => format!("{} の鍵を生成（{store}）", algorithm.name()),
        Step::CaCertificate { subject, signer, not_before, not_after } => format!(
            "CA証明書に署名（主体: {subject}、署名者: {signer}、有効期間 {} 〜 {}）",
            when(*not_before),
            when(*not_after)
        ),
        Step::Link { direction: Direction::NewWithOld, signed_with, cross: false } => {
            format!("リンク証明書 NewWithOld（新しい鍵を旧鍵が認証、{} で署名）", signed_with.name())
        }
        Step::Link { direction: Direction::OldWithNew, signed_with, .. } => {
            format!("リンク証明書 OldWithNew（旧鍵を新しい鍵が認証、{} で署名）", signed_with.name())
        }
        Step::Link { signed_with, cross: true, .. } => {
            format!("相互認証証明書（新しい名前と鍵のルートを旧ルートが認証、{} で署名）", signed_with.name())
        }
        Step::Activate { at, retires: Some(g) } => {
            format!("{}: 発行を新しい世代へ切り替え、g{g} は退役（CRL・OCSPのみ）", when(*at))
        }
        Step::Activate { at, retires: None } => format!("{}: 新しい世代が発行を開始", when(*at)),
    }
}

/// `GET /console/rotation`: every ceremony's steps, and the emergency re-issuance plans.
pub fn rotation(ceremonies: &[CeremonyProgress], plans: &[(CaId, i64, PlanProgress)]) -> Markup {
    html! {
        h2 { "鍵儀式の進み具合" }
        @if ceremonies.is_empty() {
            p { "鍵儀式はまだ行われていません（" code { "POST /v1/ceremony/run" } "）。" }
        }
        @for c in ceremonies {
            section aria-labelledby=(format!("cer-{}-g{}", c.ca.slug(), c.generation)) {
                h3 id=(format!("cer-{}-g{}", c.ca.slug(), c.generation)) {
                    (ca_name(&c.ca)) " " code { (c.ca.slug()) } " g" (c.generation) "："
                    @if c.done >= c.total { "完了" } @else { "進行中" }
                    "（" (c.done) " / " (c.total) " 手順、最終更新 " (when(c.updated_at)) "）"
                }
                @match &c.steps {
                    Some(steps) => ol.progress {
                        @for (i, s) in steps.iter().enumerate() {
                            @let done = (i as i64) < c.done;
                            li class=(if done { "done" } else { "todo" }) {
                                (step_text(s)) " — " @if done { "完了" } @else { "未実施" }
                            }
                        }
                    },
                    None => p { "手順の内容は現在の状態からは再計算できません（完了 " (c.done) " / 全 " (c.total) " 手順）。" },
                }
            }
        }
        h2 { "緊急再発行の計画（市区町村ごと）" }
        @if plans.is_empty() {
            p { "緊急再発行の計画はありません（危殆化の宣言後、" code { "POST /v1/emergency/plan" } " で作られます）。" }
        }
        @for (ca, generation, p) in plans {
            section aria-labelledby=(format!("plan-{}-g{generation}", ca.slug())) {
                h3 id=(format!("plan-{}-g{generation}", ca.slug())) { (ca_name(ca)) " " code { (ca.slug()) } " g" (generation) }
                p { "対象の住民 " (p.total) " 人のうち " (p.planned) " 人を照会済み"
                    @if p.planned < p.total { "（計画の途中です）" } @else { "（計画完了）" } "。" }
                @if !p.by_municipality.is_empty() {
                    table {
                        caption { "市区町村ごとの再発行待ち（人数のみ）" }
                        thead { tr { th scope="col" { "市区町村コード" } th scope="col" { "呼出し対象" } th scope="col" { "再発行済み" } th scope="col" { "残り" } } }
                        tbody {
                            @for (code, queued, done) in &p.by_municipality {
                                tr { th scope="row" { (code) } td { (queued) } td { (done) } td { (queued - done) } }
                            }
                        }
                    }
                }
            }
        }
    }
}
