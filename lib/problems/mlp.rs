//! MLP classifiers trained on minibatches with a softmax cross-entropy loss (§3.2).
//!
//! The parameters of a run are one flat vector, layer after layer: W_l as [in, out] row-major,
//! then b_l [out]. That vector is the learned optimizer's coordinate axis (15,910 coordinates
//! for 784-20-10). Every weight and bias starts iid N(0, 0.01²), as the original code did.
//! The minibatch of run r at step t is drawn uniformly with replacement from the stream
//! (minibatch seed of r, t), so every optimizer evaluated on a run sees the same θ0 and the
//! same sequence of minibatches.

use super::ProblemSet;
use crate::datasets::Dataset;
use crate::error::{Error, Result};
use crate::io::{write_npz, Npz};
use crate::rng::Rng;
use ndarray::linalg::general_mat_mul;
use ndarray::{Array1, Array2, ArrayView2, ArrayViewMut2, Ix1, Ix2};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Standard deviation of the initial weights and biases.
pub const INIT_STD: f64 = 0.01;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    Sigmoid,
    Relu,
}

impl Activation {
    pub fn code(self) -> i64 {
        match self {
            Activation::Sigmoid => 0,
            Activation::Relu => 1,
        }
    }
    pub fn from_code(c: i64) -> Option<Self> {
        match c {
            0 => Some(Activation::Sigmoid),
            1 => Some(Activation::Relu),
            _ => None,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Activation::Sigmoid => "sigmoid",
            Activation::Relu => "relu",
        }
    }
}

/// Layer sizes and activation of an MLP.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MlpArchitecture {
    pub inputs: usize,
    pub hidden: Vec<usize>,
    pub classes: usize,
    pub activation: Activation,
}

impl MlpArchitecture {
    /// (fan in, fan out) of every layer, the output layer last.
    pub fn layers(&self) -> Vec<(usize, usize)> {
        let mut sizes = vec![self.inputs];
        sizes.extend(&self.hidden);
        sizes.push(self.classes);
        sizes.windows(2).map(|w| (w[0], w[1])).collect()
    }
    pub fn num_params(&self) -> usize {
        self.layers().iter().map(|(i, o)| i * o + o).sum()
    }
    pub fn describe(&self) -> String {
        let hidden: Vec<String> = self.hidden.iter().map(|h| h.to_string()).collect();
        format!(
            "{}-{}-{} {}",
            self.inputs,
            hidden.join("-"),
            self.classes,
            self.activation.name()
        )
    }
    pub fn validate(&self) -> Result<()> {
        if self.hidden.contains(&0) || self.inputs == 0 || self.classes < 2 {
            return Err(Error::Config(format!(
                "invalid MLP {}: layer sizes must be positive",
                self.describe()
            )));
        }
        Ok(())
    }
}

/// Seeds of one run: its initialisation and its minibatch sequence.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RunSeeds {
    pub init: u64,
    pub minibatch: u64,
}

impl RunSeeds {
    /// The seeds of run `index` of the set drawn from `seed` in stream family `family`
    /// (0 for specs; meta-training uses one family per epoch), so that sets with different
    /// seeds never share a run.
    pub fn derive(seed: u64, family: u64, index: u64) -> Self {
        let mut rng = Rng::new(seed, (family << 32) ^ index ^ (0x4d4c_5000 << 40));
        RunSeeds {
            init: rng.next_u64(),
            minibatch: rng.next_u64(),
        }
    }
}

/// A set of MLP training runs on one dataset.
#[derive(Clone)]
pub struct MlpSet {
    pub architecture: MlpArchitecture,
    pub batch_size: usize,
    pub data: Arc<Dataset>,
    pub dataset_path: PathBuf,
    pub runs: Vec<RunSeeds>,
    pub theta0: Array2<f32>,
    /// The seed the runs were derived from.
    pub seed: u64,
}

/// Draws θ0 of one run: every parameter iid N(0, 0.01²).
fn initial_parameters(arch: &MlpArchitecture, seed: u64, out: &mut [f32]) {
    let mut rng = Rng::new(seed, 0);
    for x in out.iter_mut().take(arch.num_params()) {
        *x = (rng.normal() * INIT_STD) as f32;
    }
}

