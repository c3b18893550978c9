//! A small, fast, portable PRNG (xoshiro256++ seeded by SplitMix64).
//!
//! The simulator's output must be byte-identical for the same seed, with
//! any version of any crate, so it carries its own generator instead of
//! depending on one whose algorithm may change. (Across platforms, the
//! maths library's `sin`, `exp`… may still differ in the last bit.)

/// SplitMix64's finaliser: a bijection on `u64` that mixes well.
pub fn mix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A bijection on `[0, 2^40)`: identifiers that look random yet never
/// collide.
pub fn permute40(x: u64, key: u64) -> u64 {
    const MASK: u64 = (1 << 40) - 1;
    let mut v = x & MASK;
    for round in 0..3u64 {
        v = (v ^ (mix64(key ^ round) & MASK)) & MASK;
        v = v.wrapping_mul(0x9E37_79B9_7F4B | 1) & MASK; // odd: invertible mod 2^40
        v ^= v >> 17;
    }
    v
}

#[derive(Clone, Debug)]
pub struct Rng {
    s: [u64; 4],
}

impl Rng {
    /// A generator for one purpose: the same `(seed, stream)` always gives
    /// the same numbers, different streams independent ones.
    pub fn new(seed: u64, stream: &[u64]) -> Self {
        let mut x = mix64(seed ^ 0x5EED);
        for &part in stream {
            x = mix64(x ^ part);
        }
        let mut s = [0u64; 4];
        for slot in &mut s {
            x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
            *slot = mix64(x);
        }
        Self { s }
    }

    pub fn next_u64(&mut self) -> u64 {
        let result = (self.s[0].wrapping_add(self.s[3]))
            .rotate_left(23)
            .wrapping_add(self.s[0]);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        result
    }

    /// Uniform in `[0, 1)`.
    pub fn f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    pub fn chance(&mut self, p: f64) -> bool {
        self.f64() < p
    }

    /// Uniform in `[lo, hi)` (integers).
    pub fn range(&mut self, lo: i64, hi: i64) -> i64 {
        if hi <= lo {
            return lo;
        }
        lo + (self.next_u64() % (hi - lo) as u64) as i64
    }

    pub fn index(&mut self, len: usize) -> usize {
        (self.next_u64() % len.max(1) as u64) as usize
    }

    pub fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.f64()
    }

    /// Standard normal (Box–Muller).
    pub fn normal(&mut self) -> f64 {
        let u1 = self.f64().max(1e-12);
        let u2 = self.f64();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    /// Log-normal with the given mean and standard deviation.
    pub fn lognormal(&mut self, mean: f64, sd: f64) -> f64 {
        let sigma2 = (1.0 + (sd * sd) / (mean * mean)).ln();
        let mu = mean.ln() - sigma2 / 2.0;
        (mu + sigma2.sqrt() * self.normal()).exp()
    }

    /// An index drawn with the given (not necessarily normalised) weights.
    pub fn weighted(&mut self, weights: &[f64]) -> usize {
        let total: f64 = weights.iter().sum();
        let mut x = self.f64() * total;
        for (i, w) in weights.iter().enumerate() {
            if x < *w {
                return i;
            }
            x -= w;
        }
        weights.len() - 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_reproducible_and_distinct() {
        let a: Vec<u64> = (0..4)
            .map({
                let mut r = Rng::new(1, &[2]);
                move |_| r.next_u64()
            })
            .collect();
        let b: Vec<u64> = (0..4)
            .map({
                let mut r = Rng::new(1, &[2]);
                move |_| r.next_u64()
            })
            .collect();
        let c: Vec<u64> = (0..4)
            .map({
                let mut r = Rng::new(1, &[3]);
                move |_| r.next_u64()
            })
            .collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn permute40_is_a_bijection_on_a_sample() {
        let mut seen = std::collections::HashSet::new();
        for x in 0..200_000u64 {
            let y = permute40(x, 42);
            assert!(y < (1 << 40));
            assert!(seen.insert(y));
        }
    }

    #[test]
    fn distributions_have_their_means() {
        let mut r = Rng::new(7, &[]);
        let n = 20_000;
        let mean = (0..n).map(|_| r.lognormal(5.2, 2.8)).sum::<f64>() / n as f64;
        assert!((mean - 5.2).abs() < 0.2, "{mean}");
        let ones = (0..n).filter(|_| r.chance(0.25)).count() as f64 / n as f64;
        assert!((ones - 0.25).abs() < 0.02);
    }
}
