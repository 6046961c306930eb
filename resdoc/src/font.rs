//! The embedded Japanese font: a TrueType font from a Debian package (IPAex Gothic,
//! `fonts-ipaexfont-gothic`), its glyphs and metrics read with ttf-parser, and the subset of
//! the glyphs a document uses, cut with subsetter and written as a CID-keyed Type 0 font
//! (Identity-H, the subset's glyph ids as CIDs) with a ToUnicode CMap so the text extracts.

use std::collections::BTreeMap;
use std::path::Path;

use lopdf::{Dictionary, Document, Object, ObjectId, Stream, StringFormat, dictionary};
use sha2::Digest;

use crate::error::{Error, Result};

/// Where `fonts-ipaexfont-gothic` installs IPAex Gothic.
pub const DEFAULT_FONT: &str = "/usr/share/fonts/opentype/ipaexfont-gothic/ipaexg.ttf";

/// A TrueType font, loaded once and used for many documents.
pub struct Font {
    data: Vec<u8>,
    postscript_name: String,
    units_per_em: f32,
    ascent: i64,
    descent: i64,
    cap_height: i64,
    bbox: [i64; 4],
}

impl std::fmt::Debug for Font {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Font").field("name", &self.postscript_name).field("bytes", &self.data.len()).finish()
    }
}

impl Font {
    /// Loads [`DEFAULT_FONT`].
    pub fn load_default() -> Result<Self> {
        Self::load(Path::new(DEFAULT_FONT))
    }

    /// Loads a TrueType font (glyf outlines; a collection's first face).
    pub fn load(path: &Path) -> Result<Self> {
        let data = std::fs::read(path).map_err(|e| Error::Font(format!("{}: {e}", path.display())))?;
        Self::from_bytes(data)
    }

    /// A font from its bytes.
    pub fn from_bytes(data: Vec<u8>) -> Result<Self> {
        let face = ttf_parser::Face::parse(&data, 0).map_err(|e| Error::Font(format!("not a font: {e}")))?;
        if face.tables().glyf.is_none() {
            return Err(Error::Font("not a TrueType-outline font (no glyf table)".into()));
        }
        let postscript_name = face
            .names()
            .into_iter()
            .filter(|n| n.name_id == ttf_parser::name_id::POST_SCRIPT_NAME)
            .filter_map(|n| n.to_string())
            .find(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
            .unwrap_or_else(|| "Embedded".to_owned());
        let units_per_em = f32::from(face.units_per_em());
        let scale = |v: i16| (f32::from(v) * 1000.0 / units_per_em).round() as i64;
        let b = face.global_bounding_box();
        let (ascent, descent) = (scale(face.ascender()), scale(face.descender()));
        let cap_height = face.capital_height().map(scale).unwrap_or(ascent);
        let bbox = [scale(b.x_min), scale(b.y_min), scale(b.x_max), scale(b.y_max)];
        Ok(Self { data, postscript_name, units_per_em, ascent, descent, cap_height, bbox })
    }

    fn face(&self) -> Result<ttf_parser::Face<'_>> {
        ttf_parser::Face::parse(&self.data, 0).map_err(|e| Error::Font(format!("not a font: {e}")))
    }

    /// Whether the font has a glyph for `c`.
    pub fn has(&self, c: char) -> bool {
        self.face().is_ok_and(|f| f.glyph_index(c).is_some())
    }
}

/// The glyphs one document uses: what the page's text needs from a [`Font`].
pub(crate) struct Shaper<'a> {
    font: &'a Font,
    face: ttf_parser::Face<'a>,
    remapper: subsetter::GlyphRemapper,
    /// new glyph id → (width in 1/1000 em, the character).
    used: BTreeMap<u16, (i64, char)>,
}

impl<'a> Shaper<'a> {
    pub(crate) fn new(font: &'a Font) -> Result<Self> {
        Ok(Self { font, face: font.face()?, remapper: subsetter::GlyphRemapper::new(), used: BTreeMap::new() })
    }

    /// Width of `text` at `size` points (characters the font lacks count as nothing: they were
    /// refused before layout).
    pub(crate) fn width(&self, text: &str, size: f32) -> f32 {
        text.chars()
            .filter_map(|c| self.face.glyph_index(c))
            .map(|g| f32::from(self.face.glyph_hor_advance(g).unwrap_or(0)) * size / self.font.units_per_em)
            .sum()
    }

