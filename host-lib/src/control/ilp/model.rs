//! The ILP's modeller: variables with bounds, affine expressions over them, rows, and the
//! program written as CPLEX LP text for the `cbc` program (variables named `x0`, `x1`, ... by
//! index, so a solution file maps back without a table).
//!
//! Our own rather than `good_lp`'s: `good_lp` keeps variable indices and the parts of a
//! program crate-private, so another crate cannot write its programs to a file, and its one
//! route to an external solver (`lp-solvers`) runs the solver to completion with no deadline.

use std::fmt;
use std::io::{self, Write};
use std::iter::Sum;
use std::ops::{Add, Mul, Sub};

/// A variable of one [`ProblemVariables`]: its index.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Variable(u32);

impl Variable {
    /// Its index among the program's variables.
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

impl fmt::Display for Variable {
    /// The variable's name in the LP file.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "x{}", self.0)
    }
}

/// Bounds, integrality and starting value of a variable to add.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct VariableDefinition {
    min: f64,
    max: f64,
    integer: bool,
    initial: Option<f64>,
}

/// A continuous variable without bounds, to be narrowed with the builder methods.
pub fn variable() -> VariableDefinition {
    VariableDefinition {
        min: f64::NEG_INFINITY,
        max: f64::INFINITY,
        integer: false,
        initial: None,
    }
}

impl VariableDefinition {
    /// At least `min`.
    pub fn min(self, min: f64) -> Self {
        VariableDefinition { min, ..self }
    }

    /// At most `max`.
    pub fn max(self, max: f64) -> Self {
        VariableDefinition { max, ..self }
    }

    /// Integral, 0 or 1.
    pub fn binary(self) -> Self {
        VariableDefinition {
            min: 0.0,
            max: 1.0,
            integer: true,
            ..self
        }
    }

    /// Its value in the starting solution handed to the solver (integral variables only).
    pub fn initial(self, value: f64) -> Self {
        VariableDefinition {
            initial: Some(value),
            ..self
        }
    }
}

/// The variables of one program.
#[derive(Clone, Debug, Default)]
pub struct ProblemVariables {
    definitions: Vec<VariableDefinition>,
}

impl ProblemVariables {
    /// No variables yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a variable.
    pub fn add(&mut self, definition: VariableDefinition) -> Variable {
        let index = u32::try_from(self.definitions.len()).expect("fewer than 2^32 variables");
        self.definitions.push(definition);
        Variable(index)
    }

    /// How many there are.
    pub fn len(&self) -> usize {
        self.definitions.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.definitions.is_empty()
    }

    /// The integral variables that have a starting value, with it.
    pub fn start(&self) -> impl Iterator<Item = (Variable, f64)> + '_ {
        self.definitions
            .iter()
            .enumerate()
            .filter(|(_, d)| d.integer)
            .filter_map(|(i, d)| d.initial.map(|v| (Variable(i as u32), v)))
    }
}

/// An affine expression: terms (a variable may appear in several; they add up) and a constant.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Expression {
    terms: Vec<(Variable, f64)>,
    constant: f64,
}

impl Expression {
    /// Adds `coefficient * x`.
    pub fn add_mul(&mut self, coefficient: f64, x: Variable) {
        self.terms.push((x, coefficient));
    }

    /// The row `self <= rhs`.
    pub fn leq(self, rhs: impl Into<Expression>) -> Constraint {
        Constraint {
            expression: self - rhs.into(),
            equality: false,
        }
    }

    /// The row `self == rhs`.
    pub fn eq(self, rhs: impl Into<Expression>) -> Constraint {
        Constraint {
            expression: self - rhs.into(),
            equality: true,
        }
    }

    /// The terms with each variable once, in index order, zero coefficients dropped.
    fn merged(&self) -> Vec<(Variable, f64)> {
        let mut terms = self.terms.clone();
        terms.sort_by_key(|&(x, _)| x);
        let mut merged: Vec<(Variable, f64)> = Vec::with_capacity(terms.len());
        for (x, c) in terms {
            match merged.last_mut() {
                Some((last, sum)) if *last == x => *sum += c,
                _ => merged.push((x, c)),
            }
        }
        merged.retain(|&(_, c)| c != 0.0);
        merged
    }
}

impl From<f64> for Expression {
    fn from(constant: f64) -> Self {
        Expression {
            terms: Vec::new(),
            constant,
        }
    }
}

impl From<Variable> for Expression {
    fn from(x: Variable) -> Self {
        Expression {
            terms: vec![(x, 1.0)],
            constant: 0.0,
        }
    }
}

impl Add<Variable> for Expression {
    type Output = Expression;
    fn add(mut self, x: Variable) -> Expression {
        self.add_mul(1.0, x);
        self
    }
}

