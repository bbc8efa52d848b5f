//! The LP text of small programs, byte for byte: bounds of every shape, merged and wrapped
//! terms, every variable named in the objective, the starting solution; numbers that are not
//! finite and variables of another program; stopping on the caller's word.

use super::*;

fn text(vars: &ProblemVariables, objective: &Expression, rows: &[Constraint]) -> String {
    let mut out = Vec::new();
    write_lp(&mut out, vars, objective, rows, || true).unwrap();
    String::from_utf8(out).unwrap()
}

#[test]
fn writes_every_kind_of_bound_and_row() {
    let mut vars = ProblemVariables::new();
    let a = vars.add(variable().binary().initial(1.0));
    let b = vars.add(variable().min(0.0).max(1.0));
    let c = vars.add(variable());
    let d = vars.add(variable().min(0.0));
    let e = vars.add(variable().max(5.0));
    let f = vars.add(variable().min(-2.5));
    // 2a + b - b + 3: b cancels and the constant is left out.
    let mut objective = Expression::from(3.0);
    objective.add_mul(2.0, a);
    objective.add_mul(1.0, b);
    objective.add_mul(-1.0, b);
    let rows = vec![
        (Expression::from(a) + b - 1.0).leq(c),
        Expression::from(d).eq((Expression::from(e) + 0.5) * 4.0),
        Expression::from(f).leq(7.0),
    ];
    assert_eq!(
        text(&vars, &objective, &rows),
        "\\ e3 placement ILP\nMinimize\n obj: +2e0 x0 +0e0 x1 +0e0 x2 +0e0 x3 +0e0 x4 +0e0 x5\n\
         Subject To\n \
         c0: +1e0 x0 +1e0 x1 -1e0 x2 <= 1e0\n \
         c1: +1e0 x3 -4e0 x4 = 2e0\n \
         c2: +1e0 x5 <= 7e0\n\
         Bounds\n 0e0 <= x0 <= 1e0\n 0e0 <= x1 <= 1e0\n x2 free\n -inf <= x4 <= 5e0\n \
         x5 >= -2.5e0\nGenerals\n x0\nEnd\n"
    );
    let mut start = Vec::new();
    assert_eq!(write_start(&mut start, &vars).unwrap(), 1);
    assert_eq!(String::from_utf8(start).unwrap(), "0 x0 1e0\n");
}

#[test]
fn long_rows_go_on_over_lines_and_empty_ones_get_a_zero_term() {
    let mut vars = ProblemVariables::new();
    let xs: Vec<Variable> = (0..10).map(|_| vars.add(variable().min(0.0))).collect();
    let sum: Expression = xs.iter().copied().sum();
    let rows = vec![sum.eq(1.0), Expression::from(0.0).leq(2.0)];
    let written = text(&vars, &Expression::default(), &rows);
    // Every variable is named in the objective, in index order, so CBC numbers them so.
    assert!(
        written.contains(
            "\n obj: +0e0 x0 +0e0 x1 +0e0 x2 +0e0 x3 +0e0 x4 +0e0 x5 +0e0 x6 +0e0 x7\n   \
             +0e0 x8 +0e0 x9\n"
        ),
        "{written}"
    );
    assert!(
        written.contains(
            " c0: +1e0 x0 +1e0 x1 +1e0 x2 +1e0 x3 +1e0 x4 +1e0 x5 +1e0 x6 +1e0 x7\n   \
             +1e0 x8 +1e0 x9 = 1e0\n"
        ),
        "{written}"
    );
    assert!(written.contains(" c1: 0 x0 <= 2e0\n"), "{written}");
}

