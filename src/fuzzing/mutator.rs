//! A small deterministic mutator and the bounded runner that `cargo test` uses.
//!
//! Why hand-written rather than bolero or proptest: no new dependency (CI builds with
//! `--locked`, and the tests stay fast to compile), fully reproducible (a fixed seed; a
//! failing input is written to a file and named with its iteration), and the mutations are
//! the ones that reach deep in these parsers within a few thousand inputs: start from a
//! valid input and flip bits, edit length fields, cut, splice and insert dictionary tokens.
//! Random bytes alone die at the first length check. Coverage-guided search is cargo-fuzz's
//! job (`fuzz/`), which runs the same entry points.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// xorshift64*: deterministic, dependency-free, good enough to pick mutations.
#[derive(Clone, Debug)]
pub struct Mutator(u64);

impl Mutator {
    pub fn new(seed: u64) -> Mutator {
        Mutator(seed | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next_u64() % n as u64) as usize
        }
    }

    /// True once in `n` calls on average.
    pub fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }

    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next_u64() as u8).collect()
    }

    /// One new input: a seed (or, once in 32, random bytes) with 1 to 8 mutations.
    pub fn mutate(&mut self, seeds: &[Vec<u8>], dict: &[&[u8]], max_len: usize) -> Vec<u8> {
        if seeds.is_empty() || self.one_in(32) {
            let n = self.below(max_len.min(512) + 1);
            return self.bytes(n);
        }
        let mut m = seeds[self.below(seeds.len())].clone();
        let rounds = if self.one_in(8) {
            1 + self.below(8)
        } else {
            1 + self.below(3)
        };
        for _ in 0..rounds {
            self.mutate_once(&mut m, seeds, dict);
        }
        m.truncate(max_len);
        m
    }

    fn interesting(&mut self, len: usize, at: usize, current: u64) -> u64 {
        let v: [u64; 24] = [
            0,
            1,
            2,
            3,
            4,
            8,
            16,
            20,
            24,
            28,
            32,
            127,
            128,
            224,
            255,
            256,
            0x7fff,
            0xffff,
            0x1_0000,
            0x7fff_ffff,
            u32::MAX as u64,
            len as u64,
            len.saturating_sub(at) as u64,
            current,
        ];
        let base = v[self.below(v.len())];
        match self.below(4) {
            0 => base.wrapping_add(1),
            1 => base.wrapping_sub(1),
            2 => base.wrapping_add(4),
            _ => base,
        }
    }

    fn mutate_once(&mut self, m: &mut Vec<u8>, seeds: &[Vec<u8>], dict: &[&[u8]]) {
        let len = m.len();
        let choice = if len == 0 { 6 } else { self.below(12) };
        match choice {
            // Bit flip.
            0 => {
                let at = self.below(len);
                m[at] ^= 1 << self.below(8);
            }
            // An interesting or random byte.
            1 => {
                let at = self.below(len);
                const B: [u8; 10] = [0, 1, 0x7f, 0x80, 0xff, 0x20, 0x0a, b'"', b':', b'-'];
                m[at] = if self.one_in(2) {
                    B[self.below(B.len())]
                } else {
                    self.next_u64() as u8
                };
            }
            // Small arithmetic on a byte.
            2 => {
                let at = self.below(len);
                let d = 1 + self.below(16) as u8;
                m[at] = if self.one_in(2) {
                    m[at].wrapping_add(d)
                } else {
                    m[at].wrapping_sub(d)
                };
            }
            // A length field: 16 or 32 bits, big- or little-endian (IKE and RADIUS are
            // big-endian, netlink is the host's order).
            3 | 4 => {
                let width = if self.one_in(2) { 2 } else { 4 };
                if len < width {
                    return;
                }
                let at = self.below(len - width + 1);
                let be = self.one_in(2);
                let field = &mut m[at..at + width];
                let current = if width == 2 {
                    let a = [field[0], field[1]];
                    u64::from(if be {
                        u16::from_be_bytes(a)
                    } else {
                        u16::from_le_bytes(a)
                    })
                } else {
                    let a = [field[0], field[1], field[2], field[3]];
                    u64::from(if be {
                        u32::from_be_bytes(a)
                    } else {
                        u32::from_le_bytes(a)
                    })
                };
                let v = self.interesting(len, at, current);
                let field = &mut m[at..at + width];
                match (width, be) {
                    (2, true) => field.copy_from_slice(&(v as u16).to_be_bytes()),
                    (2, false) => field.copy_from_slice(&(v as u16).to_le_bytes()),
                    (_, true) => field.copy_from_slice(&(v as u32).to_be_bytes()),
                    (_, false) => field.copy_from_slice(&(v as u32).to_le_bytes()),
                }
            }
            // Truncation.
            5 => {
                let at = self.below(len);
                m.truncate(at);
            }
            // Insert random bytes or a run of one byte.
            6 => {
                let at = self.below(len + 1);
                let n = 1 + self.below(16);
                let ins = if self.one_in(2) {
                    self.bytes(n)
                } else {
                    vec![self.next_u64() as u8; n * (1 + self.below(8))]
                };
                m.splice(at..at, ins);
            }
            // Delete a range.
            7 => {
                let at = self.below(len);
                let n = 1 + self.below((len - at).min(32));
                m.drain(at..at + n);
            }
            // Duplicate a range of the input elsewhere.
            8 => {
                let at = self.below(len);
                let n = 1 + self.below((len - at).min(64));
                let chunk = m[at..at + n].to_vec();
                let to = self.below(len + 1);
                m.splice(to..to, chunk);
            }
            // Splice: this input's head with another seed's tail, or a chunk of it inserted.
            9 => {
                let other = &seeds[self.below(seeds.len())];
                if other.is_empty() {
                    return;
                }
                let from = self.below(other.len());
                if self.one_in(2) {
                    let cut = self.below(len + 1);
                    m.truncate(cut);
                    m.extend_from_slice(&other[from..]);
                } else {
                    let n = 1 + self.below((other.len() - from).min(64));
                    let to = self.below(len + 1);
                    m.splice(to..to, other[from..from + n].iter().copied());
                }
            }
            // A dictionary token, inserted or overwriting.
            _ => {
                if dict.is_empty() {
                    let at = self.below(len);
                    m[at] = !m[at];
                    return;
                }
                let tok = dict[self.below(dict.len())];
                let at = self.below(len + 1);
                if self.one_in(2) {
                    m.splice(at..at, tok.iter().copied());
                } else {
                    let end = (at + tok.len()).min(len);
                    m.splice(at..end, tok.iter().copied());
                }
            }
        }
    }
}

