//! Every error a clerk can meet, as a message in Japanese with the next step: the card's
//! errors, the CA service's refusals, the municipality's refusals. Messages name no resident
//! (they are shown on the window's screen and logged by their code).

use card::writer::CaError;

use crate::jobs::Failed;

fn failed(code: impl Into<String>, what: impl Into<String>, next: impl Into<String>) -> Failed {
    Failed { code: code.into(), what: what.into(), next: next.into() }
}

/// A CA service refusal or failure.
pub fn ca_error(e: &CaError, wiped: bool) -> Failed {
    let after = if wiped { "カードは白紙に戻しました。" } else { "" };
    match e {
        CaError::Refused { code, .. } if code == "under_age" => failed(
            code.clone(),
            format!("15歳未満の住民には署名用電子証明書を発行できません。{after}"),
            "「署名用電子証明書を発行しない」を選んで、もう一度発行してください。",
        ),
        CaError::Refused { code, .. } if code == "not_own_municipality" => failed(
            code.clone(),
            format!("この住民は当市区町村に登録されていないため発行できません。{after}"),
            "住民票のある市区町村の窓口を案内してください。",
        ),
        CaError::Refused { code, .. } if code.starts_with("clerk_") => failed(
            code.clone(),
            format!("職員の認証が認証局で拒否されました（{code}）。{after}"),
            "サインアウトして、もう一度サインインしてください。続く場合は管理者に連絡してください。",
        ),
        CaError::Refused { code, detail } if code == "resident_unknown" || code == "identity_unavailable" => failed(
            code.clone(),
            format!("認証局が住民の情報を確認できません（{}）。{after}", short(detail)),
            "住民の登録が全国センターに届くまで数秒待ってから、もう一度発行してください。",
        ),
        CaError::Refused { code, detail } => failed(
            code.clone(),
            format!("認証局が発行を拒否しました（{code}: {}）。{after}", short(detail)),
            "内容を確認し、必要なら管理者に連絡してください。",
        ),
        CaError::Unavailable(_) => failed(
            "ca_unreachable",
            format!("認証局に接続できません。{after}"),
            "ネットワークを確認し、しばらく待ってからもう一度操作してください。",
        ),
        CaError::Failed(_) => failed(
            "ca_failed",
            format!("認証局の処理に失敗しました。{after}"),
            "もう一度操作してください。続く場合は管理者に連絡してください。",
        ),
    }
}

/// Keeps a refusal's detail short and free of markup for the page (it is escaped anyway).
fn short(detail: &str) -> String {
    detail.chars().take(120).collect()
}

/// A card operation's error.
pub fn card_error(e: &card::Error) -> Failed {
    use card::Error as E;
    let code = e.kind();
    match e {
        E::NoService(_) => {
            failed(code, "カードリーダーのサービス（pcscd）が動いていません。", "端末の管理者に連絡してください。")
        }
        E::NoReader { .. } => failed(
            code,
            "カードリーダーが見つかりません。",
            "リーダーが接続されているか確認し、もう一度操作してください。",
        ),
        E::NoCard(..) => {
            failed(code, "カードが挿入されていません。", "カードをリーダーに挿入してから、もう一度操作してください。")
        }
        E::Removed(_) => failed(
            code,
            "処理中にカードが抜かれました。",
            "カードを挿入し直し、「発行を再開」を押してください（中断したカードは再開か初期化で必ず完了させます）。",
        ),
        E::Interrupted(_) => failed(
            code,
            "前回の発行が途中で中断されたカードです。",
            "「発行を再開」で完了させるか、「カードの初期化」で白紙に戻してください。",
        ),
        E::WrongPin { pin, tries_left } => failed(
            code,
            format!("{}が違います（残り{tries_left}回）。", pin_name(pin)),
            if *tries_left == 0 {
                "暗証番号がロックされました。本人確認のうえ「暗証番号の再設定」を行ってください。".to_owned()
            } else {
                "住民にもう一度入力してもらってください。".to_owned()
            },
        ),
        E::PinBlocked(pin) => failed(
            code,
            format!("{}がロックされています（残り0回）。", pin_name(pin)),
            "本人確認のうえ「暗証番号の再設定」を行ってください。",
        ),
        E::IssuerAuth(_) => {
            failed(code, "このカードの発行者認証に失敗しました。", "別のカードを使い、管理者に連絡してください。")
        }
        E::Ca { source, wiped, .. } => ca_error(source, *wiped),
        E::InvalidInput { field, reason } => failed(
            code,
            format!("入力に誤りがあります（{field}: {reason}）。カードには触れていません。"),
            "入力を直してもう一度操作してください。",
        ),
        E::WrongLifecycle { hint, .. } => {
            failed(code, format!("このカードではその操作はできません（{hint}）。"), "カードの状態を確認してください。")
        }
        E::PinNeeded { pin, .. } => failed(
            code,
            format!("{}の入力が必要です。", pin_name(pin)),
            "住民に暗証番号を入力してもらい、もう一度操作してください。",
        ),
        E::NotJpki(_) => failed(code, "個人番号カード（JPKI）ではありません。", "正しいカードを挿入してください。"),
        E::AlreadyIssued(_) => failed(
            code,
            "このカードは発行済みです。",
            "新しい電子証明書が必要なら「電子証明書の更新」、暗証番号を忘れた場合は「暗証番号の再設定」を使ってください。",
        ),
        E::ReadBack { .. } => failed(
            code,
            "書き込んだ内容をカードから読み戻すと一致しませんでした。",
            "「発行を再開」でもう一度書き込むか、「カードの初期化」を行ってください。",
        ),
        E::PinFormat(f) => failed(
            code,
            format!("暗証番号の形式が正しくありません（{f}）。"),
            "形式を確認して入力し直してもらってください。",
        ),
        _ => failed(
            code,
            format!("カードの処理に失敗しました（{code}）。"),
            "カードを挿入し直し、もう一度操作してください。",
        ),
    }
}

