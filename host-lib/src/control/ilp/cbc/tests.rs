//! Finding the program, the deadline and the process group: the real CBC on small programs,
//! and stand-in programs (`stand_ins`) that ignore the interrupt, answer it, quit on it, fail,
//! write nothing, or wrap another program, so every way a run can end is exercised without
//! timing anything. The solution file's format is tested in `solution`.

use super::stand_ins::scripts;
use super::*;
use crate::control::ilp::model::{variable, Place, Variable};
use std::thread;

/// The real CBC; the test fails, saying how to install it, when it is missing.
fn real() -> Cbc {
    Cbc::locate(None).unwrap_or_else(|e| panic!("{e}"))
}

/// min x0 + 2 x1 subject to x0 + x1 >= 1, both binary, starting from x1 = 1: x0 = 1 is best.
fn tiny() -> (ProblemVariables, Expression, Vec<Constraint>) {
    let mut vars = ProblemVariables::new();
    let a = vars.add(variable().binary().initial(0.0));
    let b = vars.add(variable().binary().initial(1.0));
    let mut objective = Expression::default();
    objective.add_mul(1.0, a);
    objective.add_mul(2.0, b);
    let rows = vec![Expression::from(1.0).leq(Expression::from(a) + b)];
    (vars, objective, rows)
}

fn solve(cbc: &Cbc, within: Duration) -> Result<Outcome, SolverError> {
    let (vars, objective, rows) = tiny();
    cbc.solve(&vars, &objective, &rows, Instant::now() + within)
}

/// The stand-in `name` of `dir`.
fn stand_in(dir: &TempDir, name: &str) -> Cbc {
    Cbc {
        program: dir.file(name),
    }
}

/// Runs the stand-in `name` on the small program.
fn solve_with(name: &str, within: Duration) -> Result<Outcome, SolverError> {
    solve(&stand_in(&scripts(), name), within)
}

/// The pid a stand-in wrote into `file` of `dir`.
fn pid_in(dir: &TempDir, file: &str) -> libc::pid_t {
    let text = fs::read_to_string(dir.file(file))
        .unwrap_or_else(|e| panic!("{file}: {e} (the stand-in never started?)"));
    text.trim().parse().unwrap()
}

/// The state letter and parent of process `pid`, or `None` if there is none.
fn state(pid: libc::pid_t) -> Option<(char, u32)> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `pid (name) state ppid ...`: the name may hold spaces, so read after its `)`.
    let (_, rest) = stat.rsplit_once(") ")?;
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    Some((state, fields.next()?.parse().ok()?))
}

/// Whether process `pid` dies (is gone, or a zombie left for its new parent to reap) within
/// ten seconds: a kill takes a moment to land, and this is a bound on a hang, not a timing.
fn dies(pid: libc::pid_t) -> bool {
    for _ in 0..1000 {
        if !matches!(state(pid), Some((s, _)) if s != 'Z' && s != 'X') {
            return true;
        }
        thread::sleep(Duration::from_millis(10));
    }
    false
}

/// Whether process `pid`, a child of this process, has been reaped.
fn reaped(pid: libc::pid_t) -> bool {
    state(pid).is_none_or(|(_, parent)| parent != process::id())
}

#[test]
fn the_real_cbc_solves_a_small_program() {
    let outcome = solve(&real(), Duration::from_secs(30)).unwrap();
    assert_eq!(
        outcome,
        Outcome::Solved {
            status: Status::Optimal,
            values: vec![1.0, 0.0],
            interrupted: false,
        }
    );
}

#[test]
fn the_real_cbc_numbers_the_columns_as_the_program_does() {
    // min x2 - x3 subject to x0 + x1 + x2 >= 1, x0 + x1 <= 1, x3 <= 2 x1; x0, x1, x2 binary,
    // 0 <= x3 <= 5: x1 = 1, x3 = 2 is the one optimum. x0 and x1 are not in the objective, so
    // CBC would meet them after x3 but for the objective naming every column in order.
    let mut vars = ProblemVariables::new();
    let x: Vec<Variable> = (0..3).map(|_| vars.add(variable().binary())).collect();
    let y = vars.add(variable().min(0.0).max(5.0));
    let mut objective = Expression::from(x[2]);
    objective.add_mul(-1.0, y);
    let rows = vec![
        Expression::from(1.0).leq(Expression::from(x[0]) + x[1] + x[2]),
        (Expression::from(x[0]) + x[1]).leq(1.0),
        Expression::from(y).leq(Expression::from(x[1]) * 2.0),
    ];
    let deadline = Instant::now() + Duration::from_secs(30);
    let outcome = real().solve(&vars, &objective, &rows, deadline).unwrap();
    assert_eq!(
        outcome,
        Outcome::Solved {
            status: Status::Optimal,
            values: vec![0.0, 1.0, 0.0, 2.0],
            interrupted: false,
        }
    );
}

