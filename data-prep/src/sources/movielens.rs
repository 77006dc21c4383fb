//! MovieLens as GroupLens publishes it: 100K (`u.data`, `u.item`, `u.user`; tab and pipe
//! separated) and 1M/10M (`ratings.dat`, `movies.dat`, `users.dat`; `::` separated), latin-1.

use std::collections::HashMap;
use std::path::Path;

use super::{
    insert_unique, is_id, latin1, parse_rating, parse_timestamp, split_title_year, Catalog, LineReader, RawInteraction, ReadOptions, SourceData, STAR_SCALE,
};
use crate::error::{DataError, Result};
use crate::tables::{Item, User};

/// The genre columns of `u.item`, in file order (also listed in `u.genre`).
const GENRES_100K: [&str; 19] = [
    "unknown",
    "Action",
    "Adventure",
    "Animation",
    "Children's",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
];

/// ML-1M's occupation codes (its README).
const OCCUPATIONS_1M: [&str; 21] = [
    "other",
    "academic/educator",
    "artist",
    "clerical/admin",
    "college/grad student",
    "customer service",
    "doctor/health care",
    "executive/managerial",
    "farmer",
    "homemaker",
    "K-12 student",
    "lawyer",
    "programmer",
    "retired",
    "sales/marketing",
    "scientist",
    "self-employed",
    "technician/engineer",
    "tradesman/craftsman",
    "unemployed",
    "writer",
];

/// Which MovieLens layout a folder holds.
pub fn layout(dir: &Path) -> Option<&'static str> {
    if dir.join("u.data").is_file() {
        Some("100k")
    } else if dir.join("ratings.dat").is_file() {
        Some("dat")
    } else {
        None
    }
}

pub fn read(dir: &Path, options: ReadOptions) -> Result<SourceData> {
    let mut data = SourceData { name: super::detect::dataset_name(dir), ..SourceData::default() };
    match layout(dir) {
        Some("100k") => {
            read_catalogs(&mut data, dir, ["u.item", "u.user"], "|", options, item_100k, user_100k)?;
            read_ratings(&mut data, &dir.join("u.data"), "\t", options)?;
        }
        Some(_) => {
            read_catalogs(&mut data, dir, ["movies.dat", "users.dat"], "::", options, item_dat, user_1m)?;
            read_ratings(&mut data, &dir.join("ratings.dat"), "::", options)?;
        }
        None => {
            return Err(DataError::invalid(dir, "not a MovieLens folder: expected u.data (100K) or ratings.dat (1M/10M)"));
        }
    }
    Ok(data)
}

type ItemParser = fn(&[&str]) -> std::result::Result<(String, Item), String>;
type UserParser = fn(&[&str]) -> std::result::Result<(String, User), String>;

fn read_catalogs(
    data: &mut SourceData,
    dir: &Path,
    [items, users]: [&str; 2],
    sep: &str,
    options: ReadOptions,
    item: ItemParser,
    user: UserParser,
) -> Result<()> {
    let mut files = SourceFiles { skipped_lines: &mut data.skipped_lines, files: &mut data.files };
    read_catalog(&mut data.items, &mut files, &dir.join(items), sep, options, item)?;
    read_catalog(&mut data.users, &mut files, &dir.join(users), sep, options, user)?;
    data.catalog_items = data.items.len() as u64;
    Ok(())
}

fn item_100k(f: &[&str]) -> std::result::Result<(String, Item), String> {
    if f.len() != 24 {
        return Err(format!("24 `|`-separated fields (id|title|release date|video date|url|19 genre flags), found {}", f.len()));
    }
    let (title, year) = split_title_year(f[1]);
    let year = year.or_else(|| f[2].rsplit('-').next().and_then(|y| y.parse().ok()));
    let categories = GENRES_100K.iter().zip(&f[5..]).filter(|(_, flag)| flag.trim() == "1").map(|(g, _)| g.to_string()).collect();
    Ok((f[0].to_owned(), Item { raw_id: f[0].to_owned(), title, year, categories, ..Item::default() }))
}

fn item_dat(f: &[&str]) -> std::result::Result<(String, Item), String> {
    if f.len() != 3 {
        return Err(format!("3 `::`-separated fields (MovieID::Title::Genres), found {}", f.len()));
    }
    let (title, year) = split_title_year(f[1]);
    let categories = f[2].split('|').filter(|g| !g.is_empty() && *g != "(no genres listed)").map(str::to_owned).collect();
    Ok((f[0].to_owned(), Item { raw_id: f[0].to_owned(), title, year, categories, ..Item::default() }))
}

