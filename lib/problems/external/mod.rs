//! Optimizees that live in another process (docs/formats.md, "External optimizees"): a model in
//! PyTorch, JAX or numpy answers l2l's requests for θ0, the loss and the gradient over a pipe.
//! The paper's meta-gradient treats the optimizee's gradient as an input (no second
//! derivatives, docs/method.md), so nothing else of the model is needed. Unrolls, meta-Adam,
//! checkpoints, tuning and trajectories stay l2l's.
//!
//! A spec of kind `external` records the command, the role its problems come from and which of
//! them (`seed`, the first index, and `count`). Each thread's scratch holds one process, so a
//! run uses as many processes as threads; processes are kept in a pool between runs. A process
//! must answer as a pure function of (role, index, step, θ), which keeps results the same for
//! any number of threads or processes.

mod protocol;
mod sampling;

use super::recorded::write_header;
use super::{ParamGroup, ProblemSet, TrainingSource};
use crate::datasets::{DataSplit, Split};
use crate::error::{Error, Result};
use crate::io::{write_npz, Npz};
use ndarray::{Array1, Array2, Ix2};
pub use protocol::{
    check_groups, parse_handshake, read_frame, read_values, write_frame, Connection, Handshake,
    Role, PROTOCOL_VERSION,
};
pub use sampling::ExternalSampling;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The longest a request may wait for its answer, in seconds (`timeout_s`).
pub const MAX_TIMEOUT_S: f64 = 86_400.0;

/// Refuses a timeout that is not a positive number of seconds up to [`MAX_TIMEOUT_S`].
pub fn check_timeout(timeout_s: f64) -> Result<()> {
    if timeout_s > 0.0 && timeout_s <= MAX_TIMEOUT_S {
        return Ok(());
    }
    Err(Error::setting(
        "timeout",
        format!("above 0 and at most {MAX_TIMEOUT_S} seconds"),
        timeout_s,
    ))
}

/// The processes serving one command, and the first fault any of them showed.
struct Served {
    command: String,
    timeout: Duration,
    dim: usize,
    idle: Mutex<Vec<Connection>>,
    fault: Mutex<Option<String>>,
}

impl Served {
    /// An idle process, or a new one whose handshake matches the spec.
    fn connection(&self) -> Result<Connection, String> {
        if let Some(c) = self.idle.lock().expect("not poisoned").pop() {
            return Ok(c);
        }
        let (c, hello) = Connection::start(&self.command, self.timeout)?;
        if hello.dim != self.dim {
            return Err(format!(
                "offers problems of {} parameters; the spec's have {}",
                hello.dim, self.dim
            ));
        }
        Ok(c)
    }

    /// Keeps the first fault: later ones follow from it.
    fn record(&self, what: String) {
        let mut fault = self.fault.lock().expect("not poisoned");
        if fault.is_none() {
            *fault = Some(what);
        }
    }

    fn faulted(&self) -> bool {
        self.fault.lock().expect("not poisoned").is_some()
    }
}

/// Problems `seed`, `seed + 1`, … of one role of an external optimizee.
#[derive(Clone)]
pub struct ExternalSet {
    served: Arc<Served>,
    pub role: Role,
    /// The first problem index.
    pub seed: u64,
    pub count: usize,
    pub groups: Vec<ParamGroup>,
    /// How many problems of `role` the process offered when the spec was written.
    pub offered: u64,
}

/// A thread's process, returned to the pool when the thread is done.
pub struct ExternalScratch {
    served: Arc<Served>,
    connection: Option<Connection>,
}

impl Drop for ExternalScratch {
    fn drop(&mut self) {
        if let Some(c) = self.connection.take() {
            self.served.idle.lock().expect("not poisoned").push(c);
        }
    }
}

impl ExternalSet {
    /// The set a handshake describes: `count` problems of `role` from index `seed`.
    pub fn new(
        command: String,
        timeout_s: f64,
        hello: &Handshake,
        role: Role,
        seed: u64,
        count: usize,
    ) -> Result<Self> {
        check_timeout(timeout_s)?;
        let offered = hello.offered[role.code() as usize];
        let end = seed.checked_add(count as u64);
        if count == 0 || end.is_none_or(|end| end > offered) {
            return Err(Error::Config(format!(
                "`command` offers {offered} {} problems, so `seed` {seed} and `count` {count} ask \
                 for problems it does not have; the {0} problems are 0 to {}",
                role.name(),
                offered.saturating_sub(1)
            )));
        }
        Ok(ExternalSet {
            served: Arc::new(Served {
                command,
                timeout: Duration::from_secs_f64(timeout_s),
                dim: hello.dim,
                idle: Mutex::new(Vec::new()),
                fault: Mutex::new(None),
            }),
            role,
            seed,
            count,
            groups: hello.groups.clone(),
            offered,
        })
    }