fn pin_name(pin: &str) -> &'static str {
    if pin.contains("sign") { "署名用パスワード" } else { "利用者証明用暗証番号" }
}

/// A refusal or failure of the municipality's node.
pub fn register_error(e: &crate::register::NodeError) -> Failed {
    use crate::register::NodeError as N;
    match e {
        N::Refused { code, .. } if code == "not_found" => failed(
            code.clone(),
            "該当する住民は見つかりません。",
            "住民票コード、または4情報（氏名・生年月日・性別・住所）を正確に入力してください。",
        ),
        N::Refused { code, .. } if code == "not_own_municipality" => failed(
            code.clone(),
            "この住民は当市区町村の住民ではありません。",
            "住民票のある市区町村の窓口を案内してください。",
        ),
        N::Refused { code, .. } if code.starts_with("clerk_") => failed(
            code.clone(),
            format!("職員の認証が拒否されました（{code}）。"),
            "サインアウトして、もう一度サインインしてください。",
        ),
        N::Refused { code, detail } => failed(
            code.clone(),
            format!("処理できませんでした（{code}: {}）。", short(detail)),
            "入力を確認して、もう一度操作してください。",
        ),
        N::Unavailable(_) => failed(
            "node_unreachable",
            "市区町村の住民基本台帳システムに接続できません。何も変更されていません。",
            "しばらく待ってから、もう一度操作してください。",
        ),
        N::Failed(_) => failed(
            "node_failed",
            "住民基本台帳システムの処理に失敗しました。",
            "もう一度操作してください。続く場合は管理者に連絡してください。",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_message_says_what_happened_and_what_next() {
        let cases = [
            card_error(&card::Error::NoCard("r".into(), 10)),
            card_error(&card::Error::Removed("issue".into())),
            card_error(&card::Error::WrongPin { pin: "authentication PIN", tries_left: 2 }),
            card_error(&card::Error::WrongPin { pin: "signature password", tries_left: 0 }),
            card_error(&card::Error::PinBlocked("authentication PIN")),
            card_error(&card::Error::NoReader { wanted: "x".into(), available: String::new() }),
            ca_error(&CaError::Refused { code: "under_age".into(), detail: "14".into() }, true),
            ca_error(&CaError::Unavailable("connect".into()), false),
        ];
        for f in &cases {
            assert!(!f.what.is_empty() && !f.next.is_empty(), "{f:?}");
        }
        assert!(cases[2].what.contains("残り2回"));
        assert!(cases[3].next.contains("再設定"));
        assert_eq!(cases[4].code, "pin_blocked");
        assert!(cases[6].what.contains("15歳未満") && cases[6].what.contains("白紙"));
        assert_eq!(cases[7].code, "ca_unreachable");
    }
}
