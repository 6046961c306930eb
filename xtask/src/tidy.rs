//! `cargo xtask tidy`: checks of the tree that no compiler makes — every `.rs` file opens with a
//! `//!` line; each crate's SQLite and PostgreSQL migrations define the same tables, columns and
//! indexes; the pure modules forbid the clock reads that clippy.toml lists.
//!
//! The migration check reads the SQL rather than applying it to two databases: tidy then runs
//! in a second with std only (no database, no PostgreSQL cluster, nothing installed), and the
//! migrations are written in a deliberate common subset (CREATE TABLE, ALTER TABLE ADD COLUMN,
//! CREATE INDEX; on PostgreSQL also ALTER TABLE … RENAME TO and partitions, which convert a
//! table without changing its columns) that a small parser models exactly. Any schema statement
//! it does not model (`ALTER TABLE … RENAME COLUMN`, an unknown form) is an error, never skipped, so the model cannot
//! silently drift from the SQL. Applying the migrations to both engines is what every storage
//! test already does (`JPKI_TEST_PG_URL`); what those tests cannot see is a column no code
//! reads yet, or an index present on one engine only — that is what this check catches.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

/// The modules that must stay free of clock reads: the sans-IO cores (docs/ARCHITECTURE.md,
/// review-code-2026-12 §1.2). Each opens with [`FORBID_CLOCK`]; clippy then refuses, in that
/// module and everything inside it, every method clippy.toml's `disallowed-methods` lists, and
/// the `forbid` level means no `#[allow]` inside the module can lift it.
pub const PURE_MODULES: &[&str] = &[
    "identity/src/ids.rs",
    "identity/src/check_digit.rs",
    "identity/src/person.rs",
    "identity/src/notice.rs",
    "identity/src/notice_sig.rs",
    "identity/src/apply.rs",
    "identity/src/law.rs",
    "identity/src/authz.rs",
    "identity/src/window.rs",
    "ca/src/hierarchy.rs",
    "ca/src/profile.rs",
    "ca/src/validity.rs",
    "ca/src/revocation.rs",
    "ca/src/crl.rs",
    "ca/src/mldsa.rs",
    "card/src/apdu.rs",
    "card/src/jpki.rs",
    "card/src/applet.rs",
    "validator/src/ocsp.rs",
    "validator/src/crl_index.rs",
    "validator/src/verify.rs",
    "validator/src/signed_doc.rs",
    "web/src/csrf.rs",
    "web/src/session.rs",
];

/// The attribute every [`PURE_MODULES`] file carries (after its `//!` lines).
pub const FORBID_CLOCK: &str = "#![forbid(clippy::disallowed_methods)]";

/// The clock reads clippy.toml must list under `disallowed-methods`.
pub const CLOCK_READS: &[&str] = &[
    "std::time::SystemTime::now",
    "std::time::Instant::now",
    "time::OffsetDateTime::now_utc",
    "time::OffsetDateTime::now_local",
    "time::UtcDateTime::now",
    "tokio::time::Instant::now",
];

/// Runs every check on the tree at `root`; prints each problem and fails if there is any.
pub fn run(root: &Path) -> anyhow::Result<()> {
    let mut problems = Vec::new();

    let files = rust_files(root)?;
    let mut undocumented = 0;
    for f in &files {
        let text = fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?;
        if !opens_with_doc_line(&text) {
            undocumented += 1;
            problems.push(format!("{}: does not open with a `//!` line", rel(root, f)));
        }
    }
    println!("doc lines: {} .rs files, {undocumented} without an opening `//!` line", files.len());

    let pairs = migration_dirs(root)?;
    if pairs.is_empty() {
        problems.push("no migrations/{sqlite,postgres} folders found".to_owned());
    }
    for dir in &pairs {
        let found = check_migrations(dir)?;
        let (sqlite, _) = load_pair(dir)?;
        println!(
            "migrations: {}: {} tables, {} indexes, {}",
            rel(root, dir),
            sqlite.tables.len(),
            sqlite.indexes.len(),
            if found.is_empty() {
                "SQLite and PostgreSQL agree".to_owned()
            } else {
                format!("{} differences", found.len())
            }
        );
        problems.extend(found.into_iter().map(|p| format!("{}: {p}", rel(root, dir))));
    }

    let clippy = fs::read_to_string(root.join("clippy.toml")).context("reading clippy.toml")?;
    let mut modules = Vec::new();
    for m in PURE_MODULES {
        let text = fs::read_to_string(root.join(m)).with_context(|| format!("reading pure module {m}"))?;
        modules.push((m.to_string(), text));
    }
    let found = check_clock_ban(&clippy, &modules);
    println!(
        "clock reads: {} listed in clippy.toml, {} pure modules forbid them, {} problems",
        CLOCK_READS.len(),
        PURE_MODULES.len(),
        found.len()
    );
    problems.extend(found);

    if problems.is_empty() {
        println!("tidy: ok");
        return Ok(());
    }
    for p in &problems {
        eprintln!("tidy: {p}");
    }
    bail!("{} tidy problem(s)", problems.len())
}

