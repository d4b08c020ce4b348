//! The memory of NTM-BFGS and NTM-L-BFGS for one problem of n coordinates (docs/method.md,
//! "Sharing between coordinates"): its low-rank writes, its reads, and their backward pass.
//!
//! At step t each write head w writes the outer product of its left and right vectors,
//! M ← M + a_w b_wᵀ, and then each read head j reads ρ_j = (1/n) M r_j. Coordinate i holds
//! component i of every vector (a_w, b_w, r_j, ρ_j), so the controller stays coordinatewise.
//! The 1/n keeps a read's scale independent of n: (M r)_i = Σ_w a_w,i (b_w · r) sums n
//! products, whose mean is what the controller sees, so one optimizer serves problems of any
//! size. NTM-BFGS keeps M (n × n) itself; NTM-L-BFGS keeps the writes of the last `k` steps and
//! forms the same products from them, O(k · heads · n) per read.
//!
//! Truncated BPTT: M at the start of an unroll, and the writes before it, are constants.

use std::collections::VecDeque;

/// What the memory keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemoryKind {
    /// M itself, n × n (NTM-BFGS).
    Full,
    /// The writes of the last this many steps (NTM-L-BFGS).
    History(usize),
}

/// One step's writes: the left and right vectors of every write head, `n × heads` each.
#[derive(Clone)]
struct Writes {
    a: Vec<f32>,
    b: Vec<f32>,
}

/// The memory of one problem, with the record of the current unroll.
#[derive(Clone)]
pub(crate) struct Memory {
    kind: MemoryKind,
    n: usize,
    reads: usize,
    writes: usize,
    /// `Full`: M at the start of the unroll, every earlier write folded in (row-major).
    start: Vec<f32>,
    /// `History`: the writes of the steps before the unroll still inside the window.
    carried: VecDeque<Writes>,
    /// The writes of the unroll's steps so far, oldest first.
    current: Vec<Writes>,
    /// The read vectors of the unroll's steps (`n × reads` each), for the backward pass.
    read_vectors: Vec<Vec<f32>>,
    /// dL/da and dL/db of the unroll's writes, filled by the backward pass.
    d_writes: Vec<Writes>,
}

impl Memory {
    pub(crate) fn new(kind: MemoryKind, n: usize, reads: usize, writes: usize) -> Self {
        Memory {
            kind,
            n,
            reads,
            writes,
            start: match kind {
                MemoryKind::Full => vec![0.0; n * n],
                MemoryKind::History(_) => Vec::new(),
            },
            carried: VecDeque::new(),
            current: Vec::new(),
            read_vectors: Vec::new(),
            d_writes: Vec::new(),
        }
    }

    pub(crate) fn bytes(&self) -> usize {
        let step = 2 * self.n * self.writes;
        let steps = self.carried.len() + self.current.len() + self.d_writes.len();
        4 * (self.start.len() + steps * step + self.read_vectors.len() * self.n * self.reads)
    }

    /// Empties the memory (a new trajectory).
    pub(crate) fn clear(&mut self) {
        self.start.fill(0.0);
        self.carried.clear();
        self.current.clear();
        self.read_vectors.clear();
    }

    /// Makes the writes so far constants: folds them into M, or into the carried window.
    pub(crate) fn settle(&mut self) {
        let n = self.n;
        match self.kind {
            MemoryKind::Full => {
                for w in self.current.drain(..) {
                    for h in 0..self.writes {
                        for i in 0..n {
                            let a = w.a[i * self.writes + h];
                            let row = &mut self.start[i * n..(i + 1) * n];
                            for (m, l) in row.iter_mut().zip(0..n) {
                                *m += a * w.b[l * self.writes + h];
                            }
                        }
                    }
                }
            }
            MemoryKind::History(k) => {
                self.carried.extend(self.current.drain(..));
                while self.carried.len() > k {
                    self.carried.pop_front();
                }
            }
        }
        self.read_vectors.clear();
    }

    /// Writes `a` and `b` (`n × writes` each) as this step's writes.
    pub(crate) fn write(&mut self, a: &[f32], b: &[f32]) {
        self.current.push(Writes {
            a: a.to_vec(),
            b: b.to_vec(),
        });
    }

    /// The writes a read of unroll step `t` sees, oldest first: carried ones, then the unroll's
    /// own with their index.
    fn visible(&self, t: usize) -> (impl Iterator<Item = &Writes>, std::ops::Range<usize>) {
        let (carried, own) = match self.kind {
            MemoryKind::Full => (0, 0..t + 1),
            MemoryKind::History(k) => {
                let own = (t + 1).saturating_sub(k)..t + 1;
                (k.saturating_sub(t + 1).min(self.carried.len()), own)
            }
        };
        let skip = self.carried.len() - carried;
        (self.carried.iter().skip(skip), own)
    }

    /// ρ = (1/n) M r for the read vectors `r` (`n × reads`) of the step just written, into `rho`;
    /// `record` keeps r for the backward pass.
    pub(crate) fn read(&mut self, r: &[f32], rho: &mut [f32], record: bool) {
        let (n, nr) = (self.n, self.reads);
        let t = self.current.len() - 1;
        rho.fill(0.0);
        if self.kind == MemoryKind::Full {
            for i in 0..n {
                let row = &self.start[i * n..(i + 1) * n];
                for j in 0..nr {
                    rho[i * nr + j] = row.iter().zip(0..n).map(|(m, l)| m * r[l * nr + j]).sum();
                }
            }
        }
        let (carried, own) = self.visible(t);
        for w in carried.chain(&self.current[own]) {
            add_products(w, r, rho, n, self.writes, nr);
        }
        let scale = 1.0 / n as f32;
        rho.iter_mut().for_each(|x| *x *= scale);
        if record {
            self.read_vectors.push(r.to_vec());
        }
    }

