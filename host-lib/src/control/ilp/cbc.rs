//! COIN-OR CBC as a program of its own (Debian's `coinor-cbc`), run on the ILP's program
//! within a deadline that holds. Owns finding the program (`$E3_CBC`, else `cbc` on PATH), the
//! temporary files (the LP file, the starting solution, CBC's solution and output), and how a
//! run ends; `solution` reads the solution file, `group` starts, signals and reaps CBC.
//!
//! CBC gets its own limit (`sec`, wall-clock), but it does not look at the clock during its
//! first LP solve, root cuts and heuristics, so the limit alone is not kept. The deadline is:
//! a grace period before it (a quarter of the time left when CBC starts, at most
//! [`MAX_GRACE`]) CBC is interrupted with SIGINT, which its branch and bound heeds within
//! milliseconds, writing its best incumbent; at the deadline it is killed. Measured here
//! (CBC 2.10.8): interrupted in branch and bound it wrote its solution and exited 18 ms later;
//! interrupted during its initial LP solve or its feasibility pump it went on to its own limit;
//! on the placer's IoT-TS program it heeded an interrupt only at the end of its root cut loop,
//! seconds later. Killed, it leaves no solution, and the caller falls back on its own start.
//!
//! CBC runs in a process group of its own and the signals go to the group, so a wrapper script
//! named by `$E3_CBC` takes the real CBC down with it; whatever of the group is left when the
//! program ends is killed too. A solution is read only when the program exited with status 0,
//! so a wrapper should `exec` CBC (or pass on its status): dash, for one, waits for CBC on an
//! interrupt and then dies of it, and the incumbent CBC wrote is not read.

mod group;
mod solution;

use std::env;
use std::ffi::OsString;
use std::fmt;
use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{self, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::model::{
    write_lp, write_start, Constraint, Expression, ProblemVariables, ProgramError, WriteError,
};
use group::{Ended, Group};
pub use solution::{parse_solution, SolutionProblem, Status};

/// The environment variable that names the `cbc` program to run.
pub const PROGRAM_VARIABLE: &str = "E3_CBC";
/// The program's name on PATH.
pub const PROGRAM_NAME: &str = "cbc";
/// The longest time between interrupting CBC and killing it.
pub const MAX_GRACE: Duration = Duration::from_millis(500);
/// Bytes of CBC's output quoted when it fails.
const OUTPUT_TAIL: u64 = 600;

/// Why CBC gave no answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SolverError {
    /// There is no CBC program: `looked` says where it was looked for.
    NotFound {
        /// Where it was looked for.
        looked: String,
    },
    /// The program could not be started.
    Start {
        /// The program.
        program: PathBuf,
        /// The system's reason.
        reason: String,
    },
    /// A temporary file could not be made, written or read.
    Files {
        /// The file or directory.
        path: PathBuf,
        /// The system's reason.
        reason: String,
    },
    /// The program cannot be written as an LP file.
    Program(ProgramError),
    /// CBC ended without writing a solution.
    Failed {
        /// How it ended.
        how: String,
        /// The end of its output.
        output: String,
    },
    /// CBC found that the program has no solution.
    Infeasible,
    /// CBC's solution file does not read as one.
    BadSolution {
        /// The line (1-based).
        line: usize,
        /// What is wrong with it.
        problem: SolutionProblem,
    },
}

impl fmt::Display for SolverError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SolverError::NotFound { looked } => write!(
                f,
                "CBC is not installed ({looked}): install Debian's coinor-cbc \
                 (`apt-get install coinor-cbc`) or set {PROGRAM_VARIABLE} to a cbc program"
            ),
            SolverError::Start { program, reason } => {
                write!(f, "could not start {}: {reason}", program.display())
            }
            SolverError::Files { path, reason } => write!(f, "{}: {reason}", path.display()),
            SolverError::Program(error) => write!(f, "the program cannot be written: {error}"),
            SolverError::Failed { how, output } => {
                write!(
                    f,
                    "CBC {how} without writing a solution; its output ends: {output}"
                )
            }
            SolverError::Infeasible => f.write_str("CBC found the program infeasible"),
            SolverError::BadSolution { line, problem } => {
                write!(f, "CBC's solution file, line {line}: {problem}")
            }
        }
    }
}

impl std::error::Error for SolverError {}

/// How a run ended.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// The deadline came while the program was being written, after `rows` rows.
    OutOfTimeWriting {
        /// Rows written.
        rows: usize,
    },
    /// The deadline came before CBC could be started.
    NoTimeLeft,
    /// CBC was interrupted, was still running at the deadline, and was killed.
    Killed,
    /// CBC was interrupted and ended without a solution to read: it ended `how` ("exited
    /// with status 0", "was killed by signal 2") and wrote no solution file, or did not exit
    /// normally (then its file, if any, is not trusted).
    EndedWithoutSolution {
        /// How it ended.
        how: String,
    },
    /// CBC wrote a solution.
    Solved {
        /// What it says of it.
        status: Status,
        /// Every variable's value, by index (CBC leaves out zeros).
        values: Vec<f64>,
        /// Whether CBC had been interrupted (else it stopped by itself: done, or at its own
        /// limit).
        interrupted: bool,
    },
}