impl MlpSet {
    pub fn new(
        architecture: MlpArchitecture,
        batch_size: usize,
        data: Arc<Dataset>,
        dataset_path: PathBuf,
        runs: Vec<RunSeeds>,
        seed: u64,
    ) -> Result<Self> {
        architecture.validate()?;
        if batch_size == 0 {
            return Err(Error::Config("--batch-size must be at least 1".into()));
        }
        if data.pixels() != architecture.inputs || data.classes > architecture.classes {
            return Err(Error::Config(format!(
                "the data has {} inputs and {} classes; the MLP {} does not fit it",
                data.pixels(),
                data.classes,
                architecture.describe()
            )));
        }
        let p = architecture.num_params();
        let mut theta0 = Array2::zeros((runs.len(), p));
        for (mut row, r) in theta0.rows_mut().into_iter().zip(&runs) {
            initial_parameters(&architecture, r.init, row.as_slice_mut().unwrap());
        }
        Ok(MlpSet {
            architecture,
            batch_size,
            data,
            dataset_path,
            runs,
            theta0,
            seed,
        })
    }

    /// `count` runs derived from `seed`.
    pub fn sample(
        architecture: MlpArchitecture,
        batch_size: usize,
        data: Arc<Dataset>,
        dataset_path: PathBuf,
        count: usize,
        seed: u64,
    ) -> Result<Self> {
        let runs = (0..count as u64)
            .map(|i| RunSeeds::derive(seed, 0, i))
            .collect();
        Self::new(architecture, batch_size, data, dataset_path, runs, seed)
    }

    /// The same runs on another architecture (θ0 redrawn from the same seeds).
    pub fn with_architecture(&self, architecture: MlpArchitecture) -> Result<Self> {
        Self::new(
            architecture,
            self.batch_size,
            self.data.clone(),
            self.dataset_path.clone(),
            self.runs.clone(),
            self.seed,
        )
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        let a = &self.architecture;
        write_npz(path, |z| {
            z.add("theta0", self.theta0.clone());
            z.add(
                "hidden_sizes",
                Array1::from(a.hidden.iter().map(|&h| h as i64).collect::<Vec<_>>()),
            );
            z.scalar_i64("inputs", a.inputs as i64);
            z.scalar_i64("classes", a.classes as i64);
            z.scalar_i64("activation", a.activation.code());
            z.scalar_i64("batch_size", self.batch_size as i64);
            z.add(
                "init_seeds",
                Array1::from(self.runs.iter().map(|r| r.init as i64).collect::<Vec<_>>()),
            );
            z.add(
                "minibatch_seeds",
                Array1::from(
                    self.runs
                        .iter()
                        .map(|r| r.minibatch as i64)
                        .collect::<Vec<_>>(),
                ),
            );
            z.scalar_i64("seed", self.seed as i64);
            z.add(
                "dataset_sha256",
                Array1::from(self.data.sha256.as_bytes().to_vec()),
            );
            z.add(
                "dataset_path",
                Array1::from(self.dataset_path.to_string_lossy().as_bytes().to_vec()),
            );
            Ok(())
        })
    }