/// What one bounded run did.
#[derive(Clone, Debug)]
pub struct Report {
    pub target: &'static str,
    /// Inputs run: the seeds as given, then the mutated ones.
    pub inputs: usize,
    pub seeds: usize,
    /// The slowest single input.
    pub slowest: Duration,
    pub elapsed: Duration,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "fuzz {}: {} inputs ({} seeds + {} mutated) in {:.2} s, slowest input {:.1} ms, 0 failures",
            self.target,
            self.inputs,
            self.seeds,
            self.inputs - self.seeds,
            self.elapsed.as_secs_f64(),
            self.slowest.as_secs_f64() * 1000.0
        )
    }
}

/// How one target is run under `cargo test`.
pub struct Bounded<'a> {
    pub target: &'static str,
    pub seeds: Vec<Vec<u8>>,
    pub dict: &'a [&'a [u8]],
    /// Mutated inputs after the seeds; `VPND_FUZZ_SCALE` multiplies it (e.g. 10 for a longer
    /// stable run).
    pub iterations: usize,
    pub max_len: usize,
    /// An input slower than this is a hang.
    pub max_input_time: Duration,
    /// A last touch on each mutated input (e.g. fix the IKE header's length most of the time).
    pub fixup: &'a dyn Fn(&mut Vec<u8>, &mut Mutator),
}

/// Runs every seed, then `iterations` mutated inputs, through `target` with a fixed seed
/// (`VPND_FUZZ_SEED` overrides it). A panic or a slow input stops the run: the input is
/// written under the temp directory and the test fails naming it.
pub fn run_bounded(b: Bounded<'_>, target: &dyn Fn(&[u8])) -> Report {
    let seed = std::env::var("VPND_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_0000_0000_0000 ^ hash(b.target));
    let scale: f64 = std::env::var("VPND_FUZZ_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1.0);
    let iterations = (b.iterations as f64 * scale) as usize;
    let mut rng = Mutator::new(seed);
    let start = Instant::now();
    let mut slowest = Duration::ZERO;
    let total = b.seeds.len() + iterations;
    for i in 0..total {
        let input = if i < b.seeds.len() {
            b.seeds[i].clone()
        } else {
            let mut m = rng.mutate(&b.seeds, b.dict, b.max_len);
            (b.fixup)(&mut m, &mut rng);
            m
        };
        let t0 = Instant::now();
        let r = catch_unwind(AssertUnwindSafe(|| target(&input)));
        let took = t0.elapsed();
        slowest = slowest.max(took);
        let why = match r {
            Err(e) => Some(panic_text(&e)),
            Ok(()) if took > b.max_input_time => Some(format!(
                "input took {:.1} s (limit {:.1} s): a hang",
                took.as_secs_f64(),
                b.max_input_time.as_secs_f64()
            )),
            Ok(()) => None,
        };
        if let Some(why) = why {
            let path = save_failure(b.target, seed, i, &input);
            panic!(
                "fuzz target {} failed on input {i} (seed {seed:#x}): {why}\n\
                 input ({} bytes) saved to {}\n\
                 replay: cargo +nightly fuzz run {} {} (in fuzz/)\n\
                 first bytes: {}",
                b.target,
                input.len(),
                path.display(),
                b.target,
                path.display(),
                hex(&input[..input.len().min(256)])
            );
        }
    }
    Report {
        target: b.target,
        inputs: total,
        seeds: b.seeds.len(),
        slowest,
        elapsed: start.elapsed(),
    }
}

fn hash(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

fn panic_text(e: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = e.downcast_ref::<&str>() {
        format!("panic: {s}")
    } else if let Some(s) = e.downcast_ref::<String>() {
        format!("panic: {s}")
    } else {
        "panic".into()
    }
}

fn save_failure(target: &str, seed: u64, i: usize, input: &[u8]) -> PathBuf {
    let dir = std::env::temp_dir().join("vpnd-fuzz-failures");
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join(format!("{target}-{seed:x}-{i}.bin"));
    let _ = std::fs::write(&path, input);
    path
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mutations_are_deterministic_and_bounded() {
        let seeds = vec![vec![1u8; 40], b"{\"v\":1}".to_vec()];
        let dict: &[&[u8]] = &[b"\"cmd\""];
        let run = |seed| {
            let mut m = Mutator::new(seed);
            (0..500)
                .map(|_| m.mutate(&seeds, dict, 64))
                .collect::<Vec<_>>()
        };
        let a = run(7);
        assert_eq!(a, run(7));
        assert_ne!(a, run(8));
        assert!(a.iter().all(|m| m.len() <= 64));
        assert!(a.iter().any(|m| m.len() != 40 && m.len() != 7));
    }
}
