//! The page of a residence certificate: the record's items in a ruled table, the certification
//! sentence, the date and the issuing municipality, laid out on A4 in the embedded font.
//! Pure: the record in, content-stream operations out (text through a [`Shaper`]).

use lopdf::content::Operation;
use lopdf::{Object, StringFormat};
use time::Date;

use crate::error::{Error, Result};
use crate::font::Shaper;
use crate::{ResidenceRecord, sex_label};

/// A4 in points.
pub(crate) const PAGE: [f32; 2] = [595.0, 842.0];
const LEFT: f32 = 72.0;
const RIGHT: f32 = 523.0;
const VALUE_X: f32 = 184.0;
const SIZE: f32 = 12.0;
const LEADING: f32 = 18.0;

/// A date in the Japanese era (和暦): `令和8年12月6日`, `昭和55年4月1日`, `平成元年1月8日`; a date
/// before 明治 is written in the Gregorian calendar.
pub fn wareki(d: Date) -> String {
    const ERAS: [(&str, (i32, u8, u8)); 5] = [
        ("令和", (2019, 5, 1)),
        ("平成", (1989, 1, 8)),
        ("昭和", (1926, 12, 25)),
        ("大正", (1912, 7, 30)),
        ("明治", (1868, 1, 25)),
    ];
    let key = (d.year(), u8::from(d.month()), d.day());
    match ERAS.iter().find(|(_, start)| key >= *start) {
        Some((era, start)) => {
            let y = d.year() - start.0 + 1;
            let y = if y == 1 { "元".to_owned() } else { y.to_string() };
            format!("{era}{y}年{}月{}日", u8::from(d.month()), d.day())
        }
        None => format!("{}年{}月{}日", d.year(), u8::from(d.month()), d.day()),
    }
}

fn op(name: &str, operands: Vec<Object>) -> Operation {
    Operation::new(name, operands)
}

fn real(v: f32) -> Object {
    Object::Real(v)
}

/// Greedy line breaking of `text` into lines at most `width` points wide (Japanese text breaks
/// between any two characters).
fn wrap(shaper: &Shaper<'_>, text: &str, size: f32, width: f32) -> Vec<String> {
    let mut lines = vec![String::new()];
    for c in text.chars() {
        let mut probe = lines.last().cloned().unwrap_or_default();
        probe.push(c);
        if shaper.width(&probe, size) > width && lines.last().is_some_and(|l| !l.is_empty()) {
            lines.push(c.to_string());
        } else if let Some(l) = lines.last_mut() {
            l.push(c);
        }
    }
    lines
}

struct Writer<'a, 'f> {
    shaper: &'a mut Shaper<'f>,
    ops: Vec<Operation>,
}

impl Writer<'_, '_> {
    fn text(&mut self, x: f32, y: f32, size: f32, text: &str) -> Result<()> {
        let codes = self.shaper.encode(text)?;
        self.ops.extend([
            op("BT", vec![]),
            op("Tf", vec![Object::Name(b"F1".to_vec()), real(size)]),
            op("Td", vec![real(x), real(y)]),
            op("Tj", vec![Object::String(codes, StringFormat::Hexadecimal)]),
            op("ET", vec![]),
        ]);
        Ok(())
    }

    fn line(&mut self, x1: f32, y1: f32, x2: f32, y2: f32) {
        self.ops.extend([op("m", vec![real(x1), real(y1)]), op("l", vec![real(x2), real(y2)]), op("S", vec![])]);
    }
}

/// The page's content for `record` (with the resident code if `show_code`).
pub(crate) fn content(shaper: &mut Shaper<'_>, record: &ResidenceRecord, show_code: bool) -> Result<Vec<u8>> {
    let mut rows: Vec<(&str, String)> = vec![
        ("氏名", record.name.clone()),
        ("生年月日", format!("{}生", wareki(record.date_of_birth))),
        ("性別", sex_label(record.sex).to_owned()),
        ("住所", record.address.clone()),
    ];
    if show_code {
        let code = record
            .resident_code
            .as_ref()
            .ok_or(Error::Invalid { field: "resident code", reason: "asked for, but the record has none".into() })?;
        rows.push(("住民票コード", code.as_str().to_owned()));
    }
    let mut w = Writer { shaper, ops: vec![op("w", vec![real(0.6)])] };
    let title = "住民票の写し";
    let title_width = w.shaper.width(title, 22.0);
    w.text((PAGE[0] - title_width) / 2.0, 760.0, 22.0, title)?;

    let mut y = 720.0;
    w.line(LEFT, y, RIGHT, y);
    let top = y;
    for (label, value) in &rows {
        let lines = wrap(w.shaper, value, SIZE, RIGHT - VALUE_X - 8.0);
        let height = LEADING * lines.len() as f32 + 14.0;
        w.text(LEFT + 8.0, y - 21.0, SIZE, label)?;
        for (i, l) in lines.iter().enumerate() {
            w.text(VALUE_X, y - 21.0 - LEADING * i as f32, SIZE, l)?;
        }
        y -= height;
        w.line(LEFT, y, RIGHT, y);
    }
    w.line(LEFT, top, LEFT, y);
    w.line(VALUE_X - 8.0, top, VALUE_X - 8.0, y);
    w.line(RIGHT, top, RIGHT, y);

    w.text(LEFT, y - 48.0, SIZE, "この写しは、住民票の原本と相違ないことを証明する。")?;
    w.text(LEFT, y - 80.0, SIZE, &wareki(record.issue_date))?;
    let issuer = format!("{}長", record.municipality);
    let issuer_width = w.shaper.width(&issuer, 14.0);
    w.text(RIGHT - issuer_width, y - 112.0, 14.0, &issuer)?;
    w.text(
        LEFT,
        72.0,
        9.0,
        "この文書には発行した市区町村の電子署名（PAdES）があります。改変されると署名の検証に失敗します。",
    )?;
    lopdf::content::Content { operations: w.ops }.encode().map_err(|e| Error::Pdf(format!("content stream: {e}")))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use time::macros::date;

    #[test]
    fn long_values_wrap_within_the_column_and_lose_no_character() {
        let font = crate::Font::load_default().unwrap();
        let shaper = Shaper::new(&font).unwrap();
        let text = "東京都千代田区千代田一丁目1番1号".repeat(4);
        let width = RIGHT - VALUE_X - 8.0;
        let lines = wrap(&shaper, &text, SIZE, width);
        assert!(lines.len() >= 3, "{lines:?}");
        assert!(lines.iter().all(|l| shaper.width(l, SIZE) <= width), "{lines:?}");
        assert_eq!(lines.concat(), text);
        assert_eq!(wrap(&shaper, "山田 太郎", SIZE, width), ["山田 太郎"]);
    }

    #[test]
    fn dates_are_written_in_the_japanese_era() {
        assert_eq!(wareki(date!(2026 - 12 - 06)), "令和8年12月6日");
        assert_eq!(wareki(date!(2019 - 05 - 01)), "令和元年5月1日");
        assert_eq!(wareki(date!(2019 - 04 - 30)), "平成31年4月30日");
        assert_eq!(wareki(date!(1989 - 01 - 07)), "昭和64年1月7日");
        assert_eq!(wareki(date!(1980 - 04 - 01)), "昭和55年4月1日");
        assert_eq!(wareki(date!(1912 - 07 - 30)), "大正元年7月30日");
        assert_eq!(wareki(date!(1868 - 01 - 24)), "1868年1月24日");
    }
}
