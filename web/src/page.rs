//! The layout every page uses and the message page of every error: `lang="ja"`, a skip link to
//! the main content, the service's navigation, who is signed in, and a sign-out form; all text
//! Japanese. Nothing inline: the stylesheet and htmx come from `/static/`.

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use maud::{DOCTYPE, Markup, html};

use crate::assets::{HTMX_PATH, css_path};

/// What the header of a page shows.
#[derive(Debug, Clone, Copy, Default)]
pub struct Nav<'a> {
    /// The service, e.g. `市区町村窓口 131016 W01`.
    pub service: &'a str,
    /// Navigation links: (href, label).
    pub links: &'a [(&'a str, &'a str)],
    /// Who is signed in (a clerk or operator id), if anyone.
    pub who: Option<&'a str>,
    /// The sign-out form's action and CSRF token, if the page has a session to end.
    pub sign_out: Option<(&'a str, &'a str)>,
}

/// A whole page: `title` in the tab and as the `<h1>`, `body` in `<main>`.
pub fn layout(title: &str, nav: &Nav<'_>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="ja" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                // htmx must not add its own inline <style> (the CSP forbids it) nor evaluate code.
                meta name="htmx-config" content=r#"{"includeIndicatorStyles":false,"allowEval":false,"allowScriptTags":false}"#;
                title { (title) " — " (nav.service) }
                link rel="stylesheet" href=(css_path());
                script src=(HTMX_PATH) defer {}
            }
            body {
                a.skip href="#main" { "本文へ移動" }
                header.top {
                    span.service { (nav.service) }
                    @if !nav.links.is_empty() {
                        nav aria-label="メニュー" {
                            ul { @for (href, label) in nav.links { li { a href=(href) { (label) } } } }
                        }
                    }
                    @if let Some(who) = nav.who {
                        span.who { "担当: " (who) }
                    }
                    @if let Some((action, token)) = nav.sign_out {
                        form.signout method="post" action=(action) {
                            input type="hidden" name=(crate::csrf::FIELD) value=(token);
                            button type="submit" { "サインアウト" }
                        }
                    }
                }
                main #main tabindex="-1" {
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

/// The page for an error or refusal: what happened and what to do next, with a link back.
pub fn message(status: StatusCode, title: &str, what: &str, next: &str, back: Option<(&str, &str)>) -> Response {
    (status, Html(message_page(title, what, next, back).into_string())).into_response()
}

fn message_page(title: &str, what: &str, next: &str, back: Option<(&str, &str)>) -> Markup {
    let body = html! {
        div.message role="alert" {
            p.what { (what) }
            p.next { strong { "次の操作: " } (next) }
        }
        @if let Some((href, label)) = back {
            p { a href=(href) { (label) } }
        }
    };
    layout(title, &Nav { service: "JPKI", ..Nav::default() }, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_layout_is_japanese_has_a_skip_link_and_no_inline_code() {
        let page = layout(
            "住民の検索",
            &Nav {
                service: "窓口",
                links: &[("/", "ホーム")],
                who: Some("C0001"),
                sign_out: Some(("/signout", "tok")),
            },
            html! { p { "本文" } },
        )
        .into_string();
        assert!(page.starts_with("<!DOCTYPE html><html lang=\"ja\">"));
        assert!(page.contains("href=\"#main\""));
        assert!(page.contains("<main id=\"main\" tabindex=\"-1\"><h1>住民の検索</h1>"));
        assert!(page.contains("name=\"csrf\" value=\"tok\""));
        assert!(!page.contains("<style") && !page.contains("style=") && !page.contains("<script>"));
        assert!(!page.contains("onclick") && !page.contains("javascript:"));
    }

    #[test]
    fn messages_escape_what_they_show() {
        let page = message_page("拒否", "<script>x</script>", "戻る", Some(("/", "ホームへ"))).into_string();
        assert!(page.contains("&lt;script&gt;x&lt;/script&gt;") && !page.contains("<script>x"));
        assert!(page.contains("role=\"alert\"") && page.contains("次の操作: </strong>戻る"));
        assert_eq!(message(StatusCode::FORBIDDEN, "拒否", "x", "y", None).status(), StatusCode::FORBIDDEN);
    }
}