impl Add<f64> for Expression {
    type Output = Expression;
    fn add(mut self, constant: f64) -> Expression {
        self.constant += constant;
        self
    }
}

impl Sub<f64> for Expression {
    type Output = Expression;
    fn sub(self, constant: f64) -> Expression {
        self + -constant
    }
}

impl Sub<Expression> for Expression {
    type Output = Expression;
    fn sub(mut self, other: Expression) -> Expression {
        self.terms
            .extend(other.terms.into_iter().map(|(x, c)| (x, -c)));
        self.constant -= other.constant;
        self
    }
}

impl Mul<f64> for Expression {
    type Output = Expression;
    fn mul(mut self, factor: f64) -> Expression {
        for (_, c) in &mut self.terms {
            *c *= factor;
        }
        self.constant *= factor;
        self
    }
}

impl Sum<Variable> for Expression {
    fn sum<I: Iterator<Item = Variable>>(iter: I) -> Expression {
        Expression {
            terms: iter.map(|x| (x, 1.0)).collect(),
            constant: 0.0,
        }
    }
}

/// A row: `expression <= 0`, or `expression == 0`.
#[derive(Clone, Debug, PartialEq)]
pub struct Constraint {
    expression: Expression,
    equality: bool,
}

/// Where a program holds a number the LP file cannot carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Place {
    /// A coefficient of the objective.
    Objective,
    /// A coefficient or the right-hand side of a row.
    Row(usize),
    /// A bound of a variable: not a number, a lower bound of +inf or an upper bound of -inf
    /// (-inf below and +inf above mean no bound).
    Bounds(Variable),
    /// The starting value of a variable.
    Start(Variable),
}

impl fmt::Display for Place {
    /// What is not finite, as the subject of a sentence.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Place::Objective => f.write_str("a coefficient of the objective is not finite"),
            Place::Row(row) => write!(
                f,
                "a coefficient or the right-hand side of row {row} is not finite"
            ),
            Place::Bounds(x) => write!(
                f,
                "a bound of {x} is not a number, or is infinite on the wrong side"
            ),
            Place::Start(x) => write!(f, "the starting value of {x} is not finite"),
        }
    }
}

/// What in a program the LP file cannot carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProgramError {
    /// A number is infinite or not a number where the LP format has no room for one.
    NotFinite {
        /// Where.
        at: Place,
    },
    /// An expression names a variable the program does not have (one of another program);
    /// `row` is `None` for the objective.
    UnknownVariable {
        /// The row, or `None` for the objective.
        row: Option<usize>,
        /// The variable.
        variable: Variable,
    },
}

impl fmt::Display for ProgramError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProgramError::NotFinite { at } => write!(f, "{at}"),
            ProgramError::UnknownVariable { row, variable } => {
                match row {
                    Some(row) => write!(f, "row {row}")?,
                    None => f.write_str("the objective")?,
                }
                write!(
                    f,
                    " names {variable}, which is not a variable of the program"
                )
            }
        }
    }
}

impl std::error::Error for ProgramError {}

/// Why the LP file could not be written.
#[derive(Debug)]
pub enum WriteError {
    /// Writing failed.
    Io(io::Error),
    /// The program cannot be written as LP text.
    Program(ProgramError),
    /// `keep_going` said to stop after `rows` rows.
    Stopped {
        /// Rows written.
        rows: usize,
    },
}

impl From<io::Error> for WriteError {
    fn from(error: io::Error) -> Self {
        WriteError::Io(error)
    }
}

impl From<ProgramError> for WriteError {
    fn from(error: ProgramError) -> Self {
        WriteError::Program(error)
    }
}

impl fmt::Display for WriteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WriteError::Io(error) => write!(f, "writing the LP file failed: {error}"),
            WriteError::Program(error) => write!(f, "{error}"),
            WriteError::Stopped { rows } => write!(f, "stopped after {rows} rows"),
        }
    }
}

/// Terms per line of the LP file (the format allows a row to go on over several lines).
const TERMS_PER_LINE: usize = 8;
/// Rows between two calls of `keep_going`.
const ROWS_PER_CHECK: usize = 4096;