#[test]
fn a_program_that_ignores_the_interrupt_is_killed_at_the_deadline() {
    // The stand-in would write an optimal answer after a minute: a run that is not killed
    // comes back solved. The bound is sixty times the limit and half the stand-in's own
    // time, to catch a deadline that waits for the program, not to time one that does not.
    let started = Instant::now();
    let outcome = solve_with("deaf", Duration::from_millis(500)).unwrap();
    let took = started.elapsed();
    assert_eq!(outcome, Outcome::Killed);
    assert!(took < Duration::from_secs(30), "{took:?}");
}

#[test]
fn an_interrupted_program_gives_its_incumbent() {
    let outcome = solve_with("answers", Duration::from_secs(2)).unwrap();
    assert_eq!(
        outcome,
        Outcome::Solved {
            status: Status::Stopped { integral: true },
            values: vec![1.0, 0.0],
            interrupted: true,
        }
    );
}

#[test]
fn a_program_that_ends_on_the_interrupt_without_a_solution_says_how_it_ended() {
    let outcome = solve_with("quits", Duration::from_secs(1)).unwrap();
    assert_eq!(
        outcome,
        Outcome::EndedWithoutSolution {
            how: "exited with status 0".into()
        }
    );
}

#[test]
fn a_program_that_fails_is_an_error_that_quotes_it() {
    let error = solve_with("crashes", Duration::from_secs(30)).unwrap_err();
    assert_eq!(
        error,
        SolverError::Failed {
            how: "exited with status 139".into(),
            output: "Segmentation fault".into(),
        }
    );
    let error = solve_with("silent", Duration::from_secs(30)).unwrap_err();
    assert!(
        matches!(&error, SolverError::Failed { how, .. } if how == "exited with status 0"),
        "{error:?}"
    );
}

#[test]
fn the_interrupt_and_the_kill_reach_the_program_a_wrapper_runs() {
    // A wrapper script that runs its program without `exec`: signalled alone, the wrapper
    // would die and its program (which ignores the interrupt) run on.
    let dir = scripts();
    let outcome = solve(&stand_in(&dir, "wrapper"), Duration::from_secs(2)).unwrap();
    assert_eq!(outcome, Outcome::Killed);
    let (wrapper, grandchild) = (pid_in(&dir, "wrapper.pid"), pid_in(&dir, "grandchild.pid"));
    assert!(reaped(wrapper), "the wrapper {wrapper} is left a zombie");
    assert!(
        dies(grandchild),
        "the wrapper's program {grandchild} runs on"
    );
}

#[test]
fn the_interrupt_reaches_the_program_a_wrapper_runs() {
    // Signalled alone, the wrapper would wait for its program, which would never hear the
    // interrupt, and both would be killed at the deadline. Told with it, the program writes
    // its answer and exits 0; the wrapper then exits 0 too (bash) or dies of the interrupt
    // (dash, Debian's sh), and a program that did not exit 0 is not trusted.
    let outcome = solve_with("wraps-answers", Duration::from_secs(2)).unwrap();
    let answered = Outcome::Solved {
        status: Status::Stopped { integral: true },
        values: vec![1.0, 0.0],
        interrupted: true,
    };
    let died = Outcome::EndedWithoutSolution {
        how: "was killed by signal 2".into(),
    };
    assert!(outcome == answered || outcome == died, "{outcome:?}");
}

#[test]
fn what_a_program_leaves_running_is_killed_when_it_ends() {
    let dir = scripts();
    let error = solve(&stand_in(&dir, "leaves-child"), Duration::from_secs(30)).unwrap_err();
    assert!(
        matches!(&error, SolverError::Failed { how, .. } if how == "exited with status 0"),
        "{error:?}"
    );
    let (wrapper, grandchild) = (pid_in(&dir, "wrapper.pid"), pid_in(&dir, "grandchild.pid"));
    assert!(reaped(wrapper), "the program {wrapper} is left a zombie");
    assert!(dies(grandchild), "its child {grandchild} runs on");
}

