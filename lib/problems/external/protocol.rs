//! The external optimizee protocol (docs/formats.md, "External optimizees"): l2l starts the
//! command and asks over its standard input and output; every frame is a 4-byte ASCII tag, the
//! payload's length in bytes (u32), and the payload, all little-endian. Nothing is parsed as
//! text but the names of parameter groups and a process's own error message.

use crate::problems::ParamGroup;
use std::io::{BufWriter, Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::Duration;

/// The protocol version this l2l speaks.
pub const PROTOCOL_VERSION: u32 = 1;
/// The longest payload a process may send (2 GiB: half a billion f32 parameters).
const MAX_PAYLOAD: u32 = 1 << 31;

/// The problems a process offers, by role: meta-training, validation (and tuning), and test
/// runs. Each problem is an index the process maps to its own θ0 and minibatches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Train,
    Validation,
    Test,
}

impl Role {
    pub const NAMES: [&'static str; 3] = ["train", "validation", "test"];

    pub fn name(self) -> &'static str {
        Self::NAMES[self.code() as usize]
    }

    pub fn code(self) -> u32 {
        match self {
            Role::Train => 0,
            Role::Validation => 1,
            Role::Test => 2,
        }
    }

    pub fn parse(name: &str) -> Option<Role> {
        match name {
            "train" => Some(Role::Train),
            "validation" => Some(Role::Validation),
            "test" => Some(Role::Test),
            _ => None,
        }
    }
}

/// What a process answers to `HELO`.
#[derive(Clone, Debug, PartialEq)]
pub struct Handshake {
    /// Parameters per problem.
    pub dim: usize,
    /// How many problems it offers in each role, in [`Role`]'s order.
    pub offered: [u64; 3],
    pub groups: Vec<ParamGroup>,
}

/// One running optimizee process.
pub struct Connection {
    child: Child,
    stdin: Option<BufWriter<ChildStdin>>,
    frames: Receiver<std::io::Result<([u8; 4], Vec<u8>)>>,
    timeout: Duration,
}

