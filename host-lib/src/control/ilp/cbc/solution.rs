//! CBC's solution file: a status line, then one line per column CBC prints,
//! `[**] index name value reduced-cost`, read strictly.
//!
//! As CBC 2.10.8 writes it (checked with the `cbc` program): `index` is CBC's column number,
//! in the order it first met the columns in the LP file (which the ILP's `model` makes our
//! index order, so it must equal the number in the name); columns whose value is zero are left
//! out of programs of 50 columns or more; `**` before a line marks a value outside the
//! column's bounds (by more than CBC's primal tolerance). CBC writes such lines for the point
//! it shows of an infeasible program (`Infeasible - objective value 3` and `** 1 x1 2 0`
//! for `x0 + x1 >= 3` over two binaries). So a `**` line is accepted under a status that
//! says there is no solution, and refused under one that says the values are a solution
//! (optimal, or stopped with an incumbent or the LP relaxation's point): that solution is
//! not one. Values that are not finite (Rust reads `nan`, `inf` and `infinity` as numbers) and
//! a column given twice are refused too: any of them would otherwise be read as an answer.

use std::fmt;

use super::SolverError;

/// What CBC's solution file says of the solution (its first line).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Status {
    /// Solved to optimality.
    Optimal,
    /// Stopped early (its own limit or the interrupt); `integral` is false when CBC had no
    /// integral solution and wrote the LP relaxation's.
    Stopped {
        /// Whether the values are CBC's integral incumbent.
        integral: bool,
    },
    /// No solution exists.
    Infeasible,
    /// The objective has no lower bound.
    Unbounded,
    /// Anything else, as CBC wrote it.
    Other(String),
}

impl Status {
    /// Reads the first line of a solution file.
    fn parse(line: &str) -> Status {
        let line = line.trim();
        if line.starts_with("Optimal") {
            Status::Optimal
        } else if line.starts_with("Stopped") {
            Status::Stopped {
                integral: !line.contains("no integer solution"),
            }
        } else if line.starts_with("Infeasible") || line.starts_with("Integer infeasible") {
            Status::Infeasible
        } else if line.starts_with("Unbounded") {
            Status::Unbounded
        } else {
            Status::Other(line.to_owned())
        }
    }

    /// Whether the file's values are meant as a point of the program.
    fn has_solution(&self) -> bool {
        matches!(self, Status::Optimal | Status::Stopped { .. })
    }
}

/// What is wrong with a line of a solution file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SolutionProblem {
    /// There is no status line.
    Empty,
    /// The line is not `[**] index name value reduced-cost`.
    NotAColumn(String),
    /// The name is not `x<index>` of a variable of the program.
    UnknownName(String),
    /// The column number is not the name's: CBC numbered the columns otherwise than we did.
    IndexMismatch {
        /// The column number as written.
        index: String,
        /// The name.
        name: String,
    },
    /// The value does not read as a number.
    NotANumber(String),
    /// The value reads as infinite or not a number.
    NotFinite {
        /// The column.
        name: String,
        /// The value as written.
        value: String,
    },
    /// The column was given before, on line `first`.
    Repeated {
        /// The column.
        name: String,
        /// The line it was first given on.
        first: usize,
    },
    /// The column is marked `**` (outside its bounds) in a file whose status says it holds a
    /// solution.
    OutsideBounds {
        /// The column.
        name: String,
        /// The value as written.
        value: String,
    },
}

impl fmt::Display for SolutionProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SolutionProblem::Empty => f.write_str("the file is empty"),
            SolutionProblem::NotAColumn(line) => {
                write!(f, "`{line}` is not `index name value reduced-cost`")
            }
            SolutionProblem::UnknownName(name) => {
                write!(f, "`{name}` is not a variable of the program")
            }
            SolutionProblem::IndexMismatch { index, name } => write!(
                f,
                "column {index} is named `{name}`: CBC numbered the columns otherwise than \
                 the program"
            ),
            SolutionProblem::NotANumber(value) => write!(f, "`{value}` is not a number"),
            SolutionProblem::NotFinite { name, value } => {
                write!(f, "`{name}` = `{value}` is not finite")
            }
            SolutionProblem::Repeated { name, first } => {
                write!(f, "`{name}` is given again (first on line {first})")
            }
            SolutionProblem::OutsideBounds { name, value } => write!(
                f,
                "`{name}` = {value} is marked `**`, outside its bounds, yet the status says \
                 this is a solution"
            ),
        }
    }
}

/// One column line, read.
struct Column<'a> {
    index: usize,
    name: &'a str,
    value: f64,
    raw_value: &'a str,
    outside_bounds: bool,
}

impl<'a> Column<'a> {
    /// Reads a line of the file; `None` for a blank line.
    fn parse(line: &'a str, variables: usize) -> Result<Option<Column<'a>>, SolutionProblem> {
        let mut words: Vec<&str> = line.split_whitespace().collect();
        if words.is_empty() {
            return Ok(None);
        }
        let outside_bounds = words[0] == "**";
        if outside_bounds {
            words.remove(0);
        }
        let &[index, name, raw_value, _reduced_cost] = words.as_slice() else {
            return Err(SolutionProblem::NotAColumn(line.to_owned()));
        };
        let number = name
            .strip_prefix('x')
            .and_then(|k| k.parse::<usize>().ok().filter(|n| n.to_string() == k))
            .filter(|&n| n < variables)
            .ok_or_else(|| SolutionProblem::UnknownName(name.to_owned()))?;
        if index.parse::<usize>().ok() != Some(number) {
            return Err(SolutionProblem::IndexMismatch {
                index: index.to_owned(),
                name: name.to_owned(),
            });
        }
        let value = raw_value
            .parse::<f64>()
            .map_err(|_| SolutionProblem::NotANumber(raw_value.to_owned()))?;
        if !value.is_finite() {
            return Err(SolutionProblem::NotFinite {
                name: name.to_owned(),
                value: raw_value.to_owned(),
            });
        }
        Ok(Some(Column {
            index: number,
            name,
            value,
            raw_value,
            outside_bounds,
        }))
    }
}

/// Reads a CBC solution file of a program of `variables` variables named `x<index>`: its
/// status and every variable's value (zero for those left out).
pub fn parse_solution(text: &str, variables: usize) -> Result<(Status, Vec<f64>), SolverError> {
    let bad = |line: usize, problem: SolutionProblem| SolverError::BadSolution { line, problem };
    let mut lines = text.lines();
    let status = Status::parse(lines.next().ok_or(bad(1, SolutionProblem::Empty))?);
    let mut values = vec![0.0; variables];
    let mut given: Vec<Option<usize>> = vec![None; variables];
    for (i, line) in lines.enumerate() {
        let number = i + 2;
        let Some(column) = Column::parse(line, variables).map_err(|p| bad(number, p))? else {
            continue;
        };
        if let Some(first) = given[column.index] {
            let name = column.name.to_owned();
            return Err(bad(number, SolutionProblem::Repeated { name, first }));
        }
        given[column.index] = Some(number);
        if column.outside_bounds && status.has_solution() {
            return Err(bad(
                number,
                SolutionProblem::OutsideBounds {
                    name: column.name.to_owned(),
                    value: column.raw_value.to_owned(),
                },
            ));
        }
        values[column.index] = column.value;
    }
    Ok((status, values))
}

#[cfg(test)]
mod tests;