fn user_100k(f: &[&str]) -> std::result::Result<(String, User), String> {
    if f.len() != 5 {
        return Err(format!("5 `|`-separated fields (id|age|gender|occupation|zip), found {}", f.len()));
    }
    let age = f[1].parse().map_err(|_| format!("an integer age, found {:?}", f[1]))?;
    Ok((
        f[0].to_owned(),
        User { raw_id: f[0].to_owned(), age: Some(age), gender: Some(f[2].to_owned()), occupation: Some(f[3].to_owned()), location: Some(f[4].to_owned()) },
    ))
}

fn user_1m(f: &[&str]) -> std::result::Result<(String, User), String> {
    if f.len() != 5 {
        return Err(format!("5 `::`-separated fields (UserID::Gender::Age::Occupation::Zip-code), found {}", f.len()));
    }
    let age = f[2].parse().map_err(|_| format!("an integer age code, found {:?}", f[2]))?;
    let occupation =
        f[3].parse::<usize>().ok().and_then(|code| OCCUPATIONS_1M.get(code)).ok_or_else(|| format!("an occupation code 0-20, found {:?}", f[3]))?;
    Ok((
        f[0].to_owned(),
        User {
            raw_id: f[0].to_owned(),
            age: Some(age),
            gender: Some(f[1].to_owned()),
            occupation: Some((*occupation).to_owned()),
            location: Some(f[4].to_owned()),
        },
    ))
}

/// Splits one record's fields into its raw id and the record, or says what is wrong.
type ParseRecord<T> = fn(&[&str]) -> std::result::Result<(String, T), String>;

/// Reads a catalogue file (items or users) of one record per line into `catalog`; a missing
/// file is allowed (the records then come from the ratings alone).
fn read_catalog<T: Default>(
    catalog: &mut Catalog<T>,
    data_files: &mut SourceFiles,
    path: &Path,
    sep: &str,
    options: ReadOptions,
    parse: ParseRecord<T>,
) -> Result<()> {
    if !path.is_file() {
        tracing::warn!("{}: not found; its records will carry only their ids", path.display());
        return Ok(());
    }
    let mut lines = LineReader::open(path, options)?;
    let mut first_lines = HashMap::new();
    while let Some(bytes) = lines.next_line()? {
        let line = latin1(bytes);
        if line.is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split(sep).collect();
        match parse(&fields) {
            Ok((raw_id, record)) => {
                insert_unique(catalog, &mut first_lines, &lines, &raw_id, || record)?;
            }
            Err(expected) => lines.bad(expected, line.as_str())?,
        }
    }
    *data_files.skipped_lines += lines.skipped;
    data_files.files.push(path.into());
    Ok(())
}

/// The bookkeeping fields of [`SourceData`] a catalogue reader updates.
struct SourceFiles<'a> {
    skipped_lines: &'a mut u64,
    files: &'a mut Vec<std::path::PathBuf>,
}

fn read_ratings(data: &mut SourceData, path: &Path, sep: &str, options: ReadOptions) -> Result<()> {
    let mut lines = LineReader::open(path, options)?;
    while let Some(bytes) = lines.next_line()? {
        if bytes.is_empty() {
            continue;
        }
        let line = latin1(bytes);
        let f: Vec<&str> = line.split(sep).collect();
        if f.len() != 4 {
            lines.bad(format!("4 fields (user{sep}item{sep}rating{sep}timestamp)"), line.clone())?;
            continue;
        }
        let Some(rating) = parse_rating(f[2]).filter(|r| STAR_SCALE.contains(r)) else {
            lines.bad("a rating between 0 and 5 stars in field 3", line.clone())?;
            continue;
        };
        if !is_id(f[0]) || !is_id(f[1]) {
            lines.bad("a user id in field 1 and an item id in field 2", line.clone())?;
            continue;
        }
        let Some(timestamp) = parse_timestamp(f[3]) else {
            lines.bad("a Unix timestamp between 1970 and 2100 in field 4", line.clone())?;
            continue;
        };
        let user = data.user(f[0]);
        let item = data.item(f[1]);
        data.interactions.push(RawInteraction { user, item, timestamp, rating: Some(rating), review: None });
    }
    if data.catalog_items == 0 {
        data.catalog_items = data.items.len() as u64;
    }
    data.skipped_lines += lines.skipped;
    data.files.push(path.into());
    Ok(())
}