impl Connection {
    /// Starts `command` with `sh -c` (its standard error stays the terminal's) and reads its
    /// handshake.
    pub fn start(command: &str, timeout: Duration) -> Result<(Connection, Handshake), String> {
        // A group of its own, so that stopping it stops what the shell started too (a process
        // left holding l2l's standard error would keep a pipe open after l2l exits).
        let mut child = Command::new("sh")
            .args(["-c", command])
            .process_group(0)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("could not start it: {e}"))?;
        let stdin = child.stdin.take().map(BufWriter::new);
        let mut stdout = child.stdout.take().expect("piped");
        let (send, frames) = std::sync::mpsc::channel();
        // std has no read timeout on a pipe: a thread reads whole frames, and a request waits
        // for the next one with a timeout.
        std::thread::spawn(move || loop {
            let frame = read_frame(&mut stdout);
            let stop = frame.is_err();
            if send.send(frame).is_err() || stop {
                break;
            }
        });
        let mut connection = Connection {
            child,
            stdin,
            frames,
            timeout,
        };
        let answer = connection.ask(b"HELO", &PROTOCOL_VERSION.to_le_bytes())?;
        let handshake = parse_handshake(&answer)?;
        Ok((connection, handshake))
    }

    /// θ0 of problem `index` of `role`.
    pub fn initial_point(
        &mut self,
        role: Role,
        index: u64,
        theta: &mut [f32],
    ) -> Result<(), String> {
        let mut payload = Vec::with_capacity(12);
        payload.extend_from_slice(&role.code().to_le_bytes());
        payload.extend_from_slice(&index.to_le_bytes());
        let answer = self.ask(b"INIT", &payload)?;
        read_values(&answer, theta, "θ0")
    }

    /// The loss of problem `index` of `role` at `step` and θ, with its gradient in `grad`.
    pub fn loss_and_gradient(
        &mut self,
        role: Role,
        index: u64,
        step: u64,
        theta: &[f32],
        grad: &mut [f32],
    ) -> Result<f64, String> {
        let mut payload = Vec::with_capacity(20 + 4 * theta.len());
        payload.extend_from_slice(&role.code().to_le_bytes());
        payload.extend_from_slice(&index.to_le_bytes());
        payload.extend_from_slice(&step.to_le_bytes());
        for v in theta {
            payload.extend_from_slice(&v.to_le_bytes());
        }
        let answer = self.ask(b"GRAD", &payload)?;
        if answer.len() < 8 {
            return Err(format!(
                "answered GRAD with {} bytes, fewer than its f64 loss",
                answer.len()
            ));
        }
        let loss = f64::from_le_bytes(answer[..8].try_into().expect("8 bytes"));
        read_values(&answer[8..], grad, "gradient")?;
        if !loss.is_finite() {
            return Err(format!("sent the loss {loss}"));
        }
        Ok(loss)
    }

    /// Sends one request and waits for its answer, which must carry the same tag.
    fn ask(&mut self, tag: &[u8; 4], payload: &[u8]) -> Result<Vec<u8>, String> {
        let name = String::from_utf8_lossy(tag).into_owned();
        let stdin = self.stdin.as_mut().ok_or("its input is closed")?;
        if write_frame(stdin, tag, payload).is_err() {
            return Err(self.ended(&name));
        }
        match self.frames.recv_timeout(self.timeout) {
            Ok(Ok((answer, body))) if &answer == tag => Ok(body),
            Ok(Ok((answer, body))) if &answer == b"FAIL" => Err(format!(
                "failed on {name}: {}",
                String::from_utf8_lossy(&body).trim()
            )),
            Ok(Ok((answer, _))) => Err(format!(
                "answered {name} with a frame tagged {:?}",
                String::from_utf8_lossy(&answer)
            )),
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::InvalidData => {
                self.stop();
                Err(format!("answered {name} with {e}"))
            }
            Ok(Err(_)) | Err(RecvTimeoutError::Disconnected) => Err(self.ended(&name)),
            Err(RecvTimeoutError::Timeout) => {
                self.stop();
                Err(format!(
                    "did not answer {name} within {} s (the spec's timeout_s)",
                    self.timeout.as_secs_f64()
                ))
            }
        }
    }

    /// Why the process stopped answering `request`: its exit status where it has exited.
    fn ended(&mut self, request: &str) -> String {
        self.stdin = None;
        let status = (0..50).find_map(|_| match self.child.try_wait() {
            Ok(Some(status)) => Some(status),
            _ => {
                std::thread::sleep(Duration::from_millis(20));
                None
            }
        });
        match status {
            Some(s) => format!("exited ({s}) before it answered {request}"),
            None => format!("closed its output before it answered {request}"),
        }
    }

    /// Stops the process and everything it started (its process group).
    fn stop(&mut self) {
        self.stdin = None;
        // SAFETY: kill(2) with a negative pid signals that process group; the group is the
        // child's own (process_group(0)), whose id is the child's pid.
        unsafe {
            libc::kill(-(self.child.id() as libc::pid_t), libc::SIGKILL);
        }
        let _ = self.child.wait();
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        // Closing its input tells a well-behaved process to exit; whatever still runs after a
        // moment is stopped, and reaped, so that no zombie is left.
        self.stdin = None;
        for _ in 0..20 {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        self.stop();
    }
}

/// Reads one frame: its tag and payload. A payload longer than the protocol allows, or cut
/// short, is `InvalidData`; the end of the input before a frame is `UnexpectedEof`.
pub fn read_frame(r: &mut impl Read) -> std::io::Result<([u8; 4], Vec<u8>)> {
    let mut header = [0u8; 8];
    r.read_exact(&mut header)?;
    let tag: [u8; 4] = header[..4].try_into().expect("4 bytes");
    let len = u32::from_le_bytes(header[4..].try_into().expect("4 bytes"));
    if len > MAX_PAYLOAD {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("a payload of {len} bytes, more than the protocol's {MAX_PAYLOAD}"),
        ));
    }
    let mut body = vec![0u8; len as usize];
    r.read_exact(&mut body).map_err(|e| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("a frame cut short: its header promised {len} bytes"),
            )
        } else {
            e
        }
    })?;
    Ok((tag, body))
}