fn rel(root: &Path, p: &Path) -> String {
    p.strip_prefix(root).unwrap_or(p).display().to_string()
}

// ---------------------------------------------------------------------------------------------
// (a) every .rs file opens with `//!`

/// Whether the first line of a Rust file is an inner doc comment.
pub fn opens_with_doc_line(text: &str) -> bool {
    text.trim_start_matches('\u{feff}').lines().next().is_some_and(|l| l.starts_with("//!"))
}

/// Every `.rs` file of the workspace, sorted; `vendor/` at the root and any `target/` or hidden
/// directory are skipped.
pub fn rust_files(root: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    walk(root, root, &mut |p| {
        if p.extension().is_some_and(|e| e == "rs") {
            out.push(p.to_owned());
        }
    })?;
    out.sort();
    Ok(out)
}

fn walk(root: &Path, dir: &Path, f: &mut dyn FnMut(&Path)) -> anyhow::Result<()> {
    let mut entries: Vec<_> =
        fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let path = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        if e.file_type()?.is_dir() {
            let skip = name == "target" || name.starts_with('.') || (dir == root && name == "vendor");
            if !skip {
                walk(root, &path, f)?;
            }
        } else {
            f(&path);
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// (b) SQLite and PostgreSQL migrations define the same schema

/// Every `migrations` folder of the tree with `sqlite/` and `postgres/` inside (a folder with
/// only one of them is reported by [`check_migrations`]).
pub fn migration_dirs(root: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut dirs = BTreeSet::new();
    walk(root, root, &mut |p| {
        if p.extension().is_some_and(|e| e == "sql")
            && let Some(engine) = p.parent()
            && let Some(migrations) = engine.parent()
            && migrations.file_name().is_some_and(|n| n == "migrations")
        {
            dirs.insert(migrations.to_owned());
        }
    })?;
    Ok(dirs.into_iter().collect())
}

/// A column as both engines must agree on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    /// `integer`, `text`, `bytes`, … (engine spellings mapped by [`type_class`]).
    pub class: String,
    /// NOT NULL or part of the primary key.
    pub not_null: bool,
}

impl fmt::Display for Column {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.class, if self.not_null { " not null" } else { "" })
    }
}

/// An index: its table, whether unique, its columns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Index {
    /// The table.
    pub table: String,
    /// UNIQUE.
    pub unique: bool,
    /// Its columns, as written.
    pub columns: String,
}

impl fmt::Display for Index {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}on {} ({})", if self.unique { "unique " } else { "" }, self.table, self.columns)
    }
}

/// The schema a sequence of migrations leaves: table → column → definition (columns in
/// order of definition), and the named indexes.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Schema {
    /// Tables.
    pub tables: BTreeMap<String, Vec<(String, Column)>>,
    /// Named indexes (CREATE INDEX), by name.
    pub indexes: BTreeMap<String, Index>,
}

/// Maps an engine's type name to what both engines must agree on.
pub fn type_class(ty: &str) -> String {
    match ty.to_ascii_uppercase().as_str() {
        "BIGINT" | "INTEGER" | "INT" | "INT8" | "SMALLINT" | "BIGSERIAL" => "integer".into(),
        "TEXT" | "VARCHAR" | "CHAR" => "text".into(),
        "BLOB" | "BYTEA" => "bytes".into(),
        "BOOLEAN" | "BOOL" => "boolean".into(),
        "REAL" | "DOUBLE" | "FLOAT" => "real".into(),
        other => other.to_ascii_lowercase(),
    }
}