#[test]
fn numbers_that_are_not_finite_are_refused() {
    let mut vars = ProblemVariables::new();
    let x = vars.add(variable().min(0.0));
    let good = Expression::from(x).leq(1.0);
    let bad_rhs = Expression::from(x).leq(f64::INFINITY);
    let mut bad_coefficient = Expression::default();
    bad_coefficient.add_mul(f64::NAN, x);
    let write = |objective: &Expression, rows: &[Constraint]| {
        write_lp(&mut Vec::new(), &vars, objective, rows, || true)
    };
    let objective = Expression::from(x);
    assert!(matches!(
        write(&objective, &[good.clone(), bad_rhs]),
        Err(WriteError::Program(ProgramError::NotFinite {
            at: Place::Row(1)
        }))
    ));
    assert!(matches!(
        write(
            &objective,
            &[good.clone(), bad_coefficient.clone().leq(0.0)]
        ),
        Err(WriteError::Program(ProgramError::NotFinite {
            at: Place::Row(1)
        }))
    ));
    assert!(matches!(
        write(&bad_coefficient, &[good]),
        Err(WriteError::Program(ProgramError::NotFinite {
            at: Place::Objective
        }))
    ));
}

#[test]
fn bounds_that_are_not_bounds_are_refused() {
    // -inf below and +inf above mean no bound; NaN anywhere, +inf below and -inf above do
    // not (NaN used to read as no bound, +inf below was written as `x >= inf`).
    let nan = f64::NAN;
    let (inf, ninf) = (f64::INFINITY, f64::NEG_INFINITY);
    for (min, max) in [
        (nan, 1.0),
        (0.0, nan),
        (nan, inf),
        (ninf, nan),
        (inf, inf),
        (0.0, ninf),
    ] {
        let mut vars = ProblemVariables::new();
        vars.add(variable().min(0.0).max(1.0));
        let x = vars.add(variable().min(min).max(max));
        let written = write_lp(&mut Vec::new(), &vars, &Expression::from(x), &[], || true);
        assert!(
            matches!(written, Err(WriteError::Program(ProgramError::NotFinite { at: Place::Bounds(v) })) if v == x),
            "[{min}, {max}]: {written:?}"
        );
    }
    let message = ProgramError::NotFinite {
        at: Place::Bounds(Variable(1)),
    }
    .to_string();
    assert_eq!(
        message,
        "a bound of x1 is not a number, or is infinite on the wrong side"
    );
}

#[test]
fn starting_values_that_are_not_finite_are_refused() {
    for value in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        let mut vars = ProblemVariables::new();
        vars.add(variable().binary().initial(1.0));
        let x = vars.add(variable().binary().initial(value));
        let mut out = Vec::new();
        let written = write_start(&mut out, &vars);
        assert!(
            matches!(written, Err(WriteError::Program(ProgramError::NotFinite { at: Place::Start(v) })) if v == x),
            "{value}: {written:?}"
        );
        assert!(out.is_empty(), "nothing is written");
    }
}

#[test]
fn a_variable_of_another_program_is_refused() {
    let mut other = ProblemVariables::new();
    other.add(variable());
    let stranger = other.add(variable());
    let mut vars = ProblemVariables::new();
    let x = vars.add(variable().min(0.0));
    let row = (Expression::from(x) + stranger).leq(1.0);
    let write = |objective: &Expression, rows: &[Constraint]| {
        write_lp(&mut Vec::new(), &vars, objective, rows, || true)
    };
    let written = write(&Expression::from(x), &[row]);
    assert!(
        matches!(written, Err(WriteError::Program(ProgramError::UnknownVariable { row: Some(0), variable })) if variable == stranger),
        "{written:?}"
    );
    let written = write(&Expression::from(stranger), &[]);
    assert_eq!(
        written.unwrap_err().to_string(),
        "the objective names x1, which is not a variable of the program"
    );
}

#[test]
fn stops_when_told_every_few_thousand_rows() {
    let mut vars = ProblemVariables::new();
    let x = vars.add(variable().min(0.0));
    let rows = vec![Expression::from(x).leq(1.0); ROWS_PER_CHECK + 1];
    let mut asked = 0;
    let stopped = write_lp(&mut Vec::new(), &vars, &Expression::from(x), &rows, || {
        asked += 1;
        asked < 2
    });
    assert!(matches!(stopped, Err(WriteError::Stopped { rows }) if rows == ROWS_PER_CHECK));
    assert_eq!(asked, 2);
}
