//! The seeded mutator of the mangled-input tests (data-prep's readers, trainer's model
//! folders), included by both with `#[path]`.

use simforge_data::rng::Rng;

/// How many cases a mangled-input test runs: 60 in CI, `SIMFORGE_FUZZ_CASES` for longer runs.
pub fn cases() -> usize {
    std::env::var("SIMFORGE_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(60)
}

/// `valid` with a few random edits: byte flips, inserted separators, digits and odd bytes,
/// deleted spans, or a cut end.
pub fn mangle(valid: &[u8], rng: &mut Rng) -> Vec<u8> {
    const SPICE: &[u8] = b"\t\n:|,{}[]\"-.e0123456789 \x00\xff\xe9";
    let mut bytes = valid.to_vec();
    for _ in 0..1 + rng.below(6) {
        if bytes.is_empty() {
            break;
        }
        let at = rng.below(bytes.len());
        match rng.below(4) {
            0 => bytes[at] = rng.below(256) as u8,
            1 => bytes.insert(at, SPICE[rng.below(SPICE.len())]),
            2 => drop(bytes.drain(at..(at + rng.below(20)).min(bytes.len()))),
            _ => bytes.truncate(at),
        }
    }
    bytes
}