/// Writes one frame and flushes it.
pub fn write_frame(w: &mut impl Write, tag: &[u8; 4], payload: &[u8]) -> std::io::Result<()> {
    w.write_all(tag)?;
    w.write_all(&(payload.len() as u32).to_le_bytes())?;
    w.write_all(payload)?;
    w.flush()
}

/// Fills `out` with the little-endian f32 values of `bytes`, which must be exactly as many,
/// and all finite.
pub fn read_values(bytes: &[u8], out: &mut [f32], what: &str) -> Result<(), String> {
    if bytes.len() != 4 * out.len() {
        return Err(format!(
            "sent a {what} of {} bytes; {} parameters take {}",
            bytes.len(),
            out.len(),
            4 * out.len()
        ));
    }
    for (v, b) in out.iter_mut().zip(bytes.chunks_exact(4)) {
        *v = f32::from_le_bytes(b.try_into().expect("4 bytes"));
    }
    if let Some(i) = out.iter().position(|v| !v.is_finite()) {
        return Err(format!("sent a {what} whose value {i} is {}", out[i]));
    }
    Ok(())
}

/// Reads a `HELO` answer: version, dim, the three roles' counts, then the groups.
pub fn parse_handshake(bytes: &[u8]) -> Result<Handshake, String> {
    let mut r = Fields { bytes, at: 0 };
    let version = r.u32()?;
    if version != PROTOCOL_VERSION {
        return Err(format!(
            "speaks protocol version {version}; this l2l speaks version {PROTOCOL_VERSION}"
        ));
    }
    let dim = r.u64()? as usize;
    if dim == 0 {
        return Err("offers problems of 0 parameters".into());
    }
    let offered = [r.u64()?, r.u64()?, r.u64()?];
    let count = r.u32()?;
    let mut groups = Vec::new();
    for _ in 0..count {
        let len = r.u32()? as usize;
        let name = String::from_utf8(r.take(len)?.to_vec())
            .map_err(|_| "named a parameter group in bytes that are not UTF-8".to_string())?;
        let ranges = (0..r.u32()?)
            .map(|_| Ok(r.u64()? as usize..r.u64()? as usize))
            .collect::<Result<Vec<_>, String>>()?;
        groups.push(ParamGroup { name, ranges });
    }
    if r.at != bytes.len() {
        return Err(format!(
            "sent a handshake of {} bytes, {} more than its fields",
            bytes.len(),
            bytes.len() - r.at
        ));
    }
    if groups.is_empty() {
        groups.push(ParamGroup::all(dim));
    }
    check_groups(&groups, dim)?;
    Ok(Handshake {
        dim,
        offered,
        groups,
    })
}

/// Groups must cover every parameter exactly once.
pub fn check_groups(groups: &[ParamGroup], dim: usize) -> Result<(), String> {
    let mut covered = vec![false; dim];
    for g in groups {
        for r in &g.ranges {
            if r.start >= r.end || r.end > dim {
                return Err(format!(
                    "gives group '{}' the range {}..{}, outside 0..{dim} or empty",
                    g.name, r.start, r.end
                ));
            }
            for c in &mut covered[r.clone()] {
                if std::mem::replace(c, true) {
                    return Err(format!("puts a parameter in two groups ('{}')", g.name));
                }
            }
        }
    }
    match covered.iter().position(|c| !c) {
        Some(i) => Err(format!("leaves parameter {i} in no group")),
        None => Ok(()),
    }
}

struct Fields<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Fields<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.bytes.len());
        let end = end.ok_or_else(|| {
            format!(
                "sent a handshake of {} bytes, too short for its fields",
                self.bytes.len()
            )
        })?;
        let field = &self.bytes[self.at..end];
        self.at = end;
        Ok(field)
    }
    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }
    fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }
}