    pub fn command(&self) -> &str {
        &self.served.command
    }

    /// The problem index of the set's problem `problem`.
    fn index(&self, problem: usize) -> u64 {
        self.seed + problem as u64
    }

    /// Runs `ask` on a process; a failure is kept as the set's fault, naming the problem and
    /// the step, and its process is stopped.
    fn serve<T>(
        &self,
        scratch: &mut Option<Connection>,
        problem: usize,
        step: Option<usize>,
        ask: impl FnOnce(&mut Connection) -> Result<T, String>,
    ) -> Option<T> {
        if self.served.faulted() {
            return None;
        }
        let answer = match scratch.take() {
            Some(c) => Ok(c),
            None => self.served.connection(),
        }
        .and_then(|mut c| ask(&mut c).map(|v| (v, c)));
        match answer {
            Ok((value, c)) => {
                *scratch = Some(c);
                Some(value)
            }
            Err(why) => {
                let at = match step {
                    Some(s) => format!(
                        "{} problem {}, step {s}",
                        self.role.name(),
                        self.index(problem)
                    ),
                    None => format!("{} problem {}, θ0", self.role.name(), self.index(problem)),
                };
                self.served.record(format!(
                    "external optimizee '{}' ({at}): {why}",
                    self.served.command
                ));
                None
            }
        }
    }

    pub fn load(npz: &mut Npz, _data: Option<&Path>) -> Result<Self> {
        let bad = |npz: &Npz, d: String| Error::bad_file(npz.path(), d);
        let version = npz.scalar("protocol_version")? as u32;
        if version != PROTOCOL_VERSION {
            return Err(bad(
                npz,
                format!("protocol version {version}; this l2l speaks version {PROTOCOL_VERSION}"),
            ));
        }
        let command = npz.text("command")?;
        let role_name = npz.text("role")?;
        let role = Role::parse(&role_name).ok_or_else(|| {
            bad(
                npz,
                format!(
                    "unknown role '{role_name}'; a role is one of {}",
                    Role::NAMES.join(", ")
                ),
            )
        })?;
        let whole = |npz: &mut Npz, name: &str| -> Result<u64> {
            let v = npz.scalar(name)?;
            if v >= 0.0 && v.fract() == 0.0 && v < 2f64.powi(53) {
                Ok(v as u64)
            } else {
                Err(Error::bad_file(
                    npz.path(),
                    format!("'{name}' must be a whole number ≥ 0, found {v}"),
                ))
            }
        };
        let dim = whole(npz, "dim")? as usize;
        let seed = whole(npz, "seed")?;
        let count = whole(npz, "count")? as usize;
        let offered = whole(npz, "offered")?;
        let timeout_s = npz.scalar("timeout_s")?;
        let names = npz.text("group_names")?;
        let ranges = npz.array_nd::<i64, Ix2>("group_ranges")?;
        if ranges.ncols() != 3 {
            return Err(bad(
                npz,
                format!(
                    "'group_ranges' has shape {:?}; it holds [group, start, end] rows",
                    ranges.shape()
                ),
            ));
        }
        let mut groups: Vec<ParamGroup> = names
            .split('\n')
            .map(|n| ParamGroup {
                name: n.to_string(),
                ranges: Vec::new(),
            })
            .collect();
        for row in ranges.rows() {
            let (g, start, end) = (row[0], row[1], row[2]);
            match groups
                .get_mut(g as usize)
                .filter(|_| g >= 0 && start >= 0 && end >= 0)
            {
                Some(group) => group.ranges.push(start as usize..end as usize),
                None => {
                    return Err(bad(
                        npz,
                        format!(
                            "'group_ranges' names group {g} of {}",
                            names.split('\n').count()
                        ),
                    ))
                }
            }
        }
        check_groups(&groups, dim)
            .map_err(|e| bad(npz, format!("its parameter groups: the process {e}")))?;
        let hello = Handshake {
            dim,
            offered: {
                let mut o = [0; 3];
                o[role.code() as usize] = offered;
                o
            },
            groups,
        };
        ExternalSet::new(command, timeout_s, &hello, role, seed, count)
            .map_err(|e| bad(npz, e.to_string()))
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        write_npz(path, |a| {
            let text = |s: &str| Array1::from(s.as_bytes().to_vec());
            a.add("command", text(&self.served.command));
            a.add("role", text(self.role.name()));
            a.scalar_i64("protocol_version", PROTOCOL_VERSION as i64);
            a.scalar_i64("dim", self.served.dim as i64);
            a.scalar_i64("seed", self.seed as i64);
            a.scalar_i64("count", self.count as i64);
            a.scalar_i64("offered", self.offered as i64);
            a.scalar_f64("timeout_s", self.served.timeout.as_secs_f64());
            let names: Vec<&str> = self.groups.iter().map(|g| g.name.as_str()).collect();
            a.add("group_names", text(&names.join("\n")));
            let rows: Vec<[i64; 3]> = (self.groups.iter().enumerate())
                .flat_map(|(i, g)| {
                    g.ranges
                        .iter()
                        .map(move |r| [i as i64, r.start as i64, r.end as i64])
                })
                .collect();
            let ranges = Array2::from_shape_fn((rows.len(), 3), |(i, j)| rows[i][j]);
            a.add("group_ranges", ranges);
            write_header(a, "external", None);
            Ok(())
        })
    }
}