/// The `cbc` program.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cbc {
    program: PathBuf,
}

impl Cbc {
    /// `program` if given, else `$E3_CBC`, else `cbc` on PATH; a name without a `/` is looked
    /// up on PATH.
    pub fn locate(program: Option<&Path>) -> Result<Cbc, SolverError> {
        let (wanted, from) = match program {
            Some(program) => (program.as_os_str().to_owned(), "the ILP's program"),
            None => match env::var_os(PROGRAM_VARIABLE).filter(|v| !v.is_empty()) {
                Some(value) => (value, PROGRAM_VARIABLE),
                None => (OsString::from(PROGRAM_NAME), "PATH"),
            },
        };
        Self::locate_in(&wanted, from, env::var_os("PATH"))
    }

    /// [`locate`](Self::locate) with the choice made: `wanted` (named by `from`, for the
    /// message) and the `PATH` to search.
    fn locate_in(
        wanted: &OsString,
        from: &str,
        path: Option<OsString>,
    ) -> Result<Cbc, SolverError> {
        let wanted_path = Path::new(wanted);
        if wanted_path.components().count() > 1 {
            return if is_executable(wanted_path) {
                Ok(Cbc::at(wanted_path))
            } else {
                Err(SolverError::NotFound {
                    looked: format!(
                        "{from} names {}, which is not an executable file",
                        wanted_path.display()
                    ),
                })
            };
        }
        path.iter()
            .flat_map(env::split_paths)
            .map(|dir| dir.join(wanted_path))
            .find(|candidate| is_executable(candidate))
            .map(|program| Cbc::at(&program))
            .ok_or_else(|| SolverError::NotFound {
                looked: format!("no `{}` on PATH", wanted_path.display()),
            })
    }

    /// The program at `path`, made absolute: CBC runs in a directory of its own, where a
    /// relative path would name another file.
    fn at(path: &Path) -> Cbc {
        Cbc {
            program: std::path::absolute(path).unwrap_or_else(|_| path.to_owned()),
        }
    }

    /// The program that runs.
    pub fn program(&self) -> &Path {
        &self.program
    }

    /// Minimises `objective` subject to `rows` over `vars`, starting from the variables'
    /// initial values, and returns by `deadline` (give or take the few milliseconds it takes
    /// to kill CBC and read its solution).
    pub fn solve(
        &self,
        vars: &ProblemVariables,
        objective: &Expression,
        rows: &[Constraint],
        deadline: Instant,
    ) -> Result<Outcome, SolverError> {
        let dir = TempDir::new()?;
        match write_program(&dir, vars, objective, rows, deadline)? {
            Written::Stopped { rows } => Ok(Outcome::OutOfTimeWriting { rows }),
            Written::Done { starts } => self.run(&dir, starts > 0, vars.len(), deadline),
        }
    }

    /// Runs CBC on the program written in `dir` (of `variables` variables, with a starting
    /// solution if `start`) until `deadline`, and reads its solution.
    fn run(
        &self,
        dir: &TempDir,
        start: bool,
        variables: usize,
        deadline: Instant,
    ) -> Result<Outcome, SolverError> {
        let solution = dir.file("solution.sol");
        let log_path = dir.file("cbc.log");
        let log = File::create(&log_path).map_err(|e| files(&log_path, &e))?;
        let err_log = log.try_clone().map_err(|e| files(&log_path, &e))?;

        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Ok(Outcome::NoTimeLeft);
        }
        let grace = MAX_GRACE.min(remaining / 4);
        let mut command = self.command(dir, start, remaining - grace);
        command.stdout(log).stderr(err_log);
        let group = Group::spawn(&mut command).map_err(|e| SolverError::Start {
            program: self.program.clone(),
            reason: e.to_string(),
        })?;
        let ended = group
            .wait(deadline - grace, deadline)
            .map_err(|e| SolverError::Failed {
                how: format!("could not be waited for ({e})"),
                output: tail(&log_path),
            })?;
        let (status, interrupted) = match ended {
            Ended::Killed => return Ok(Outcome::Killed),
            Ended::Exited {
                status,
                interrupted,
            } => (status, interrupted),
        };
        // A CBC that was interrupted and gave nothing was cut off; one that failed on its own
        // (it exits 0 even when it cannot read its input) is an error. A solution file is
        // trusted only from a CBC that exited normally: killed while writing, it may leave
        // part of one, and a column left out reads as zero.
        let failed = |how: String| {
            if interrupted {
                Ok(Outcome::EndedWithoutSolution { how })
            } else {
                Err(SolverError::Failed {
                    how,
                    output: tail(&log_path),
                })
            }
        };
        if !status.success() {
            return failed(ended_how(status));
        }
        let text = match fs::read_to_string(&solution) {
            Ok(text) => text,
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                return failed(ended_how(status))
            }
            Err(error) => return Err(files(&solution, &error)),
        };
        let (status, values) = parse_solution(&text, variables)?;
        Ok(Outcome::Solved {
            status,
            values,
            interrupted,
        })
    }

    /// The command line: in `dir`, read `program.lp` (and `start.sol` if `start`), solve
    /// within `seconds` of wall-clock time, write `solution.sol`.
    fn command(&self, dir: &TempDir, start: bool, seconds: Duration) -> Command {
        let mut command = Command::new(&self.program);
        command.current_dir(dir.path()).arg("program.lp");
        if start {
            command.args(["mipStart", "start.sol"]);
        }
        // Fractions of seconds are allowed. Preprocessing is off: CBC 2.10.8 can crash in its
        // post-processing when its limit stops it (seen here in CglPreProcess::postProcess).
        command
            .args(["timeMode", "elapsed", "seconds"])
            .arg(format!("{:.3}", seconds.as_secs_f64().max(0.001)))
            .args(["preprocess", "off", "logLevel", "0", "slogLevel", "0"])
            .args(["solve", "solution", "solution.sol"])
            .stdin(Stdio::null());
        command
    }
}