    /// Reads an MLP spec, loading its dataset from the recorded path (or `data_override`) and
    /// checking its checksum.
    pub fn load(npz: &mut Npz, data_override: Option<&Path>) -> Result<Self> {
        let bad = |npz: &Npz, d: String| Error::bad_file(npz.path(), d);
        let hidden: Vec<usize> = npz
            .array_nd::<i64, Ix1>("hidden_sizes")?
            .iter()
            .map(|&h| h.max(0) as usize)
            .collect();
        let code = npz.scalar("activation")? as i64;
        let activation = Activation::from_code(code)
            .ok_or_else(|| bad(npz, format!("unknown activation code {code}")))?;
        let architecture = MlpArchitecture {
            inputs: npz.scalar("inputs")? as usize,
            hidden,
            classes: npz.scalar("classes")? as usize,
            activation,
        };
        architecture
            .validate()
            .map_err(|e| bad(npz, e.to_string()))?;
        let batch_size = npz.scalar("batch_size")? as usize;
        let init: Vec<i64> = npz.array_nd::<i64, Ix1>("init_seeds")?.to_vec();
        let minibatch: Vec<i64> = npz.array_nd::<i64, Ix1>("minibatch_seeds")?.to_vec();
        if init.len() != minibatch.len() || init.is_empty() {
            return Err(bad(
                npz,
                format!(
                    "{} init seeds but {} minibatch seeds",
                    init.len(),
                    minibatch.len()
                ),
            ));
        }
        let theta0 = npz.array_nd::<f32, Ix2>("theta0")?;
        if theta0.dim() != (init.len(), architecture.num_params()) {
            return Err(bad(
                npz,
                format!(
                    "'theta0' has shape {:?}; {} runs of {} need [{}, {}]",
                    theta0.shape(),
                    init.len(),
                    architecture.describe(),
                    init.len(),
                    architecture.num_params()
                ),
            ));
        }
        if theta0.iter().any(|x| !x.is_finite()) {
            return Err(bad(npz, "'theta0' contains NaN or Inf".into()));
        }
        let recorded_path = PathBuf::from(npz.text("dataset_path")?);
        let sha = npz.text("dataset_sha256")?;
        let path = data_override
            .map(Path::to_path_buf)
            .unwrap_or(recorded_path);
        if data_override.is_none() && !path.exists() {
            return Err(bad(
                npz,
                format!(
                    "its dataset {} is missing (a relative path counts from the folder \
                     sample-optimizee ran in); run from there or pass --data PATH",
                    path.display()
                ),
            ));
        }
        let data = Dataset::load(&path)?;
        if data.sha256 != sha {
            return Err(bad(
                npz,
                format!(
                "dataset {} has sha256 {} but the spec was made from {sha}; pass the original data",
                path.display(),
                data.sha256
            ),
            ));
        }
        let runs = init
            .iter()
            .zip(&minibatch)
            .map(|(&i, &m)| RunSeeds {
                init: i as u64,
                minibatch: m as u64,
            })
            .collect();
        let seed = npz.scalar_or("seed", 0.0)? as u64;
        let set = MlpSet {
            architecture,
            batch_size,
            data: Arc::new(data),
            dataset_path: path,
            runs,
            theta0,
            seed,
        };
        if set.data.pixels() != set.architecture.inputs {
            return Err(bad(
                npz,
                "the dataset's image size does not match the MLP's inputs".into(),
            ));
        }
        Ok(set)
    }
}

/// Working memory of one thread: the minibatch and every layer's activations and gradients.
#[derive(Clone)]
pub struct MlpScratch {
    x: Array2<f32>,
    labels: Vec<u8>,
    /// Pre-activations per layer, [batch, out].
    z: Vec<Array2<f32>>,
    /// Activations of the hidden layers, [batch, out].
    a: Vec<Array2<f32>>,
    dz: Vec<Array2<f32>>,
    /// Pearlmutter's R{·} = d(·)/dr at θ + r v of z, a and dz, for Hessian-vector products.
    r_z: Vec<Array2<f32>>,
    r_a: Vec<Array2<f32>>,
    r_dz: Vec<Array2<f32>>,
}

impl ProblemSet for MlpSet {
    type Scratch = MlpScratch;

    fn count(&self) -> usize {
        self.runs.len()
    }
    fn dim(&self) -> usize {
        self.architecture.num_params()
    }
    fn scratch(&self) -> MlpScratch {
        let b = self.batch_size;
        let layers = self.architecture.layers();
        // One [batch, units] buffer per layer, or per hidden layer.
        let per_layer = |of: &[(usize, usize)]| -> Vec<Array2<f32>> {
            of.iter().map(|&(_, o)| Array2::zeros((b, o))).collect()
        };
        let hidden = &layers[..layers.len() - 1];
        MlpScratch {
            x: Array2::zeros((b, self.architecture.inputs)),
            labels: vec![0; b],
            z: per_layer(&layers),
            a: per_layer(hidden),
            dz: per_layer(&layers),
            r_z: per_layer(&layers),
            r_a: per_layer(hidden),
            r_dz: per_layer(&layers),
        }
    }
    fn initial_point(&self, problem: usize, theta: &mut [f32]) {
        theta.copy_from_slice(self.theta0.row(problem).as_slice().unwrap());
    }
    fn loss_and_gradient(
        &self,
        problem: usize,
        step: usize,
        theta: &[f32],
        grad: &mut [f32],
        s: &mut MlpScratch,
    ) -> f64 {
        let mut rng = Rng::new(self.runs[problem].minibatch, step as u64);
        let n = self.data.len() as u64;
        for (mut row, label) in s.x.rows_mut().into_iter().zip(s.labels.iter_mut()) {
            let i = rng.below(n) as usize;
            row.assign(&self.data.images.row(i));
            *label = self.data.labels[i];
        }
        mlp_loss_and_gradient(&self.architecture, theta, grad, s)
    }
    fn hessian_vector(
        &self,
        problem: usize,
        step: usize,
        theta: &[f32],
        v: &[f32],
        hv: &mut [f32],
        s: &mut MlpScratch,
    ) {
        // The forward and backward pass leave z, a and dz of this minibatch in the scratch;
        // their gradient output is overwritten below.
        self.loss_and_gradient(problem, step, theta, hv, s);
        mlp_hessian_vector(&self.architecture, theta, v, hv, s);
    }
}

