//! How the next token is chosen from the language model's logits: greedy
//! (the default: the same image gives the same report), or temperature and
//! nucleus (top-p) sampling from a seeded generator, reproducible per
//! keyframe.

/// The decoding rule.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Sampling {
    Greedy,
    /// Softmax at `temperature`, then a draw among the most likely tokens
    /// whose probabilities add up to `top_p`.
    Nucleus {
        temperature: f32,
        top_p: f32,
        seed: u64,
    },
}

/// A sampler for one generation.
pub struct Sampler {
    sampling: Sampling,
    state: u64,
    order: Vec<(f32, usize)>,
}

/// SplitMix64: small, fast, and the same on every machine.
fn next_u64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Sampler {
    /// A sampler for the generation of keyframe `keyframe` (mixed into the
    /// seed, so each keyframe draws its own sequence, reproducibly).
    pub fn new(sampling: Sampling, keyframe: u64) -> Self {
        let state = match sampling {
            Sampling::Greedy => 0,
            Sampling::Nucleus { seed, .. } => seed ^ keyframe.wrapping_mul(0xA24B_AED4_963E_E407),
        };
        Self {
            sampling,
            state,
            order: Vec::new(),
        }
    }

    /// The next token id.
    pub fn pick(&mut self, logits: &[f32]) -> i64 {
        match self.sampling {
            Sampling::Greedy => sonoflow_inference::argmax(logits),
            Sampling::Nucleus {
                temperature, top_p, ..
            } => self.nucleus(logits, temperature, top_p),
        }
    }

    fn nucleus(&mut self, logits: &[f32], temperature: f32, top_p: f32) -> i64 {
        let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        if !max.is_finite() || logits.is_empty() {
            return sonoflow_inference::argmax(logits);
        }
        self.order.clear();
        let mut total = 0.0f32;
        for (i, l) in logits.iter().enumerate() {
            let p = ((l - max) / temperature).exp();
            total += p;
            self.order.push((p, i));
        }
        self.order.sort_unstable_by(|a, b| b.0.total_cmp(&a.0));
        // The nucleus: the fewest top tokens whose mass reaches top_p.
        let mut kept = 0.0f32;
        let mut end = 0;
        for (p, _) in &self.order {
            kept += p / total;
            end += 1;
            if kept >= top_p {
                break;
            }
        }
        let draw = (next_u64(&mut self.state) >> 40) as f32 / (1u64 << 24) as f32 * kept;
        let mut acc = 0.0f32;
        for (p, i) in &self.order[..end] {
            acc += p / total;
            if draw < acc {
                return *i as i64;
            }
        }
        self.order[end - 1].1 as i64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greedy_takes_the_largest_logit() {
        assert_eq!(Sampler::new(Sampling::Greedy, 0).pick(&[0.1, 3.0, -1.0]), 1);
    }

    #[test]
    fn nucleus_draws_within_top_p_and_repeats_for_the_same_seed_and_keyframe() {
        let logits = [2.0f32, 1.9, 1.8, -8.0, -9.0];
        let sampling = Sampling::Nucleus {
            temperature: 1.0,
            top_p: 0.9,
            seed: 7,
        };
        let draw = |keyframe| {
            let mut s = Sampler::new(sampling, keyframe);
            (0..200).map(|_| s.pick(&logits)).collect::<Vec<_>>()
        };
        let a = draw(1);
        assert_eq!(a, draw(1), "same seed and keyframe, same tokens");
        assert_ne!(a, draw(2), "another keyframe draws differently");
        assert!(
            a.iter().all(|t| *t <= 2),
            "the unlikely tail is never drawn: {a:?}"
        );
        for t in 0..3 {
            assert!(a.contains(&t), "token {t} of the nucleus is drawn");
        }
    }

    #[test]
    fn a_tiny_top_p_is_greedy() {
        let mut s = Sampler::new(
            Sampling::Nucleus {
                temperature: 1.0,
                top_p: 1e-6,
                seed: 1,
            },
            3,
        );
        assert!((0..50).all(|_| s.pick(&[0.0, 0.5, 0.2]) == 1));
    }
}