/// How far writing the program got.
enum Written {
    /// The deadline came after `rows` rows.
    Stopped {
        /// Rows written.
        rows: usize,
    },
    /// The LP file and the starting solution (`starts` values) are written.
    Done {
        /// Values in the starting solution.
        starts: usize,
    },
}

/// Writes `program.lp` and `start.sol` into `dir`, stopping at `deadline`.
fn write_program(
    dir: &TempDir,
    vars: &ProblemVariables,
    objective: &Expression,
    rows: &[Constraint],
    deadline: Instant,
) -> Result<Written, SolverError> {
    let unwritten = |path: &Path, error: WriteError| match error {
        WriteError::Stopped { rows } => Ok(Written::Stopped { rows }),
        WriteError::Program(error) => Err(SolverError::Program(error)),
        WriteError::Io(error) => Err(files(path, &error)),
    };
    let lp = dir.file("program.lp");
    if let Err(error) = write_file(&lp, |out| {
        write_lp(out, vars, objective, rows, || Instant::now() < deadline)
    }) {
        return unwritten(&lp, error);
    }
    let start = dir.file("start.sol");
    match write_file(&start, |out| write_start(out, vars)) {
        Ok(starts) => Ok(Written::Done { starts }),
        Err(error) => unwritten(&start, error),
    }
}

/// A directory of our own under the system's temporary directory, removed with everything in
/// it when dropped.
pub(super) struct TempDir(PathBuf);

impl TempDir {
    pub(super) fn new() -> Result<TempDir, SolverError> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let base = env::temp_dir();
        let mut last = None;
        for _ in 0..64 {
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let path = base.join(format!("e3-cbc-{}-{n}", process::id()));
            match fs::create_dir(&path) {
                Ok(()) => return Ok(TempDir(path)),
                // Left behind by an earlier process with our pid: take the next name.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last = Some(e),
                Err(e) => return Err(files(&path, &e)),
            }
        }
        let error = last.unwrap_or_else(|| io::Error::from(io::ErrorKind::AlreadyExists));
        Err(files(&base, &error))
    }

    pub(super) fn path(&self) -> &Path {
        &self.0
    }

    pub(super) fn file(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Creates `path` and fills it with `write` through a buffer.
fn write_file<T, E: From<io::Error>>(
    path: &Path,
    write: impl FnOnce(&mut BufWriter<File>) -> Result<T, E>,
) -> Result<T, E> {
    let mut out = BufWriter::new(File::create(path)?);
    let value = write(&mut out)?;
    out.flush()?;
    Ok(value)
}

fn files(path: &Path, error: &io::Error) -> SolverError {
    SolverError::Files {
        path: path.to_owned(),
        reason: error.to_string(),
    }
}

/// "exited with status 1", "was killed by signal 11", ...
fn ended_how(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(signal)) => format!("was killed by signal {signal}"),
        _ => format!("ended ({status})"),
    }
}

/// The last few hundred bytes of `path`, on one line.
fn tail(path: &Path) -> String {
    let read = || -> io::Result<String> {
        let mut file = File::open(path)?;
        let length = file.metadata()?.len();
        file.seek(SeekFrom::Start(length.saturating_sub(OUTPUT_TAIL)))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    };
    match read() {
        Ok(text) => text.split_whitespace().collect::<Vec<_>>().join(" "),
        Err(error) => format!("(its output could not be read: {error})"),
    }
}

/// Whether `path` is a file someone may execute.
fn is_executable(path: &Path) -> bool {
    fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
pub(super) mod stand_ins;
#[cfg(test)]
mod tests;