/// Views of layer `l`'s weights and bias inside a flat parameter vector.
fn layer_params<'a>(
    layers: &[(usize, usize)],
    theta: &'a [f32],
    l: usize,
) -> (ArrayView2<'a, f32>, &'a [f32]) {
    let offset: usize = layers[..l].iter().map(|(i, o)| i * o + o).sum();
    let (i, o) = layers[l];
    let w = ArrayView2::from_shape((i, o), &theta[offset..offset + i * o]).unwrap();
    (w, &theta[offset + i * o..offset + i * o + o])
}

fn layer_grads<'a>(
    layers: &[(usize, usize)],
    grad: &'a mut [f32],
    l: usize,
) -> (ArrayViewMut2<'a, f32>, &'a mut [f32]) {
    let offset: usize = layers[..l].iter().map(|(i, o)| i * o + o).sum();
    let (i, o) = layers[l];
    let (w, b) = grad[offset..offset + i * o + o].split_at_mut(i * o);
    (ArrayViewMut2::from_shape((i, o), w).unwrap(), b)
}

/// Mean softmax cross-entropy of the minibatch in `s` and its gradient, forward and backward
/// through BLAS GEMMs.
fn mlp_loss_and_gradient(
    arch: &MlpArchitecture,
    theta: &[f32],
    grad: &mut [f32],
    s: &mut MlpScratch,
) -> f64 {
    let layers = arch.layers();
    let MlpScratch {
        x,
        labels,
        z: s_z,
        a: s_a,
        dz: s_dz,
        ..
    } = s;
    let (x, labels) = (x.view(), &labels[..]);
    let last = layers.len() - 1;
    let b = labels.len();
    // Forward.
    for l in 0..=last {
        let (w, bias) = layer_params(&layers, theta, l);
        let z = &mut s_z[l];
        let input = if l == 0 { x.view() } else { s_a[l - 1].view() };
        general_mat_mul(1.0, &input, &w, 0.0, z);
        for mut row in z.rows_mut() {
            for (v, bv) in row.iter_mut().zip(bias) {
                *v += bv;
            }
        }
        if l < last {
            let a = &mut s_a[l];
            match arch.activation {
                Activation::Sigmoid => ndarray::Zip::from(a)
                    .and(&*z)
                    .for_each(|a, &z| *a = crate::lstm::sigmoid(z)),
                Activation::Relu => ndarray::Zip::from(a)
                    .and(&*z)
                    .for_each(|a, &z| *a = z.max(0.0)),
            }
        }
    }
    // Softmax cross-entropy, with the log-sum-exp shifted by each row's maximum.
    let mut loss = 0.0f64;
    let inv_b = 1.0 / b as f32;
    for ((zr, mut dr), &y) in s_z[last]
        .rows()
        .into_iter()
        .zip(s_dz[last].rows_mut())
        .zip(labels)
    {
        let m = zr.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
        let sum: f32 = zr.iter().map(|&v| (v - m).exp()).sum();
        let lse = m + sum.ln();
        loss += (lse - zr[y as usize]) as f64;
        for (k, (d, &v)) in dr.iter_mut().zip(zr.iter()).enumerate() {
            *d = ((v - lse).exp() - if k == y as usize { 1.0 } else { 0.0 }) * inv_b;
        }
    }
    // Backward.
    for l in (0..=last).rev() {
        let (dw, db) = layer_grads(&layers, grad, l);
        let mut dw = dw;
        let input = if l == 0 { x.view() } else { s_a[l - 1].view() };
        general_mat_mul(1.0, &input.t(), &s_dz[l], 0.0, &mut dw);
        db.fill(0.0);
        for row in s_dz[l].rows() {
            for (d, v) in db.iter_mut().zip(row) {
                *d += v;
            }
        }
        if l > 0 {
            let (w, _) = layer_params(&layers, theta, l);
            let (lower, upper) = s_dz.split_at_mut(l);
            let dz_prev = &mut lower[l - 1];
            general_mat_mul(1.0, &upper[0], &w.t(), 0.0, dz_prev);
            let a = &s_a[l - 1];
            match arch.activation {
                Activation::Sigmoid => ndarray::Zip::from(dz_prev)
                    .and(a)
                    .for_each(|d, &a| *d *= a * (1.0 - a)),
                Activation::Relu => ndarray::Zip::from(dz_prev).and(a).for_each(|d, &a| {
                    if a <= 0.0 {
                        *d = 0.0
                    }
                }),
            }
        }
    }
    loss / b as f64
}