impl ProblemSet for ExternalSet {
    type Scratch = ExternalScratch;

    fn count(&self) -> usize {
        self.count
    }

    fn dim(&self) -> usize {
        self.served.dim
    }

    fn scratch(&self) -> ExternalScratch {
        ExternalScratch {
            served: self.served.clone(),
            connection: None,
        }
    }

    fn initial_point(&self, problem: usize, theta: &mut [f32]) {
        let mut lease = self.scratch();
        let (role, index) = (self.role, self.index(problem));
        if self
            .serve(&mut lease.connection, problem, None, |c| {
                c.initial_point(role, index, theta)
            })
            .is_none()
        {
            theta.fill(f32::NAN);
        }
    }

    fn loss_and_gradient(
        &self,
        problem: usize,
        step: usize,
        theta: &[f32],
        grad: &mut [f32],
        scratch: &mut ExternalScratch,
    ) -> f64 {
        let (role, index) = (self.role, self.index(problem));
        let answer = self.serve(&mut scratch.connection, problem, Some(step), |c| {
            c.loss_and_gradient(role, index, step as u64, theta, grad)
        });
        answer.unwrap_or_else(|| {
            grad.fill(f32::NAN);
            f64::NAN
        })
    }

    fn groups(&self) -> Vec<ParamGroup> {
        self.groups.clone()
    }

    /// Roles stand for splits: a learned optimizer meta-trained on a command's train problems
    /// is refused on that command's train or validation problems as a test.
    fn data_split(&self) -> Option<DataSplit> {
        Some(DataSplit {
            // The command stands for the data: the same command, the same problems.
            sha256: crate::datasets::hex_sha256(&[b"external:", self.served.command.as_bytes()]),
            split: match self.role {
                Role::Train | Role::Validation => Split::Train,
                Role::Test => Split::Test,
            },
        })
    }

    fn fault(&self) -> Result<()> {
        match self.served.fault.lock().expect("not poisoned").as_ref() {
            Some(what) => Err(Error::Other(what.clone())),
            None => Ok(()),
        }
    }
}

/// Meta-training's problems from an external optimizee: each epoch takes the next `batch` of
/// the training spec's problems, wrapping around (so a process that offers many training
/// problems gives every epoch fresh ones, as the paper's fresh functions do).
pub struct ExternalSource {
    pub like: ExternalSet,
}

impl TrainingSource for ExternalSource {
    type Set = ExternalSet;

    fn draw(&self, epoch: u64, batch: usize) -> ExternalSet {
        let l = &self.like;
        let pool = l.count as u64;
        let first = (epoch.wrapping_mul(batch as u64)) % pool;
        // A batch that would run past the spec's problems starts again from its first.
        let first = if first + batch as u64 > pool {
            0
        } else {
            first
        };
        ExternalSet {
            seed: l.seed + first,
            count: batch.min(l.count),
            ..l.clone()
        }
    }

    fn describe(&self) -> String {
        let l = &self.like;
        format!(
            "external(command={:?}, role={}, seed={}, count={}, dim={})",
            l.served.command,
            l.role.name(),
            l.seed,
            l.count,
            l.served.dim
        )
    }

    fn data_split(&self) -> Option<DataSplit> {
        self.like.data_split()
    }

    fn check_batch(&self, batch: usize) -> Result<()> {
        if batch > self.like.count {
            return Err(Error::Config(format!(
                "`batch` {batch} is more than the {} problems of the training spec; sample it with a \
                 larger `count`",
                self.like.count
            )));
        }
        Ok(())
    }
}