/// Splits SQL into statements at `;`, skipping `--` and `/* */` comments and not splitting
/// inside quotes, `$$` bodies (PostgreSQL functions) or a trigger's `BEGIN … END` (SQLite).
/// Each statement comes with the line it starts on.
pub fn statements(sql: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut start_line = 1;
    let mut line = 1;
    let mut chars = sql.chars().peekable();
    let (mut in_quote, mut in_dollar) = (None::<char>, false);
    while let Some(c) = chars.next() {
        if c == '\n' {
            line += 1;
        }
        if let Some(q) = in_quote {
            cur.push(c);
            if c == q {
                in_quote = None;
            }
            continue;
        }
        if in_dollar {
            cur.push(c);
            if c == '$' && chars.peek() == Some(&'$') {
                cur.push('$');
                chars.next();
                in_dollar = false;
            }
            continue;
        }
        match c {
            '-' if chars.peek() == Some(&'-') => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        line += 1;
                        cur.push('\n');
                        break;
                    }
                }
            }
            '/' if chars.peek() == Some(&'*') => {
                chars.next();
                let mut prev = ' ';
                for c in chars.by_ref() {
                    if c == '\n' {
                        line += 1;
                    }
                    if prev == '*' && c == '/' {
                        break;
                    }
                    prev = c;
                }
                cur.push(' ');
            }
            '\'' | '"' => {
                in_quote = Some(c);
                cur.push(c);
            }
            '$' if chars.peek() == Some(&'$') => {
                chars.next();
                cur.push_str("$$");
                in_dollar = true;
            }
            ';' if !in_trigger_body(&cur) => {
                let s = cur.trim();
                if !s.is_empty() {
                    out.push((start_line, s.to_owned()));
                }
                cur.clear();
                start_line = line;
            }
            _ => {
                if cur.trim().is_empty() && !c.is_whitespace() {
                    start_line = line;
                }
                cur.push(c);
            }
        }
    }
    let s = cur.trim();
    if !s.is_empty() {
        out.push((start_line, s.to_owned()));
    }
    out
}

/// Inside a SQLite `CREATE TRIGGER … BEGIN` whose `END` has not come yet.
fn in_trigger_body(stmt: &str) -> bool {
    let words = words(stmt);
    let upper: Vec<String> = words.iter().map(|w| w.to_ascii_uppercase()).collect();
    let is_trigger = upper.first().is_some_and(|w| w == "CREATE")
        && upper.iter().take(4).any(|w| w == "TRIGGER")
        && upper.iter().any(|w| w == "BEGIN");
    is_trigger && upper.last().is_none_or(|w| w != "END")
}

/// Whitespace- and parenthesis-separated words.
fn words(s: &str) -> Vec<&str> {
    s.split(|c: char| c.is_whitespace() || c == '(' || c == ')' || c == ',').filter(|w| !w.is_empty()).collect()
}