/// H v by forward and reverse R-passes (Pearlmutter, 1994) over the minibatch whose
/// activations and backward gradients `mlp_loss_and_gradient` left in `s`.
fn mlp_hessian_vector(
    arch: &MlpArchitecture,
    theta: &[f32],
    v: &[f32],
    hv: &mut [f32],
    s: &mut MlpScratch,
) {
    let layers = arch.layers();
    let last = layers.len() - 1;
    let sigmoid = arch.activation == Activation::Sigmoid;
    // σ'(z) and σ''(z) from the activation a = σ(z).
    let d1 = |a: f32| {
        if sigmoid {
            a * (1.0 - a)
        } else if a > 0.0 {
            1.0
        } else {
            0.0
        }
    };
    let d2 = |a: f32| {
        if sigmoid {
            a * (1.0 - a) * (1.0 - 2.0 * a)
        } else {
            0.0
        }
    };
    let MlpScratch {
        x,
        labels,
        a,
        dz,
        r_z,
        r_a,
        r_dz,
        ..
    } = s;
    // R-forward: R{z_l} = R{a_(l-1)} W_l + a_(l-1) V_l + Vb_l, R{a_l} = σ'(z_l) R{z_l}.
    for l in 0..=last {
        let (w, _) = layer_params(&layers, theta, l);
        let (vw, vb) = layer_params(&layers, v, l);
        let input = if l == 0 { x.view() } else { a[l - 1].view() };
        let rz = &mut r_z[l];
        general_mat_mul(1.0, &input, &vw, 0.0, rz);
        if l > 0 {
            general_mat_mul(1.0, &r_a[l - 1], &w, 1.0, rz);
        }
        for mut row in rz.rows_mut() {
            for (r, b) in row.iter_mut().zip(vb) {
                *r += b;
            }
        }
        if l < last {
            ndarray::Zip::from(&mut r_a[l])
                .and(&a[l])
                .and(&*rz)
                .for_each(|ra, &a, &rz| *ra = d1(a) * rz);
        }
    }
    // R{dz_L} = (J_softmax R{z_L}) / B, with softmax p = B dz_L + onehot(y).
    let batch = labels.len() as f32;
    for (((mut rd, d), rz), &y) in r_dz[last]
        .rows_mut()
        .into_iter()
        .zip(dz[last].rows())
        .zip(r_z[last].rows())
        .zip(labels.iter())
    {
        let p = |k: usize| d[k] * batch + if k == y as usize { 1.0 } else { 0.0 };
        let mean: f32 = (0..rz.len()).map(|k| p(k) * rz[k]).sum();
        for (k, r) in rd.iter_mut().enumerate() {
            *r = p(k) * (rz[k] - mean) / batch;
        }
    }
    // R-backward: R{dW_l} = a_(l-1)ᵀ R{dz_l} + R{a_(l-1)}ᵀ dz_l; R{dz_(l-1)} = (R{dz_l} W_lᵀ +
    // dz_l V_lᵀ) σ'(z_(l-1)) + (dz_l W_lᵀ) σ''(z_(l-1)) R{z_(l-1)}.
    for l in (0..=last).rev() {
        let (hw, hb) = layer_grads(&layers, hv, l);
        let mut hw = hw;
        let input = if l == 0 { x.view() } else { a[l - 1].view() };
        general_mat_mul(1.0, &input.t(), &r_dz[l], 0.0, &mut hw);
        if l > 0 {
            general_mat_mul(1.0, &r_a[l - 1].t(), &dz[l], 1.0, &mut hw);
        }
        hb.fill(0.0);
        for row in r_dz[l].rows() {
            for (h, r) in hb.iter_mut().zip(row) {
                *h += r;
            }
        }
        if l > 0 {
            let (w, _) = layer_params(&layers, theta, l);
            let (vw, _) = layer_params(&layers, v, l);
            let (lower, upper) = r_dz.split_at_mut(l);
            let rdz_prev = &mut lower[l - 1];
            general_mat_mul(1.0, &upper[0], &w.t(), 0.0, rdz_prev);
            general_mat_mul(1.0, &dz[l], &vw.t(), 1.0, rdz_prev);
            // R{a_(l-1)} is spent; it holds da_(l-1) = dz_l W_lᵀ from here on.
            let da = &mut r_a[l - 1];
            general_mat_mul(1.0, &dz[l], &w.t(), 0.0, da);
            ndarray::Zip::from(rdz_prev)
                .and(&*da)
                .and(&a[l - 1])
                .and(&r_z[l - 1])
                .for_each(|r, &da, &a, &rz| *r = *r * d1(a) + da * d2(a) * rz);
        }
    }
}

