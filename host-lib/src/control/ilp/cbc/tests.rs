//! Finding the program, reading solution files, and the deadline: the real CBC on a small
//! program, and stand-in programs (shell scripts) that ignore the interrupt, answer it, fail
//! or write nothing, so every way a run can end is exercised without timing anything. The
//! solution file's format is tested in `solution`.

use super::*;
use crate::control::ilp::model::{variable, Place, Variable};

/// Stand-in programs, written into a directory of their own.
fn scripts() -> TempDir {
    let dir = TempDir::new().unwrap();
    let write = |name: &str, body: &str, mode: u32| {
        let path = dir.file(name);
        fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
    };
    // Ignores the interrupt (as CBC does before branch and bound); `exec` so that the kill
    // reaches the sleeping process itself.
    write("deaf", "trap '' INT\nexec sleep 60", 0o755);
    // Writes an incumbent when interrupted, as CBC's branch and bound does.
    write(
        "answers",
        "trap 'printf \"Stopped on iterations - objective value 1\\n      0 x0  1  0\\n\" \
         > solution.sol; exit 0' INT\nwhile :; do sleep 0.01; done",
        0o755,
    );
    write("silent", "exit 0", 0o755);
    write("crashes", "echo 'Segmentation fault' >&2\nexit 139", 0o755);
    write("no-exec", "exit 0", 0o644);
    dir
}

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
    // A script just written may be busy for a moment: another test thread that forks while
    // it is open for writing holds it open until that child's exec.
    for _ in 0..20 {
        match cbc.solve(&vars, &objective, &rows, Instant::now() + within) {
            Err(SolverError::Start { reason, .. }) if reason.contains("busy") => {
                thread::sleep(Duration::from_millis(10))
            }
            other => return other,
        }
    }
    panic!("{} stayed busy", cbc.program().display())
}

/// Runs the stand-in `name` on the small program.
fn solve_with(name: &str, within: Duration) -> Result<Outcome, SolverError> {
    let dir = scripts();
    let cbc = Cbc {
        program: dir.file(name),
    };
    solve(&cbc, within)
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
fn a_program_that_ignores_the_interrupt_is_killed_at_the_deadline() {
    let outcome = solve_with("deaf", Duration::from_millis(300)).unwrap();
    assert_eq!(outcome, Outcome::Cut);
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
fn a_deadline_already_past_stops_before_cbc_starts() {
    let (vars, objective, rows) = tiny();
    let past = Instant::now();
    let dir = scripts();
    let deaf = Cbc {
        program: dir.file("deaf"),
    };
    let outcome = deaf.solve(&vars, &objective, &rows, past).unwrap();
    assert_eq!(outcome, Outcome::OutOfTimeWriting { rows: 0 });
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