/// The position of the `)` closing the `(` at `open`.
fn matching_paren(s: &str, open: usize) -> Option<usize> {
    let mut depth = 0i32;
    for (i, c) in s.char_indices().skip_while(|(i, _)| *i < open) {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

/// Splits at commas outside parentheses.
fn top_level_commas(s: &str) -> Vec<String> {
    let (mut depth, mut cur, mut out) = (0i32, String::new(), Vec::new());
    for c in s.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(std::mem::take(&mut cur).trim().to_owned());
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    if !cur.trim().is_empty() {
        out.push(cur.trim().to_owned());
    }
    out
}

fn unquote(ident: &str) -> String {
    ident.trim_matches('"').to_owned()
}

/// A column definition (`name TYPE constraints…`).
fn column(def: &str) -> anyhow::Result<(String, Column)> {
    let w = words(def);
    let (Some(name), Some(ty)) = (w.first(), w.get(1)) else { bail!("cannot read column definition `{def}`") };
    let upper = def.to_ascii_uppercase();
    let not_null = upper.contains("NOT NULL") || upper.contains("PRIMARY KEY");
    Ok((unquote(name), Column { class: type_class(ty), not_null }))
}

/// Applies one migration file's statements to `schema`. Statements that change no table,
/// column or index (triggers, functions, UPDATE, INSERT, …) are ignored; a table-changing
/// statement this model does not know is an error naming its line.
pub fn apply(schema: &mut Schema, file: &str, sql: &str) -> anyhow::Result<()> {
    for (line, stmt) in statements(sql) {
        apply_one(schema, &stmt).with_context(|| format!("{file}:{line}: `{}`", first_line(&stmt)))?;
    }
    Ok(())
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or(s)
}

fn apply_one(schema: &mut Schema, stmt: &str) -> anyhow::Result<()> {
    let w = words(stmt);
    let up: Vec<String> = w.iter().map(|s| s.to_ascii_uppercase()).collect();
    let up: Vec<&str> = up.iter().map(String::as_str).collect();
    // `IF NOT EXISTS` / `IF EXISTS` after the object keyword: the name is after it.
    let name_after = |i: usize| -> Option<String> {
        let skip = match (up.get(i), up.get(i + 1), up.get(i + 2)) {
            (Some(&"IF"), Some(&"NOT"), Some(&"EXISTS")) => 3,
            (Some(&"IF"), Some(&"EXISTS"), _) => 2,
            _ => 0,
        };
        w.get(i + skip).map(|n| unquote(n))
    };
    match up.as_slice() {
        ["CREATE", "TABLE", ..] | ["CREATE", "TEMP" | "TEMPORARY" | "UNLOGGED", "TABLE", ..] => {
            let at = up.iter().position(|w| *w == "TABLE").unwrap_or(1);
            let name = name_after(at + 1).context("CREATE TABLE without a name")?;
            let if_not_exists = up.get(at + 1) == Some(&"IF");
            let after_name = at + 2 + if if_not_exists { 3 } else { 0 };
            if up.get(after_name) == Some(&"AS") {
                bail!("CREATE TABLE … AS SELECT is not modelled");
            }
            // A partition (PostgreSQL `CREATE TABLE p PARTITION OF t …`) is storage of `t`, with
            // `t`'s columns and indexes: it adds nothing to the schema both engines share.
            if up.get(after_name) == Some(&"PARTITION") && up.get(after_name + 1) == Some(&"OF") {
                let parent = w.get(after_name + 2).map(|n| unquote(n)).context("PARTITION OF without a table")?;
                if !schema.tables.contains_key(&parent) {
                    bail!("partition {name} of {parent}: no such table");
                }
                return Ok(());
            }
            let open = stmt.find('(').context("CREATE TABLE without a column list")?;
            // The column list ends at the parenthesis matching its opening one: a PostgreSQL
            // `PARTITION BY HASH (col)` after it is the table's storage, not its columns.
            let close = matching_paren(stmt, open).context("CREATE TABLE without a closing parenthesis")?;
            let mut cols = Vec::new();
            let mut pk = Vec::new();
            for def in top_level_commas(&stmt[open + 1..close]) {
                let first = words(&def).first().map(|w| w.to_ascii_uppercase()).unwrap_or_default();
                match first.as_str() {
                    "PRIMARY" => {
                        let inner = &def[def.find('(').context("PRIMARY KEY without columns")? + 1
                            ..def.rfind(')').context("PRIMARY KEY without columns")?];
                        pk.extend(inner.split(',').map(|c| unquote(c.trim())));
                    }
                    "UNIQUE" | "FOREIGN" | "CHECK" | "CONSTRAINT" => {}
                    _ => cols.push(column(&def)?),
                }
            }
            for (name, c) in &mut cols {
                if pk.contains(name) {
                    c.not_null = true;
                }
            }
            match schema.tables.entry(name) {
                std::collections::btree_map::Entry::Occupied(e) if !if_not_exists => {
                    bail!("table {} is created twice", e.key())
                }
                std::collections::btree_map::Entry::Occupied(_) => {}
                std::collections::btree_map::Entry::Vacant(e) => {
                    e.insert(cols);
                }
            }
        }
        ["DROP", "TABLE", ..] => {
            let name = name_after(2).context("DROP TABLE without a name")?;
            if schema.tables.remove(&name).is_none() && up.get(2) != Some(&"IF") {
                bail!("DROP TABLE {name}: no such table");
            }
            schema.indexes.retain(|_, i| i.table != name);
        }
        ["ALTER", "TABLE", ..] => {
            let mut i = 2;
            if up.get(i) == Some(&"IF") && up.get(i + 1) == Some(&"EXISTS") {
                i += 2;
            }
            if up.get(i) == Some(&"ONLY") {
                i += 1;
            }
            let table = w.get(i).map(|n| unquote(n)).context("ALTER TABLE without a name")?;
            let rest = &up[i + 1..];
            let cols = schema.tables.get_mut(&table).with_context(|| format!("ALTER TABLE {table}: no such table"))?;
            match rest {
                ["ADD", "COLUMN", ..] | ["ADD", ..]
                    if !matches!(rest.get(1), Some(&("CONSTRAINT" | "PRIMARY" | "UNIQUE" | "FOREIGN" | "CHECK"))) =>
                {
                    let skip = if rest.get(1) == Some(&"COLUMN") { 2 } else { 1 };
                    let def = w[i + 1 + skip..].join(" ");
                    let (name, c) = column(&def)?;
                    if cols.iter().any(|(n, _)| *n == name) {
                        bail!("column {table}.{name} is added twice");
                    }
                    cols.push((name, c));
                }
                ["DROP", "COLUMN", ..] | ["DROP", ..] if !matches!(rest.get(1), Some(&"CONSTRAINT")) => {
                    let skip = if rest.get(1) == Some(&"COLUMN") { 2 } else { 1 };
                    let name = w.get(i + 1 + skip).map(|n| unquote(n)).context("DROP COLUMN without a name")?;
                    let before = cols.len();
                    cols.retain(|(n, _)| *n != name);
                    if cols.len() == before {
                        bail!("DROP COLUMN {table}.{name}: no such column");
                    }
                }
                // Trigger switches (PostgreSQL) change no table, column or index.
                ["DISABLE" | "ENABLE", "TRIGGER", ..] => {}
                // A constraint's name is not part of the modelled schema.
                ["RENAME", "CONSTRAINT", ..] => {}
                // A table renamed keeps its columns and its indexes.
                ["RENAME", "TO", ..] => {
                    let to = w.get(i + 3).map(|n| unquote(n)).context("RENAME TO without a name")?;
                    let cols = schema.tables.remove(&table).unwrap_or_default();
                    if schema.tables.insert(to.clone(), cols).is_some() {
                        bail!("RENAME TO {to}: that table exists");
                    }
                    for index in schema.indexes.values_mut().filter(|i| i.table == table) {
                        index.table.clone_from(&to);
                    }
                }
                _ => bail!(
                    "this ALTER TABLE form is not modelled by xtask/src/tidy.rs (teach it, or write the migration with ADD/DROP COLUMN)"
                ),
            }
        }
        ["CREATE", "INDEX", ..] | ["CREATE", "UNIQUE", "INDEX", ..] => {
            let unique = up[1] == "UNIQUE";
            let at = if unique { 2 } else { 1 };
            let name = name_after(at + 1).context("an index needs a name")?;
            let on = up.iter().position(|w| *w == "ON").context("CREATE INDEX without ON")?;
            let table = w.get(on + 1).map(|n| unquote(n)).context("CREATE INDEX without a table")?;
            let open = stmt.find('(').context("CREATE INDEX without columns")?;
            let close = stmt.rfind(')').context("CREATE INDEX without columns")?;
            let columns = top_level_commas(&stmt[open + 1..close]).join(", ");
            if !schema.tables.contains_key(&table) {
                bail!("CREATE INDEX {name} ON {table}: no such table");
            }
            let if_not_exists = up.get(at + 1) == Some(&"IF");
            if schema.indexes.contains_key(&name) && !if_not_exists {
                bail!("index {name} is created twice");
            }
            schema.indexes.entry(name).or_insert(Index { table, unique, columns });
        }
        ["DROP", "INDEX", ..] => {
            let name = name_after(2).context("DROP INDEX without a name")?;
            if schema.indexes.remove(&name).is_none() && up.get(2) != Some(&"IF") {
                bail!("DROP INDEX {name}: no such index");
            }
        }
        ["CREATE" | "DROP" | "ALTER", _, "TABLE", ..] => bail!("this statement on a table is not modelled"),
        ["RENAME" | "TRUNCATE", ..] => bail!("this statement is not modelled"),
        _ => {}
    }
    Ok(())
}

/// The migrations of one engine, in version order (the number before the first `_`).
fn ordered_files(dir: &Path) -> anyhow::Result<Vec<(String, String)>> {
    let mut files = Vec::new();
    if !dir.is_dir() {
        return Ok(files);
    }
    for e in fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let p = e?.path();
        if p.extension().is_some_and(|x| x == "sql") {
            let name = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            files.push((name, fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))?));
        }
    }
    let version = |n: &str| n.split('_').next().and_then(|v| v.parse::<u64>().ok()).unwrap_or(u64::MAX);
    files.sort_by(|a, b| version(&a.0).cmp(&version(&b.0)).then(a.0.cmp(&b.0)));
    Ok(files)
}

