//! Solution files as CBC 2.10.8 writes them (the lines below are copied from its output), and
//! every way a file can be wrong, each named by its line.

use super::*;

#[test]
fn reads_solution_files() {
    // Columns left out are zero; a value may be a fraction or tiny.
    let text = "Stopped on time - objective value 12.5\n\
                      0 x0                     1                       1\n\
                      2 x2                   0.5                      -1\n\
                      3 x3                  -1e-7                      0\n";
    let (status, values) = parse_solution(text, 4).unwrap();
    assert_eq!(status, Status::Stopped { integral: true });
    assert_eq!(values, [1.0, 0.0, 0.5, -1e-7]);
    for (first, status) in [
        ("Optimal - objective value 3", Status::Optimal),
        (
            "Optimal (within gap tolerance) - objective value 3",
            Status::Optimal,
        ),
        (
            "Stopped on iterations (no integer solution - continuous used) - objective value 3",
            Status::Stopped { integral: false },
        ),
        ("Infeasible - objective value 3", Status::Infeasible),
        ("Integer infeasible - objective value 3", Status::Infeasible),
        ("Unbounded - objective value 3", Status::Unbounded),
        ("Status unknown", Status::Other("Status unknown".into())),
    ] {
        assert_eq!(parse_solution(first, 1).unwrap(), (status, vec![0.0]));
    }
}

/// What CBC wrote for `x0 + x1 >= 3` over two binaries.
const INFEASIBLE: &str = "Infeasible - objective value 3.00000000\n      \
                          0 x0                     1                       0\n\
                          **       1 x1                     2                       0\n";

#[test]
fn a_value_outside_its_bounds_is_read_only_where_there_is_no_solution() {
    // The point CBC shows of an infeasible program: read, and the status says what it is.
    let (status, values) = parse_solution(INFEASIBLE, 2).unwrap();
    assert_eq!(status, Status::Infeasible);
    assert_eq!(values, [1.0, 2.0]);
    // The same lines under a status that says they are a solution are refused.
    for first in [
        "Optimal - objective value 3.00000000",
        "Stopped on time - objective value 3",
        "Stopped on iterations (no integer solution - continuous used) - objective value 3",
    ] {
        let text = INFEASIBLE.replacen(INFEASIBLE.lines().next().unwrap(), first, 1);
        assert_eq!(
            parse_solution(&text, 2).unwrap_err(),
            SolverError::BadSolution {
                line: 3,
                problem: SolutionProblem::OutsideBounds {
                    name: "x1".into(),
                    value: "2".into()
                }
            },
            "{first}"
        );
    }
    assert_eq!(
        SolutionProblem::OutsideBounds {
            name: "x1".into(),
            value: "2".into()
        }
        .to_string(),
        "`x1` = 2 is marked `**`, outside its bounds, yet the status says this is a solution"
    );
}

#[test]
fn bad_solution_files_name_the_line() {
    let bad = |text: &str| parse_solution(text, 2).unwrap_err().to_string();
    assert_eq!(bad(""), "CBC's solution file, line 1: the file is empty");
    assert_eq!(
        bad("Optimal\n 0 x0 1 0\n 5 x5 1 0\n"),
        "CBC's solution file, line 3: `x5` is not a variable of the program"
    );
    assert_eq!(
        bad("Optimal\n 0 y0 1 0\n"),
        "CBC's solution file, line 2: `y0` is not a variable of the program"
    );
    assert_eq!(
        bad("Optimal\n 1 x01 1 0\n"),
        "CBC's solution file, line 2: `x01` is not a variable of the program"
    );
    assert_eq!(
        bad("Optimal\n 1 x1 one 0\n"),
        "CBC's solution file, line 2: `one` is not a number"
    );
    assert_eq!(
        bad("Optimal\n 0 x1\n"),
        "CBC's solution file, line 2: ` 0 x1` is not `index name value reduced-cost`"
    );
    assert_eq!(
        bad("Optimal\n 1 x1 1 0 7\n"),
        "CBC's solution file, line 2: ` 1 x1 1 0 7` is not `index name value reduced-cost`"
    );
    assert_eq!(
        bad("Optimal\n ** \n"),
        "CBC's solution file, line 2: ` ** ` is not `index name value reduced-cost`"
    );
}

#[test]
fn the_column_number_must_be_the_names() {
    // CBC numbers columns as it first meets them; the LP file is written so that this is our
    // order, and a file where it is not would put values on the wrong variables.
    let bad = |text: &str| parse_solution(text, 3).unwrap_err();
    for index in ["0", "2", "-1", "one", "1.0"] {
        let text = format!("Optimal\n {index} x1 1 0\n");
        assert_eq!(
            bad(&text),
            SolverError::BadSolution {
                line: 2,
                problem: SolutionProblem::IndexMismatch {
                    index: index.into(),
                    name: "x1".into()
                }
            }
        );
    }
    assert_eq!(
        bad("Optimal\n 0 x1 1 0\n").to_string(),
        "CBC's solution file, line 2: column 0 is named `x1`: CBC numbered the columns \
         otherwise than the program"
    );
}

#[test]
fn values_that_are_not_finite_are_refused() {
    // Rust reads all of these as numbers; a NaN would read as "not chosen".
    for value in [
        "nan",
        "NaN",
        "-nan",
        "inf",
        "-inf",
        "infinity",
        "+Infinity",
        "1e999",
    ] {
        let text = format!("Optimal - objective value 1\n 0 x0 1 0\n 1 x1 {value} 0\n");
        assert_eq!(
            parse_solution(&text, 2).unwrap_err(),
            SolverError::BadSolution {
                line: 3,
                problem: SolutionProblem::NotFinite {
                    name: "x1".into(),
                    value: value.into()
                }
            },
            "{value}"
        );
    }
}

#[test]
fn a_column_given_twice_is_refused() {
    // Not the last one winning: the file is not CBC's.
    let text = "Optimal - objective value 1\n 0 x0 1 0\n 1 x1 0 0\n\n 1 x1 1 0\n";
    assert_eq!(
        parse_solution(text, 2).unwrap_err().to_string(),
        "CBC's solution file, line 5: `x1` is given again (first on line 3)"
    );
}
