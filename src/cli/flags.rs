//! Flags onto config structs, in one place: a command's flag struct serialises with the field
//! names of the library config it sets, and [`apply`] lays the flags that were given over a base
//! (the library's `Default`, or a recipe section). Flag defaults are written as the library
//! default's field (`default_value_t = ScenesConfig::default().train`), so the library's
//! `Default` stays the only place a default is written; the tests check they agree.

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

/// `base` with every flag of `flags` laid over it; flags that were not given (`None`) keep
/// the base's value, and nested flag groups set nested fields.
pub fn apply<C: Serialize + DeserializeOwned>(base: &C, flags: &impl Serialize) -> anyhow::Result<C> {
    let mut value = serde_json::to_value(base)?;
    merge(&mut value, serde_json::to_value(flags)?);
    Ok(serde_json::from_value(value)?)
}

fn merge(base: &mut Value, over: Value) {
    match (base, over) {
        (Value::Object(base), Value::Object(over)) => {
            for (key, value) in over {
                if !value.is_null() {
                    merge(base.entry(key).or_insert(Value::Null), value);
                }
            }
        }
        (base, over) => *base = over,
    }
}

/// A clap value parser for a value the libraries read with serde from a string (enums such as
/// `--select random`, devices, specs): the same spelling as in recipes.
pub fn parse<T: DeserializeOwned>(text: &str) -> Result<T, String> {
    serde_json::from_value(Value::String(text.to_owned())).map_err(|e| e.to_string())
}

/// A clap value parser for numeric flags: "nan" and "inf" parse as floats but are never a
/// setting (serialised they would even vanish into the default).
pub fn finite(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(value) if value.is_finite() => Ok(value),
        Ok(value) => Err(format!("{value} is not a finite number")),
        Err(e) => Err(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Config {
        a: u32,
        b: Option<u32>,
        inner: Inner,
    }

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Inner {
        c: f64,
        d: String,
    }

    #[test]
    fn given_flags_override_and_missing_ones_keep_the_base() {
        let base = Config { a: 1, b: Some(2), inner: Inner { c: 0.5, d: "x".into() } };
        let flags = serde_json::json!({ "a": 7, "b": null, "inner": { "c": 0.25, "d": null } });
        let merged = apply(&base, &flags).expect("merge");
        assert_eq!(merged, Config { a: 7, b: Some(2), inner: Inner { c: 0.25, d: "x".into() } });
        assert!(apply(&base, &serde_json::json!({ "typo": 1 })).is_err(), "unknown flags are errors");
        assert_eq!(parse::<simforge_data::tables::Split>("eval"), Ok(simforge_data::tables::Split::Eval));
        assert!(parse::<simforge_data::tables::Split>("both").is_err());
        assert_eq!(finite("1e-3"), Ok(1e-3));
        assert!(finite("nan").is_err() && finite("-inf").is_err() && finite("x").is_err());
    }
}