#[test]
fn a_deadline_already_past_stops_before_the_program_is_written() {
    let (vars, objective, rows) = tiny();
    let dir = scripts();
    let outcome = stand_in(&dir, "deaf")
        .solve(&vars, &objective, &rows, Instant::now())
        .unwrap();
    assert_eq!(outcome, Outcome::OutOfTimeWriting { rows: 0 });
}

#[test]
fn a_deadline_that_passes_once_the_program_is_written_stops_before_cbc_starts() {
    // The program written in time, the deadline gone by the time CBC would start: a run of
    // the stand-in (which exits at once) would end as an error, not as `NoTimeLeft`.
    let (vars, objective, rows) = tiny();
    let scripts = scripts();
    let dir = TempDir::new().unwrap();
    let written = write_program(
        &dir,
        &vars,
        &objective,
        &rows,
        Instant::now() + Duration::from_secs(60),
    )
    .unwrap();
    assert!(matches!(written, Written::Done { starts: 2 }));
    let outcome = stand_in(&scripts, "silent")
        .run(&dir, true, vars.len(), Instant::now())
        .unwrap();
    assert_eq!(outcome, Outcome::NoTimeLeft);
}

#[test]
fn a_program_that_cannot_be_written_is_an_error_that_says_why() {
    let (mut vars, objective, rows) = tiny();
    let x = vars.add(variable().min(f64::NAN));
    let error = real()
        .solve(
            &vars,
            &objective,
            &rows,
            Instant::now() + Duration::from_secs(30),
        )
        .unwrap_err();
    assert_eq!(
        error,
        SolverError::Program(ProgramError::NotFinite {
            at: Place::Bounds(x)
        })
    );
    assert_eq!(
        error.to_string(),
        "the program cannot be written: a bound of x2 is not a number, or is infinite on the \
         wrong side"
    );
}

#[test]
fn finds_the_program_where_it_is_named() {
    let dir = scripts();
    let path = Some(OsString::from(format!(
        "/nonexistent:{}",
        dir.path().display()
    )));
    // A path names the file itself.
    let named = dir.file("silent");
    let found = Cbc::locate_in(&named.clone().into_os_string(), PROGRAM_VARIABLE, None).unwrap();
    assert_eq!(found.program(), named);
    // A bare name is looked up on PATH.
    let found = Cbc::locate_in(&OsString::from("silent"), "PATH", path.clone()).unwrap();
    assert_eq!(found.program(), named);
    // Missing, not executable, not on PATH: each says where it looked.
    let missing = Cbc::locate_in(&OsString::from("/nonexistent/cbc"), PROGRAM_VARIABLE, None);
    let message = missing.unwrap_err().to_string();
    assert_eq!(
        message,
        "CBC is not installed (E3_CBC names /nonexistent/cbc, which is not an executable \
         file): install Debian's coinor-cbc (`apt-get install coinor-cbc`) or set E3_CBC to a \
         cbc program"
    );
    let not_executable = dir.file("no-exec").into_os_string();
    assert!(matches!(
        Cbc::locate_in(&not_executable, PROGRAM_VARIABLE, None),
        Err(SolverError::NotFound { .. })
    ));
    assert_eq!(
        Cbc::locate_in(&OsString::from("no-exec"), "PATH", path.clone()),
        Err(SolverError::NotFound {
            looked: "no `no-exec` on PATH".into()
        })
    );
    assert!(Cbc::locate_in(&OsString::from("cbc"), "PATH", None).is_err());
    // A relative path is made absolute (CBC runs in a directory of its own).
    let here = env::current_dir().unwrap();
    let relative = pathdiff(&named, &here);
    let found = Cbc::locate_in(&relative.into_os_string(), PROGRAM_VARIABLE, None).unwrap();
    assert!(found.program().is_absolute());
    assert_eq!(
        fs::canonicalize(found.program()).unwrap(),
        fs::canonicalize(&named).unwrap()
    );
}

#[test]
fn the_temporary_directory_goes_with_its_files() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().to_owned();
    fs::write(dir.file("program.lp"), "x").unwrap();
    assert!(path.is_dir());
    drop(dir);
    assert!(!path.exists());
}

/// `path` relative to `base` (both absolute), through `..` up to their common ancestor.
fn pathdiff(path: &Path, base: &Path) -> PathBuf {
    let (path, base): (Vec<_>, Vec<_>) = (path.components().collect(), base.components().collect());
    let common = path.iter().zip(&base).take_while(|(a, b)| a == b).count();
    let mut relative = PathBuf::new();
    for _ in common..base.len() {
        relative.push("..");
    }
    relative.extend(&path[common..]);
    relative
}