/// Writes "minimise `objective` subject to `rows`" over `vars` as LP text. The objective's
/// constant is left out (it does not move the optimum). The objective names every variable, in
/// index order (with a zero coefficient where it has none): CBC numbers its columns in the
/// order it first meets them, so its solution file's column numbers are then our indices,
/// which [`super::cbc`] checks. `keep_going` is asked every few thousand rows whether to go on
/// (the caller's clock).
pub fn write_lp(
    out: &mut impl Write,
    vars: &ProblemVariables,
    objective: &Expression,
    rows: &[Constraint],
    mut keep_going: impl FnMut() -> bool,
) -> Result<(), WriteError> {
    let mut every = vec![0.0; vars.len()];
    for (x, c) in finite_terms(objective, None, vars)? {
        every[x.index()] = c;
    }
    let every: Vec<(Variable, f64)> = every
        .into_iter()
        .enumerate()
        .map(|(i, c)| (Variable(i as u32), c))
        .collect();
    out.write_all(b"\\ e3 placement ILP\nMinimize\n obj:")?;
    write_terms(out, &every)?;
    out.write_all(b"\nSubject To\n")?;
    for (i, row) in rows.iter().enumerate() {
        if i % ROWS_PER_CHECK == 0 && !keep_going() {
            return Err(WriteError::Stopped { rows: i });
        }
        let terms = finite_terms(&row.expression, Some(i), vars)?;
        let rhs = -row.expression.constant;
        if !rhs.is_finite() {
            return Err(ProgramError::NotFinite { at: Place::Row(i) }.into());
        }
        write!(out, " c{i}:")?;
        write_terms(out, &terms)?;
        let sense = if row.equality { "=" } else { "<=" };
        writeln!(out, " {sense} {rhs:e}")?;
    }
    out.write_all(b"Bounds\n")?;
    for (i, d) in vars.definitions.iter().enumerate() {
        let x = Variable(i as u32);
        // -inf below and +inf above are "no bound"; NaN, +inf below and -inf above are not
        // bounds at all (NaN would otherwise read as no bound, +inf as `x >= inf`).
        if d.min.is_nan() || d.max.is_nan() || d.min == f64::INFINITY || d.max == f64::NEG_INFINITY
        {
            return Err(ProgramError::NotFinite {
                at: Place::Bounds(x),
            }
            .into());
        }
        let (below, above) = (d.min > f64::NEG_INFINITY, d.max < f64::INFINITY);
        if !below && !above {
            writeln!(out, " {x} free")?;
        } else if !below {
            writeln!(out, " -inf <= {x} <= {:e}", d.max)?;
        } else if !above {
            // Zero is the format's default lower bound.
            if d.min != 0.0 {
                writeln!(out, " {x} >= {:e}", d.min)?;
            }
        } else {
            writeln!(out, " {:e} <= {x} <= {:e}", d.min, d.max)?;
        }
    }
    out.write_all(b"Generals\n")?;
    for (i, _) in vars
        .definitions
        .iter()
        .enumerate()
        .filter(|(_, d)| d.integer)
    {
        writeln!(out, " {}", Variable(i as u32))?;
    }
    out.write_all(b"End\n")?;
    Ok(())
}

/// Writes the starting values as a CBC solution file (`index name value` per line; CBC reads
/// it with `mipstart`, by name); returns how many. A value that is not finite is refused
/// before anything is written.
pub fn write_start(out: &mut impl Write, vars: &ProblemVariables) -> Result<usize, WriteError> {
    if let Some((x, _)) = vars.start().find(|(_, value)| !value.is_finite()) {
        return Err(ProgramError::NotFinite {
            at: Place::Start(x),
        }
        .into());
    }
    let mut count = 0;
    for (x, value) in vars.start() {
        writeln!(out, "{} {x} {value:e}", x.index())?;
        count += 1;
    }
    Ok(count)
}

/// The merged terms of `expression` (of `row`, or of the objective when `None`), or why they
/// cannot be written: a coefficient that is not finite, a variable not of `vars`.
fn finite_terms(
    expression: &Expression,
    row: Option<usize>,
    vars: &ProblemVariables,
) -> Result<Vec<(Variable, f64)>, WriteError> {
    let terms = expression.merged();
    if let Some(&(variable, _)) = terms.iter().find(|(x, _)| x.index() >= vars.len()) {
        return Err(ProgramError::UnknownVariable { row, variable }.into());
    }
    if terms.iter().all(|(_, c)| c.is_finite()) {
        Ok(terms)
    } else {
        let at = row.map_or(Place::Objective, Place::Row);
        Err(ProgramError::NotFinite { at }.into())
    }
}

/// ` +c x` for every term, a few per line; ` 0 x0` when there are none (the format needs a
/// term).
fn write_terms(out: &mut impl Write, terms: &[(Variable, f64)]) -> io::Result<()> {
    if terms.is_empty() {
        return out.write_all(b" 0 x0");
    }
    for (k, &(x, c)) in terms.iter().enumerate() {
        if k > 0 && k % TERMS_PER_LINE == 0 {
            out.write_all(b"\n  ")?;
        }
        write!(out, " {c:+e} {x}")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