    /// Starts a backward pass over the unroll's steps.
    pub(crate) fn backward_begin(&mut self) {
        let len = self.n * self.writes;
        self.d_writes = (0..self.current.len())
            .map(|_| Writes {
                a: vec![0.0; len],
                b: vec![0.0; len],
            })
            .collect();
    }

    /// Backward through the read of unroll step `t`, given dL/dρ (`n × reads`): writes dL/dr
    /// into `d_r` and adds dL/da, dL/db to the writes of this unroll it read.
    pub(crate) fn backward_read(&mut self, t: usize, d_rho: &[f32], d_r: &mut [f32]) {
        let (n, nr, nw) = (self.n, self.reads, self.writes);
        let scale = 1.0 / n as f32;
        let g: Vec<f32> = d_rho.iter().map(|x| x * scale).collect();
        let r = &self.read_vectors[t];
        d_r.fill(0.0);
        if self.kind == MemoryKind::Full {
            // Mᵀ g.
            for i in 0..n {
                let row = &self.start[i * n..(i + 1) * n];
                for j in 0..nr {
                    let gi = g[i * nr + j];
                    for (l, m) in row.iter().enumerate() {
                        d_r[l * nr + j] += m * gi;
                    }
                }
            }
        }
        let (carried, own) = self.visible(t);
        for w in carried {
            add_products_transposed(w, &g, d_r, n, nw, nr);
        }
        for s in own {
            let w = &self.current[s];
            add_products_transposed(w, &g, d_r, n, nw, nr);
            let d = &mut self.d_writes[s];
            for h in 0..nw {
                for j in 0..nr {
                    let (mut b_r, mut a_g) = (0.0f32, 0.0f32);
                    for i in 0..n {
                        b_r += w.b[i * nw + h] * r[i * nr + j];
                        a_g += w.a[i * nw + h] * g[i * nr + j];
                    }
                    for i in 0..n {
                        d.a[i * nw + h] += b_r * g[i * nr + j];
                        d.b[i * nw + h] += a_g * r[i * nr + j];
                    }
                }
            }
        }
    }

    /// dL/da and dL/db of the writes of unroll step `t`, complete once every later read has
    /// been taken back.
    pub(crate) fn d_writes(&self, t: usize) -> (&[f32], &[f32]) {
        (&self.d_writes[t].a, &self.d_writes[t].b)
    }
}

/// ρ_j += a_h (b_h · r_j) for every write head h and read head j.
fn add_products(w: &Writes, r: &[f32], rho: &mut [f32], n: usize, nw: usize, nr: usize) {
    for h in 0..nw {
        for j in 0..nr {
            let dot: f32 = (0..n).map(|l| w.b[l * nw + h] * r[l * nr + j]).sum();
            for i in 0..n {
                rho[i * nr + j] += dot * w.a[i * nw + h];
            }
        }
    }
}

/// d_r_j += b_h (a_h · g_j): the transpose of [`add_products`].
fn add_products_transposed(w: &Writes, g: &[f32], d_r: &mut [f32], n: usize, nw: usize, nr: usize) {
    for h in 0..nw {
        for j in 0..nr {
            let dot: f32 = (0..n).map(|i| w.a[i * nw + h] * g[i * nr + j]).sum();
            for l in 0..n {
                d_r[l * nr + j] += dot * w.b[l * nw + h];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(len: usize, seed: usize) -> Vec<f32> {
        (0..len)
            .map(|i| (((i + seed) * 37) % 17) as f32 * 0.1 - 0.8)
            .collect()
    }

    /// NTM-L-BFGS with a window longer than the trajectory reads what NTM-BFGS reads; with a
    /// window of one step it reads only that step's writes.
    #[test]
    fn a_long_history_reads_what_the_full_memory_reads() {
        let (n, nr, nw) = (5, 2, 3);
        let mut full = Memory::new(MemoryKind::Full, n, nr, nw);
        let mut long = Memory::new(MemoryKind::History(10), n, nr, nw);
        let mut short = Memory::new(MemoryKind::History(1), n, nr, nw);
        let (mut a, mut b, mut c) = (vec![0.0; n * nr], vec![0.0; n * nr], vec![0.0; n * nr]);
        for step in 0..6 {
            let (wa, wb, r) = (
                values(n * nw, step),
                values(n * nw, step + 7),
                values(n * nr, 3 * step),
            );
            for m in [&mut full, &mut long, &mut short] {
                m.write(&wa, &wb);
            }
            full.read(&r, &mut a, false);
            long.read(&r, &mut b, false);
            short.read(&r, &mut c, false);
            // Settle every other step, as unrolls of two steps would.
            if step % 2 == 1 {
                for m in [&mut full, &mut long, &mut short] {
                    m.settle();
                }
            }
            for (x, y) in a.iter().zip(&b) {
                assert!((x - y).abs() < 1e-5 * (1.0 + x.abs()), "{x} vs {y}");
            }
            let mut only = Memory::new(MemoryKind::Full, n, nr, nw);
            only.write(&wa, &wb);
            let mut d = vec![0.0; n * nr];
            only.read(&r, &mut d, false);
            assert_eq!(c, d);
        }
    }
}
