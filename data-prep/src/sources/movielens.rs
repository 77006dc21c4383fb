//! MovieLens as GroupLens publishes it: 100K (`u.data`, `u.item`, `u.user`; tab and pipe
//! separated) and 1M/10M (`ratings.dat`, `movies.dat`, `users.dat`; `::` separated), latin-1.

use std::collections::HashMap;
use std::path::Path;

use super::{insert_unique, latin1, parse_rating, parse_timestamp, split_title_year, LineReader, RawInteraction, ReadOptions, SourceData};
use crate::error::{DataError, Result};
use crate::tables::{Item, User};

/// The genre columns of `u.item`, in file order (also listed in `u.genre`).
const GENRES_100K: [&str; 19] = [
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama", "Fantasy",
    "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western",
];

/// ML-1M's occupation codes (its README).
const OCCUPATIONS_1M: [&str; 21] = [
    "other", "academic/educator", "artist", "clerical/admin", "college/grad student", "customer service",
    "doctor/health care", "executive/managerial", "farmer", "homemaker", "K-12 student", "lawyer", "programmer",
    "retired", "sales/marketing", "scientist", "self-employed", "technician/engineer", "tradesman/craftsman",
    "unemployed", "writer",
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
            read_catalog(&mut data, &dir.join("u.item"), "|", options, item_100k)?;
            read_users(&mut data, &dir.join("u.user"), "|", options, user_100k)?;
            read_ratings(&mut data, &dir.join("u.data"), "\t", options)?;
        }
        Some(_) => {
            read_catalog(&mut data, &dir.join("movies.dat"), "::", options, item_dat)?;
            read_users(&mut data, &dir.join("users.dat"), "::", options, user_1m)?;
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
        User {
            raw_id: f[0].to_owned(),
            age: Some(age),
            gender: Some(f[2].to_owned()),
            occupation: Some(f[3].to_owned()),
            location: Some(f[4].to_owned()),
        },
    ))
}

fn user_1m(f: &[&str]) -> std::result::Result<(String, User), String> {
    if f.len() != 5 {
        return Err(format!("5 `::`-separated fields (UserID::Gender::Age::Occupation::Zip-code), found {}", f.len()));
    }
    let age = f[2].parse().map_err(|_| format!("an integer age code, found {:?}", f[2]))?;
    let occupation = f[3]
        .parse::<usize>()
        .ok()
        .and_then(|code| OCCUPATIONS_1M.get(code))
        .ok_or_else(|| format!("an occupation code 0-20, found {:?}", f[3]))?;
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

fn read_catalog(data: &mut SourceData, path: &Path, sep: &str, options: ReadOptions, parse: ItemParser) -> Result<()> {
    if !path.is_file() {
        tracing::warn!("{}: no item file; titles will be the raw ids", path.display());
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
            Ok((raw_id, item)) => {
                insert_unique(&mut data.items, &mut first_lines, &lines, &raw_id, || item)?;
            }
            Err(expected) => lines.bad(expected, line.clone())?,
        }
    }
    data.catalog_items = data.items.len() as u64;
    data.skipped_lines += lines.skipped;
    data.files.push(path.into());
    Ok(())
}

fn read_users(data: &mut SourceData, path: &Path, sep: &str, options: ReadOptions, parse: UserParser) -> Result<()> {
    if !path.is_file() {
        tracing::warn!("{}: no user file; users get no attributes", path.display());
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
            Ok((raw_id, user)) => {
                insert_unique(&mut data.users, &mut first_lines, &lines, &raw_id, || user)?;
            }
            Err(expected) => lines.bad(expected, line.clone())?,
        }
    }
    data.skipped_lines += lines.skipped;
    data.files.push(path.into());
    Ok(())
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
        let Some(rating) = parse_rating(f[2]) else {
            lines.bad("a numeric rating in field 3", line.clone())?;
            continue;
        };
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