fn load_pair(dir: &Path) -> anyhow::Result<(Schema, Schema)> {
    let mut out = [Schema::default(), Schema::default()];
    for (engine, schema) in ["sqlite", "postgres"].iter().zip(out.iter_mut()) {
        for (name, sql) in ordered_files(&dir.join(engine))? {
            apply(schema, &format!("{engine}/{name}"), &sql)?;
        }
    }
    let [s, p] = out;
    Ok((s, p))
}

/// Compares the SQLite and PostgreSQL migrations of one `migrations` folder: the same file
/// names (versions), and after applying them the same tables, columns and indexes. Returns
/// the differences, one line each; a statement the parser refuses is an error.
pub fn check_migrations(dir: &Path) -> anyhow::Result<Vec<String>> {
    let names = |engine: &str| -> anyhow::Result<BTreeSet<String>> {
        Ok(ordered_files(&dir.join(engine))?.into_iter().map(|(n, _)| n).collect())
    };
    let (s_names, p_names) = (names("sqlite")?, names("postgres")?);
    let mut out = Vec::new();
    for n in s_names.difference(&p_names) {
        out.push(format!("migration {n} is in sqlite/ but not in postgres/"));
    }
    for n in p_names.difference(&s_names) {
        out.push(format!("migration {n} is in postgres/ but not in sqlite/"));
    }
    let (sqlite, postgres) = load_pair(dir)?;
    out.extend(diff(&sqlite, &postgres));
    Ok(out)
}

