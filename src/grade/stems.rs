//! File names for what students and TAs name: a submission's folder, a suite's test. Each
//! output file (`feedback/<stem>.md`, `results/<stem>/`, `runs/<stem>/<test>-run1.html`) is
//! named by a stem that is a safe file name, never two alike, and the same whoever else is
//! in the class or the shard.

use std::collections::HashSet;

use crate::report::writer::file_stem;

/// Longest stem made from a name (ASCII by then): room is left for a hash, a `-N` suffix
/// and an extension within a file name's 255 bytes.
const MAX_STEM_CHARS: usize = 100;

/// A stem for each of `names`, never two alike: `x y` and `x-y` both make `x-y`, and two
/// students must never share (and overwrite) one `results.json`. A name that is a safe file
/// name already, and the only one so written, keeps it (no classmate can move it); every
/// other name gets a hash of itself (`x-y-1a2b3c4d`; `fallback` and a hash for a name with
/// nothing safe in it), so its file does not depend on who else is graded; only what still
/// clashes (the same folder name from two places, a name crafted to look hashed) is
/// numbered, in the order given.
pub fn unique_stems(names: &[&str], fallback: &str) -> Vec<String> {
    // A file name is at most 255 bytes: a student's 253-character folder name must not stop
    // every other student's feedback from being written.
    let safe: Vec<String> = names
        .iter()
        .map(|name| file_stem(name).chars().take(MAX_STEM_CHARS).collect())
        .collect();
    let once = |name: &str| names.iter().filter(|n| **n == name).count() == 1;
    let mut taken: HashSet<String> = HashSet::new();
    let kept: Vec<bool> = names
        .iter()
        .zip(&safe)
        .map(|(name, safe)| !safe.is_empty() && safe == name && once(name) && taken.insert(safe.clone()))
        .collect();
    names
        .iter()
        .zip(safe)
        .zip(kept)
        .map(|((name, safe), kept)| {
            if kept {
                return safe;
            }
            let readable = if safe.is_empty() { fallback } else { &safe };
            let base = format!("{readable}-{}", short_hash(name.as_bytes()));
            let mut stem = base.clone();
            let mut n = 2;
            while !taken.insert(stem.clone()) {
                stem = format!("{base}-{n}");
                n += 1;
            }
            stem
        })
        .collect()
}

/// Eight hex digits of FNV-1a over `bytes`: the same on every machine and every labrun
/// version, so a name always maps to one file.
fn short_hash(bytes: &[u8]) -> String {
    let hash = bytes.iter().fold(0x811c_9dc5_u32, |hash, &byte| {
        (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193)
    });
    format!("{hash:08x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs_of_two_submissions_never_share_a_file_name() {
        let names = ["x y", "x-y", "x?y", "", "..", "alice", "alice", "alice-2"];
        let stems = unique_stems(&names, "submission");
        let unique: HashSet<&String> = stems.iter().collect();
        assert_eq!(unique.len(), stems.len(), "{stems:?}");
        assert_eq!(stems[1], "x-y");
        assert!(stems[0].starts_with("x-y-") && stems[0].len() == "x-y-".len() + 8);
        assert!(stems[3].starts_with("submission-") && stems[4].starts_with("submission-"));
        // The same folder name twice: neither keeps it, and a classmate's safe `alice-2`
        // keeps its own.
        assert_eq!(stems[7], "alice-2");
        assert!(
            stems[5].starts_with("alice-") && stems[6].starts_with(&stems[5]),
            "{stems:?}"
        );
        // Who else is in the class does not move anyone's file.
        assert_eq!(unique_stems(&["x?y", "x y"], "submission")[1], stems[0]);
        assert_eq!(unique_stems(&["x-y"], "submission"), ["x-y"]);
        // A name crafted to look hashed keeps it; the one it imitates is numbered.
        let crafted = format!("x-y-{}", short_hash(b"x y"));
        let stems = unique_stems(&["x y", &crafted], "submission");
        assert_eq!(stems[1], crafted);
        assert_eq!(stems[0], format!("{crafted}-2"));
    }
}