/// Training runs for meta-training: every epoch, fresh runs (new θ0 and minibatches) of the
/// spec's architecture and data, from the spec's seed.
pub struct MlpSource {
    pub like: MlpSet,
}

impl crate::meta_training::TrainingSource for MlpSource {
    type Set = MlpSet;

    fn draw(&self, epoch: u64, batch: usize) -> MlpSet {
        let l = &self.like;
        let runs = (0..batch as u64)
            .map(|i| RunSeeds::derive(l.seed, epoch + 1, i))
            .collect();
        MlpSet::new(
            l.architecture.clone(),
            l.batch_size,
            l.data.clone(),
            l.dataset_path.clone(),
            runs,
            l.seed,
        )
        .expect("the spec's architecture was validated")
    }

    fn describe(&self) -> String {
        let l = &self.like;
        format!(
            "mlp({}, batch_size={}, data_sha256={}, seed={})",
            l.architecture.describe(),
            l.batch_size,
            l.data.sha256,
            l.seed
        )
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// 12 examples of 6 pixels in 3 classes.
    pub(crate) fn toy_data() -> Arc<Dataset> {
        let n = 12;
        let images = Array2::from_shape_fn((n, 6), |(i, j)| ((i * 7 + j * 3) % 11) as f32 / 10.0);
        let labels = (0..n).map(|i| (i % 3) as u8).collect();
        Arc::new(Dataset {
            images,
            labels,
            classes: 3,
            sha256: "x".into(),
        })
    }

    /// Two runs of a 6-…-3 MLP on the toy data, minibatches of 5.
    fn toy_set(activation: Activation, hidden: Vec<usize>) -> MlpSet {
        let arch = MlpArchitecture {
            inputs: 6,
            hidden,
            classes: 3,
            activation,
        };
        MlpSet::sample(arch, 5, toy_data(), "toy".into(), 2, 3).unwrap()
    }

    fn check(activation: Activation, hidden: Vec<usize>, eps: f32) {
        let set = toy_set(activation, hidden);
        let p = set.dim();
        let mut theta = vec![0.0f32; p];
        set.initial_point(1, &mut theta);
        // Larger weights than the N(0, 0.01²) init, so every layer matters.
        let mut rng = Rng::new(1, 1);
        for t in theta.iter_mut() {
            *t += (rng.normal() * 0.5) as f32;
        }
        let mut s = set.scratch();
        let mut grad = vec![0.0f32; p];
        set.loss_and_gradient(1, 4, &theta, &mut grad, &mut s);
        let mut g2 = vec![0.0f32; p];
        let scale = grad.iter().fold(0.0f32, |m, g| m.max(g.abs()));
        for k in 0..p {
            let mut t = theta.clone();
            t[k] += eps;
            let fp = set.loss_and_gradient(1, 4, &t, &mut g2, &mut s);
            t[k] -= 2.0 * eps;
            let fm = set.loss_and_gradient(1, 4, &t, &mut g2, &mut s);
            let fd = ((fp - fm) / (2.0 * eps as f64)) as f32;
            let err = (fd - grad[k]).abs() / (fd.abs().max(grad[k].abs()) + 1e-2 * scale);
            assert!(
                err < 2e-2,
                "{activation:?} parameter {k}: analytic {} vs finite difference {fd}",
                grad[k]
            );
        }
    }

    /// H v against central differences of the gradient along v, on the same minibatch.
    fn check_hessian_vector(activation: Activation, hidden: Vec<usize>, eps: f32) {
        let set = toy_set(activation, hidden);
        let p = set.dim();
        let mut rng = Rng::new(4, 2);
        let theta: Vec<f32> = (0..p).map(|_| (rng.normal() * 0.7) as f32).collect();
        let v: Vec<f32> = (0..p).map(|_| rng.normal() as f32).collect();
        let mut s = set.scratch();
        let mut hv = vec![0.0f32; p];
        set.hessian_vector(1, 3, &theta, &v, &mut hv, &mut s);
        let (mut gp, mut gm) = (vec![0.0f32; p], vec![0.0f32; p]);
        let at = |sign: f32| -> Vec<f32> {
            theta
                .iter()
                .zip(&v)
                .map(|(t, d)| t + sign * eps * d)
                .collect()
        };
        set.loss_and_gradient(1, 3, &at(1.0), &mut gp, &mut s);
        set.loss_and_gradient(1, 3, &at(-1.0), &mut gm, &mut s);
        let scale = hv.iter().fold(0.0f32, |m, h| m.max(h.abs()));
        assert!(
            scale > 1e-3,
            "H v vanishes ({scale}); the check would be empty"
        );
        for k in 0..p {
            let fd = (gp[k] - gm[k]) / (2.0 * eps);
            let err = (fd - hv[k]).abs() / (fd.abs().max(hv[k].abs()) + 1e-2 * scale);
            assert!(
                err < 2e-2,
                "{activation:?} parameter {k}: H v {} vs finite difference {fd}",
                hv[k]
            );
        }
    }

    #[test]
    fn hessian_vector_matches_finite_differences_sigmoid() {
        check_hessian_vector(Activation::Sigmoid, vec![4, 3], 1e-2);
    }

    #[test]
    fn hessian_vector_matches_finite_differences_relu() {
        check_hessian_vector(Activation::Relu, vec![5, 4], 1e-3);
    }

    #[test]
    fn gradient_matches_finite_differences_sigmoid() {
        check(Activation::Sigmoid, vec![4, 3], 1e-2);
    }

    #[test]
    fn gradient_matches_finite_differences_relu() {
        // A small step, so that probes do not cross ReLU's kink.
        check(Activation::Relu, vec![5], 1e-3);
    }

    #[test]
    fn base_network_has_15910_parameters() {
        let arch = MlpArchitecture {
            inputs: 784,
            hidden: vec![20],
            classes: 10,
            activation: Activation::Sigmoid,
        };
        assert_eq!(arch.num_params(), 15_910);
    }

    #[test]
    fn runs_see_the_same_minibatches_and_differ_by_seed() {
        let arch = MlpArchitecture {
            inputs: 6,
            hidden: vec![4],
            classes: 3,
            activation: Activation::Sigmoid,
        };
        let a = MlpSet::sample(arch.clone(), 5, toy_data(), "toy".into(), 3, 1).unwrap();
        let b = MlpSet::sample(arch, 5, toy_data(), "toy".into(), 3, 2).unwrap();
        assert_ne!(a.runs[0], b.runs[0]);
        let mut s = a.scratch();
        let theta = a.theta0.row(0).to_vec();
        let mut g = vec![0.0; a.dim()];
        let l1 = a.loss_and_gradient(0, 7, &theta, &mut g, &mut s);
        let l2 = a.loss_and_gradient(0, 7, &theta, &mut g, &mut s);
        assert_eq!(l1, l2);
        assert!(a.theta0.iter().all(|x| x.abs() < 0.06));
    }
}