/// The differences between the SQLite and the PostgreSQL schema, one line each.
pub fn diff(sqlite: &Schema, postgres: &Schema) -> Vec<String> {
    let mut out = Vec::new();
    let tables: BTreeSet<&String> = sqlite.tables.keys().chain(postgres.tables.keys()).collect();
    for t in tables {
        match (sqlite.tables.get(t), postgres.tables.get(t)) {
            (Some(_), None) => out.push(format!("table {t}: only in SQLite")),
            (None, Some(_)) => out.push(format!("table {t}: only in PostgreSQL")),
            (Some(s), Some(p)) => {
                let names: BTreeSet<&String> = s.iter().chain(p.iter()).map(|(n, _)| n).collect();
                let find =
                    |cols: &[(String, Column)], n: &str| cols.iter().find(|(c, _)| c == n).map(|(_, c)| c.clone());
                for n in names {
                    match (find(s, n), find(p, n)) {
                        (Some(a), None) => out.push(format!("table {t}: column {n} ({a}) only in SQLite")),
                        (None, Some(b)) => out.push(format!("table {t}: column {n} ({b}) only in PostgreSQL")),
                        (Some(a), Some(b)) if a != b => {
                            out.push(format!("table {t}: column {n} is {a} in SQLite but {b} in PostgreSQL"));
                        }
                        _ => {}
                    }
                }
            }
            (None, None) => {}
        }
    }
    let indexes: BTreeSet<&String> = sqlite.indexes.keys().chain(postgres.indexes.keys()).collect();
    for i in indexes {
        match (sqlite.indexes.get(i), postgres.indexes.get(i)) {
            (Some(a), None) => out.push(format!("index {i} ({a}): only in SQLite")),
            (None, Some(b)) => out.push(format!("index {i} ({b}): only in PostgreSQL")),
            (Some(a), Some(b)) if a != b => out.push(format!("index {i}: {a} in SQLite but {b} in PostgreSQL")),
            _ => {}
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// (c) no clock reads in the pure modules

/// clippy.toml lists every [`CLOCK_READS`] path under `disallowed-methods`, and every pure
/// module (path, text) carries [`FORBID_CLOCK`] among its leading inner attributes.
pub fn check_clock_ban(clippy_toml: &str, modules: &[(String, String)]) -> Vec<String> {
    let mut out = Vec::new();
    let listed = clippy_toml.split_once("disallowed-methods").map(|(_, rest)| rest).unwrap_or("");
    for path in CLOCK_READS {
        if !listed.contains(&format!("\"{path}\"")) {
            out.push(format!("clippy.toml: `{path}` is not in disallowed-methods"));
        }
    }
    for (path, text) in modules {
        // The attribute must come before the first item: only `//!` lines, blank lines and
        // other inner attributes may precede it.
        let head: Vec<&str> = text
            .lines()
            .map(str::trim)
            .take_while(|l| l.is_empty() || l.starts_with("//!") || l.starts_with("#!["))
            .collect();
        if !head.contains(&FORBID_CLOCK) {
            out.push(format!("{path}: a pure module must open with `{FORBID_CLOCK}` (after its `//!` lines)"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema(files: &[&str]) -> Schema {
        let mut s = Schema::default();
        for (i, f) in files.iter().enumerate() {
            apply(&mut s, &format!("{i}.sql"), f).unwrap();
        }
        s
    }

    #[test]
    fn doc_line_must_be_the_first_line() {
        assert!(opens_with_doc_line("//! What this is.\nfn main() {}\n"));
        assert!(!opens_with_doc_line("// A plain comment.\n//! Too late.\n"));
        assert!(!opens_with_doc_line("\n//! After a blank line.\n"));
        assert!(!opens_with_doc_line("/// An outer doc comment.\nfn f() {}\n"));
        assert!(!opens_with_doc_line(""));
    }

    #[test]
    fn rust_files_skip_target_vendor_and_hidden_dirs() {
        let root = std::env::temp_dir().join(format!("tidy-walk-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        for d in ["a/src", "a/target/debug", "vendor/x", ".git", "a/vendor"] {
            fs::create_dir_all(root.join(d)).unwrap();
        }
        for f in ["a/src/lib.rs", "a/target/debug/gen.rs", "vendor/x/lib.rs", ".git/x.rs", "a/vendor/kept.rs"] {
            fs::write(root.join(f), "fn f() {}\n").unwrap();
        }
        let found: Vec<String> = rust_files(&root).unwrap().iter().map(|p| rel(&root, p)).collect();
        assert_eq!(found, ["a/src/lib.rs", "a/vendor/kept.rs"]);
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn statements_respect_comments_quotes_functions_and_triggers() {
        let sql = "-- a comment; not a statement\nCREATE TABLE t (a TEXT); /* x; y */\n\
            CREATE FUNCTION f() RETURNS trigger LANGUAGE plpgsql AS $$\nBEGIN RAISE EXCEPTION 'no; never'; END $$;\n\
            CREATE TRIGGER t_no_update BEFORE UPDATE ON t\nBEGIN SELECT RAISE(ABORT, 'a;b'); END;\n\
            INSERT INTO t VALUES ('--;');\n";
        let s = statements(sql);
        assert_eq!(s.len(), 4, "{s:#?}");
        assert_eq!(s[0], (2, "CREATE TABLE t (a TEXT)".to_owned()));
        assert!(s[1].1.starts_with("CREATE FUNCTION") && s[1].1.ends_with("END $$"));
        assert!(s[2].1.starts_with("CREATE TRIGGER") && s[2].1.ends_with("END"));
        assert_eq!(s[2].0, 5);
        assert_eq!(s[3].1, "INSERT INTO t VALUES ('--;')");
    }

    #[test]
    fn engines_spellings_of_one_schema_agree() {
        let sqlite = schema(&[
            "CREATE TABLE log (id INTEGER PRIMARY KEY AUTOINCREMENT, body BLOB NOT NULL, note TEXT);\n\
             CREATE TABLE k (a TEXT NOT NULL, b BIGINT NOT NULL, PRIMARY KEY (a, b));\n\
             CREATE INDEX log_note ON log (note);",
            "ALTER TABLE log ADD COLUMN seq BIGINT NOT NULL DEFAULT 0;\n\
             DROP TRIGGER x; UPDATE log SET seq = 1;",
        ]);
        let postgres = schema(&[
            "CREATE TABLE log (id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, body BYTEA NOT NULL, note TEXT);\n\
             CREATE TABLE k (a TEXT NOT NULL, b BIGINT NOT NULL, PRIMARY KEY (a, b));\n\
             CREATE INDEX log_note ON log (note);",
            "ALTER TABLE log ADD COLUMN seq BIGINT NOT NULL DEFAULT 0;\n\
             ALTER TABLE log DISABLE TRIGGER x; ALTER TABLE log ENABLE TRIGGER x;",
        ]);
        assert_eq!(diff(&sqlite, &postgres), Vec::<String>::new());
        assert_eq!(sqlite.tables["log"].len(), 4);
    }

    #[test]
    fn a_missing_or_different_column_or_index_is_named() {
        let sqlite = schema(&[
            "CREATE TABLE t (a TEXT NOT NULL, b BLOB, c BIGINT);\nCREATE TABLE only_here (x TEXT);\n\
             CREATE INDEX t_a ON t (a);",
            "ALTER TABLE t ADD COLUMN d BIGINT;",
        ]);
        let postgres = schema(&["CREATE TABLE t (a TEXT, b TEXT, c BIGINT);\nCREATE UNIQUE INDEX t_a ON t (a);"]);
        let d = diff(&sqlite, &postgres);
        assert_eq!(
            d,
            [
                "table only_here: only in SQLite",
                "table t: column a is text not null in SQLite but text in PostgreSQL",
                "table t: column b is bytes in SQLite but text in PostgreSQL",
                "table t: column d (integer) only in SQLite",
                "index t_a: on t (a) in SQLite but unique on t (a) in PostgreSQL",
            ]
        );
    }

    #[test]
    fn unmodelled_or_impossible_statements_are_errors() {
        for bad in [
            "CREATE TABLE t (a TEXT); ALTER TABLE t RENAME COLUMN a TO b;",
            "CREATE TABLE t (a TEXT); CREATE TABLE u (a TEXT); ALTER TABLE t RENAME TO u;",
            "CREATE TABLE p PARTITION OF nowhere DEFAULT;",
            "ALTER TABLE nowhere ADD COLUMN a TEXT;",
            "CREATE TABLE t (a TEXT); CREATE TABLE t (a TEXT);",
            "CREATE TABLE t (a TEXT); ALTER TABLE t ADD COLUMN a TEXT;",
            "CREATE INDEX i ON nowhere (a);",
            "CREATE TABLE t (a TEXT); ALTER TABLE t DROP COLUMN b;",
            "CREATE TABLE t AS SELECT 1 AS a;",
            "CREATE VIRTUAL TABLE t USING fts5(a);",
        ] {
            let err = apply(&mut Schema::default(), "bad.sql", bad).unwrap_err();
            assert!(format!("{err:#}").contains("bad.sql:1"), "{bad}: {err:#}");
        }
        // IF NOT EXISTS twice is fine (the validator's migration is written that way).
        let s = schema(&["CREATE TABLE IF NOT EXISTS t (a TEXT);", "CREATE TABLE IF NOT EXISTS t (a TEXT);"]);
        assert_eq!(s.tables.len(), 1);
    }

    /// PostgreSQL's conversion of a populated table into a partitioned one (identity's 1013)
    /// leaves the schema an unpartitioned SQLite table has: renamed away, recreated with
    /// `PARTITION BY`, partitions added, copied, dropped, indexes made again.
    #[test]
    fn a_table_converted_to_partitions_is_the_same_table() {
        let sqlite = schema(&["CREATE TABLE t (a TEXT PRIMARY KEY, b BIGINT NOT NULL);\nCREATE INDEX t_b ON t (b);"]);
        let postgres = schema(&[
            "CREATE TABLE t (a TEXT PRIMARY KEY, b BIGINT NOT NULL);\nCREATE INDEX t_b ON t (b);",
            "DROP INDEX t_b; ALTER TABLE t RENAME TO t_old; ALTER TABLE t_old RENAME CONSTRAINT t_pkey TO t_old_pkey;\n\
             CREATE TABLE t (a TEXT NOT NULL, b BIGINT NOT NULL, PRIMARY KEY (a)) PARTITION BY HASH (a);\n\
             CREATE TABLE t_h0 PARTITION OF t FOR VALUES WITH (MODULUS 2, REMAINDER 0);\n\
             CREATE TABLE t_d PARTITION OF t DEFAULT;\n\
             INSERT INTO t SELECT * FROM t_old; DROP TABLE t_old; CREATE INDEX t_b ON t (b);",
        ]);
        assert_eq!(diff(&sqlite, &postgres), Vec::<String>::new());
        // Renamed away and never dropped: the old table is still there, with its index.
        let left = schema(&["CREATE TABLE t (a TEXT);\nCREATE INDEX t_a ON t (a);", "ALTER TABLE t RENAME TO t_old;"]);
        assert_eq!(left.tables.keys().collect::<Vec<_>>(), ["t_old"]);
        assert_eq!(left.indexes["t_a"].table, "t_old");
    }

    #[test]
    fn migration_folders_must_hold_the_same_files() {
        let dir = std::env::temp_dir().join(format!("tidy-mig-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("sqlite")).unwrap();
        fs::create_dir_all(dir.join("postgres")).unwrap();
        fs::write(dir.join("sqlite/0001_a.sql"), "CREATE TABLE t (a TEXT, b BLOB);").unwrap();
        fs::write(dir.join("postgres/0001_a.sql"), "CREATE TABLE t (a TEXT, b BYTEA);").unwrap();
        assert_eq!(check_migrations(&dir).unwrap(), Vec::<String>::new());
        fs::write(dir.join("sqlite/0002_b.sql"), "ALTER TABLE t ADD COLUMN c TEXT;").unwrap();
        assert_eq!(
            check_migrations(&dir).unwrap(),
            ["migration 0002_b.sql is in sqlite/ but not in postgres/", "table t: column c (text) only in SQLite"]
        );
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn clock_ban_needs_the_list_and_the_attribute() {
        let toml: String = CLOCK_READS.iter().map(|p| format!("{{ path = \"{p}\" }},\n")).collect();
        let toml = format!("disallowed-methods = [\n{toml}]\n");
        let good = ("m.rs".to_owned(), format!("//! Pure.\n\n{FORBID_CLOCK}\n\nuse std::fmt;\n"));
        assert_eq!(check_clock_ban(&toml, std::slice::from_ref(&good)), Vec::<String>::new());

        let late = ("late.rs".to_owned(), format!("//! Pure.\nuse std::fmt;\n{FORBID_CLOCK}\n"));
        let none = ("none.rs".to_owned(), "//! Pure.\nuse std::fmt;\n".to_owned());
        let short = toml.replace("\"std::time::Instant::now\"", "\"std::time::Instant::elapsed\"");
        let found = check_clock_ban(&short, &[good, late, none]);
        assert_eq!(found.len(), 3, "{found:#?}");
        assert!(found[0].contains("std::time::Instant::now"));
        assert!(found[1].starts_with("late.rs") && found[2].starts_with("none.rs"));
    }
}
