//! Deterministic random numbers.
//!
//! Every random choice in l2l comes from a `(seed, stream)` pair: the stream names what is being
//! drawn (problem 17 of epoch 3, say), so results do not depend on the order in which threads
//! draw, and a resumed run needs no saved generator state beyond the epoch it stopped at.
//! The generator is xoshiro256++ seeded through SplitMix64; normals use Box–Muller. Both are
//! written out here so that a given seed gives the same numbers across crate upgrades.

/// One SplitMix64 step: advances `state` and returns a well-mixed 64-bit word.
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// xoshiro256++ generator for one `(seed, stream)` pair.
#[derive(Clone, Debug)]
pub struct Rng {
    s: [u64; 4],
    spare_normal: Option<f64>,
}

impl Rng {
    /// The generator for stream `stream` of `seed`. Distinct streams are independent for all
    /// practical purposes.
    pub fn new(seed: u64, stream: u64) -> Self {
        let (mut a, mut b) = (seed, stream ^ 0x6A09_E667_F3BC_C909);
        let mut sm = splitmix64(&mut a) ^ splitmix64(&mut b).rotate_left(17);
        let mut s = [0u64; 4];
        for word in &mut s {
            *word = splitmix64(&mut sm);
        }
        if s.iter().all(|&w| w == 0) {
            s[0] = 1;
        }
        Rng {
            s,
            spare_normal: None,
        }
    }

    pub fn next_u64(&mut self) -> u64 {
        let s = &mut self.s;
        let result = s[0].wrapping_add(s[3]).rotate_left(23).wrapping_add(s[0]);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// Uniform in [0, 1) with 53 random bits.
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform integer in [0, n), without modulo bias.
    pub fn below(&mut self, n: u64) -> u64 {
        assert!(n > 0, "below(0)");
        let zone = u64::MAX - (u64::MAX - n + 1) % n;
        loop {
            let x = self.next_u64();
            if x <= zone {
                return x % n;
            }
        }
    }

    /// Standard normal, by the Box–Muller transform.
    pub fn normal(&mut self) -> f64 {
        if let Some(z) = self.spare_normal.take() {
            return z;
        }
        // 1 - uniform() lies in (0, 1], so the logarithm is finite.
        let r = (-2.0 * (1.0 - self.uniform()).ln()).sqrt();
        let angle = std::f64::consts::TAU * self.uniform();
        self.spare_normal = Some(r * angle.sin());
        r * angle.cos()
    }
}

/// Stream numbers for the different uses of one seed, so that they never collide.
pub mod streams {
    /// Problem `index` of a spec drawn by `sample-optimizee`.
    pub fn spec_problem(index: u64) -> u64 {
        index
    }
    /// Problem `index` of the training batch of meta-training epoch `epoch`.
    pub fn train_problem(epoch: u64, index: u64) -> u64 {
        (1 << 62) | (epoch << 24) | index
    }
    /// Weight initialisation of a learned optimizer.
    pub const LSTM_INIT: u64 = 1 << 61;
    /// The read and write heads of a learned optimizer with a memory (Appendix D), whose
    /// controller's weights come from `network_stream`.
    pub fn heads_init(network_stream: u64) -> u64 {
        network_stream | (1 << 59)
    }
    /// Perturbation `pair` of the evolution-strategies meta-gradient of epoch `epoch`.
    pub fn es_perturbation(epoch: u64, pair: u64) -> u64 {
        (1 << 60) | (epoch << 24) | pair
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_and_stream_repeat() {
        let a: Vec<u64> = (0..5)
            .map({
                let mut r = Rng::new(7, 3);
                move |_| r.next_u64()
            })
            .collect();
        let mut r = Rng::new(7, 3);
        let b: Vec<u64> = (0..5).map(|_| r.next_u64()).collect();
        assert_eq!(a, b);
        let mut other = Rng::new(7, 4);
        assert_ne!(a[0], other.next_u64());
    }

    #[test]
    fn normal_has_unit_moments() {
        let mut r = Rng::new(1, 0);
        let n = 200_000;
        let xs: Vec<f64> = (0..n).map(|_| r.normal()).collect();
        let mean = xs.iter().sum::<f64>() / n as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
        assert!(mean.abs() < 0.01, "mean {mean}");
        assert!((var - 1.0).abs() < 0.01, "var {var}");
    }

    #[test]
    fn below_stays_in_range() {
        let mut r = Rng::new(2, 0);
        for _ in 0..1000 {
            assert!(r.below(7) < 7);
        }
    }
}