    /// `text` as the two-byte codes (the subset's glyph ids) a Tj shows.
    pub(crate) fn encode(&mut self, text: &str) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(text.len() * 2);
        for c in text.chars() {
            let g = self.face.glyph_index(c).ok_or(Error::Font(format!("no glyph for U+{:04X}", u32::from(c))))?;
            let new = self.remapper.remap(g.0);
            let advance = f32::from(self.face.glyph_hor_advance(g).unwrap_or(0));
            self.used.entry(new).or_insert(((advance * 1000.0 / self.font.units_per_em).round() as i64, c));
            out.extend_from_slice(&new.to_be_bytes());
        }
        Ok(out)
    }

    /// Writes the Type 0 font (CIDFontType2 descendant, FontFile2 = the subset, W widths,
    /// ToUnicode) into `doc`; returns the Type 0 font's id.
    pub(crate) fn embed(self, doc: &mut Document) -> Result<ObjectId> {
        let subset = subsetter::subset(&self.font.data, 0, &self.remapper)
            .map_err(|e| Error::Font(format!("subsetting: {e:?}")))?;
        // The subset tag (PDF 32000-1 §9.6.4): six capitals that change with the glyph set.
        let mut h = sha2::Sha256::new();
        for g in self.remapper.remapped_gids() {
            h.update(g.to_be_bytes());
        }
        let tag: String = h.finalize().iter().take(6).map(|b| char::from(b'A' + b % 26)).collect();
        let base_font = format!("{tag}+{}", self.font.postscript_name);

        let mut file = Stream::new(dictionary! { "Length1" => subset.len() as i64 }, subset);
        file.compress().map_err(|e| Error::Pdf(format!("compressing the font: {e}")))?;
        let file_id = doc.add_object(file);
        let f = self.font;
        let descriptor = doc.add_object(dictionary! {
            "Type" => "FontDescriptor",
            "FontName" => Object::Name(base_font.clone().into_bytes()),
            "Flags" => 4,
            "FontBBox" => f.bbox.iter().map(|v| Object::Integer(*v)).collect::<Vec<_>>(),
            "ItalicAngle" => 0,
            "Ascent" => f.ascent,
            "Descent" => f.descent,
            "CapHeight" => f.cap_height,
            "StemV" => 80,
            "FontFile2" => file_id,
        });
        let mut widths = Vec::new();
        for (g, (w, _)) in &self.used {
            widths.push(Object::Integer(i64::from(*g)));
            widths.push(Object::Array(vec![Object::Integer(*w)]));
        }
        let cid_font = doc.add_object(dictionary! {
            "Type" => "Font",
            "Subtype" => "CIDFontType2",
            "BaseFont" => Object::Name(base_font.clone().into_bytes()),
            "CIDSystemInfo" => dictionary! {
                "Registry" => Object::String(b"Adobe".to_vec(), StringFormat::Literal),
                "Ordering" => Object::String(b"Identity".to_vec(), StringFormat::Literal),
                "Supplement" => 0,
            },
            "FontDescriptor" => descriptor,
            "DW" => 1000,
            "W" => widths,
            "CIDToGIDMap" => "Identity",
        });
        let info = pdf_writer::types::SystemInfo {
            registry: pdf_writer::Str(b"Adobe"),
            ordering: pdf_writer::Str(b"Identity"),
            supplement: 0,
        };
        let mut cmap = pdf_writer::types::UnicodeCmap::new(pdf_writer::Name(b"Adobe-Identity-UCS"), info);
        for (g, (_, c)) in &self.used {
            cmap.pair(*g, *c);
        }
        let mut to_unicode = Stream::new(Dictionary::new(), cmap.finish().into_vec());
        to_unicode.compress().map_err(|e| Error::Pdf(format!("compressing the CMap: {e}")))?;
        let to_unicode = doc.add_object(to_unicode);
        Ok(doc.add_object(dictionary! {
            "Type" => "Font",
            "Subtype" => "Type0",
            "BaseFont" => Object::Name(base_font.into_bytes()),
            "Encoding" => "Identity-H",
            "DescendantFonts" => vec![Object::Reference(cid_font)],
            "ToUnicode" => to_unicode,
        }))
    }
}
