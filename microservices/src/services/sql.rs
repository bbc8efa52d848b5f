//! SQL: an in-memory SQLite database (through rusqlite, SQLite compiled from its bundled
//! sources) answering a fixed set of parameterised statements. Host only: the `sql` feature.
//!
//! The schema and the statements are deploy-time configuration; statement `i` is prepared
//! once and cached. Each request runs in its own transaction, so a request that fails (a bad
//! parameter, a constraint, a response that does not fit) changes nothing. The state snapshot
//! is SQLite's own serialisation of the database. Request format: docs/services.md, section
//! SQL.

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::cell::RefCell;
use core::fmt;

use rusqlite::ffi::ErrorCode;
use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, MAIN_DB};

use crate::codec::{Request, Response};
use crate::collections::{SnapshotReader, SnapshotWriter};
use crate::kind::ServiceKind;
use crate::service::{Context, Service, ServiceError, ServiceId, ServiceIdentity, StateError};

/// Value type tags, in parameters and in result cells.
pub mod tag {
    /// SQL NULL; no bytes follow.
    pub const NULL: u8 = 0;
    /// 64-bit integer: 8 bytes.
    pub const INTEGER: u8 = 1;
    /// 64-bit float: 8 bytes.
    pub const REAL: u8 = 2;
    /// UTF-8 text: `u16` length, bytes.
    pub const TEXT: u8 = 3;
    /// Blob: `u16` length, bytes.
    pub const BLOB: u8 = 4;
}

/// A value in a request or a response.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// SQL NULL.
    Null,
    /// An integer.
    Integer(i64),
    /// A float.
    Real(f64),
    /// Text.
    Text(String),
    /// A blob.
    Blob(Vec<u8>),
}

/// Request builders and response decoding (client side; they allocate).
pub mod request {
    use super::{tag, Value};
    use crate::codec::RequestBuilder;
    use alloc::vec::Vec;

    fn value(b: RequestBuilder, v: &Value) -> RequestBuilder {
        match v {
            Value::Null => b.u8(tag::NULL),
            Value::Integer(i) => b.u8(tag::INTEGER).u64(*i as u64),
            Value::Real(r) => b.u8(tag::REAL).f64(*r),
            Value::Text(t) => b.u8(tag::TEXT).u16(t.len() as u16).bytes(t.as_bytes()),
            Value::Blob(x) => b.u8(tag::BLOB).u16(x.len() as u16).bytes(x),
        }
    }

    /// Run statement `statement` with `parameters`.
    pub fn execute(statement: u8, parameters: &[Value]) -> Vec<u8> {
        parameters
            .iter()
            .fold(
                RequestBuilder::new(statement).u8(parameters.len() as u8),
                value,
            )
            .build()
    }
}

/// Why the database could not be set up.
#[derive(Debug)]
pub enum SqlError {
    /// SQLite refused the schema or a statement.
    Sqlite(rusqlite::Error),
    /// More than 256 statements.
    TooManyStatements,
}

impl fmt::Display for SqlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SqlError::Sqlite(e) => write!(f, "sqlite: {e}"),
            SqlError::TooManyStatements => f.write_str("more than 256 statements"),
        }
    }
}

impl From<rusqlite::Error> for SqlError {
    fn from(e: rusqlite::Error) -> Self {
        SqlError::Sqlite(e)
    }
}

const STATE_VERSION: u8 = 1;

/// The SQL service.
pub struct Sql {
    identity: ServiceIdentity,
    statements: Vec<String>,
    /// In a cell because SQLite's serialisation needs the connection mutably while
    /// [`Service::snapshot`] has the service shared.
    connection: RefCell<Connection>,
}

/// Maps an execution error to the status convention.
fn failed(error: rusqlite::Error) -> ServiceError {
    match error.sqlite_error_code() {
        Some(ErrorCode::ConstraintViolation) => ServiceError::Refused,
        Some(ErrorCode::DiskFull | ErrorCode::OutOfMemory) => ServiceError::Full,
        _ => ServiceError::BadField,
    }
}

fn open(statements: &[String]) -> Result<Connection, SqlError> {
    let connection = Connection::open_in_memory()?;
    connection.set_prepared_statement_cache_capacity(statements.len().max(1));
    Ok(connection)
}

fn prepare_all(connection: &Connection, statements: &[String]) -> Result<(), SqlError> {
    for sql in statements {
        connection.prepare_cached(sql)?;
    }
    Ok(())
}

impl Sql {
    /// A database created by `schema` (any SQL, run once) answering `statements`.
    pub fn new(id: ServiceId, schema: &str, statements: &[&str]) -> Result<Self, SqlError> {
        if statements.len() > 256 {
            return Err(SqlError::TooManyStatements);
        }
        let statements: Vec<String> = statements.iter().map(|s| s.to_string()).collect();
        let connection = open(&statements)?;
        connection.execute_batch(schema)?;
        prepare_all(&connection, &statements)?;
        Ok(Self {
            identity: ServiceIdentity::new(id, ServiceKind::Sql, 512, 2500),
            statements,
            connection: RefCell::new(connection),
        })
    }

    fn run(&self, request: &[u8], response: &mut [u8]) -> Result<usize, ServiceError> {
        let mut request = Request::new(request);
        let index = usize::from(request.u8()?);
        let sql = self.statements.get(index).ok_or(ServiceError::BadOpcode)?;
        let count = usize::from(request.u8()?);
        let connection = self
            .connection
            .try_borrow()
            .map_err(|_| ServiceError::Engine)?;
        let transaction = connection.unchecked_transaction().map_err(failed)?;
        let mut out = Response::new(response)?;
        {
            let mut statement = transaction.prepare_cached(sql).map_err(failed)?;
            if statement.parameter_count() != count {
                return Err(ServiceError::BadField);
            }
            for index in 1..=count {
                let value = match request.u8()? {
                    tag::NULL => ValueRef::Null,
                    tag::INTEGER => ValueRef::Integer(request.i64()?),
                    tag::REAL => ValueRef::Real(request.f64()?),
                    tag::TEXT => {
                        let len = usize::from(request.u16()?);
                        let text = request.bytes(len)?;
                        core::str::from_utf8(text).map_err(|_| ServiceError::BadField)?;
                        ValueRef::Text(text)
                    }
                    tag::BLOB => {
                        let len = usize::from(request.u16()?);
                        ValueRef::Blob(request.bytes(len)?)
                    }
                    _ => return Err(ServiceError::BadField),
                };
                statement
                    .raw_bind_parameter(index, ToSqlOutput::Borrowed(value))
                    .map_err(failed)?;
            }
            let columns = statement.column_count();
            // Changes and row count are patched in once known.
            out.u64(0)?.u16(columns as u16)?.u16(0)?;
            let mut rows = statement.raw_query();
            let mut count = 0u16;
            while let Some(row) = rows.next().map_err(failed)? {
                for column in 0..columns {
                    match row.get_ref(column).map_err(failed)? {
                        ValueRef::Null => out.u8(tag::NULL)?,
                        ValueRef::Integer(i) => out.u8(tag::INTEGER)?.i64(i)?,
                        ValueRef::Real(r) => out.u8(tag::REAL)?.f64(r)?,
                        ValueRef::Text(t) => out.u8(tag::TEXT)?.u16(short(t)?)?.bytes(t)?,
                        ValueRef::Blob(b) => out.u8(tag::BLOB)?.u16(short(b)?)?.bytes(b)?,
                    };
                }
                count = count.checked_add(1).ok_or(ServiceError::ResponseTooSmall)?;
            }
            drop(rows);
            let len = out.finish();
            let changes = if statement.readonly() {
                0
            } else {
                connection.changes()
            };
            response[1..9].copy_from_slice(&changes.to_le_bytes());
            response[11..13].copy_from_slice(&count.to_le_bytes());
            drop(statement);
            transaction.commit().map_err(failed)?;
            Ok(len)
        }
    }
}

/// The length of a text or blob cell, which must fit its `u16`.
fn short(bytes: &[u8]) -> Result<u16, ServiceError> {
    u16::try_from(bytes.len()).map_err(|_| ServiceError::ResponseTooSmall)
}

impl Service for Sql {
    fn identity(&self) -> ServiceIdentity {
        self.identity
    }

    fn handle(
        &mut self,
        _ctx: &mut Context<'_>,
        request: &[u8],
        response: &mut [u8],
    ) -> Result<usize, ServiceError> {
        self.run(request, response)
    }

    fn snapshot(&self, out: &mut Vec<u8>) {
        let mut w = SnapshotWriter::new(out, ServiceKind::Sql, STATE_VERSION);
        let mut connection = self.connection.borrow_mut();
        match connection.serialize(MAIN_DB) {
            Ok(data) => w.bytes(&data),
            // Without the database the snapshot would not restore: leave it empty-bodied so
            // restore refuses it rather than silently losing the data.
            Err(e) => {
                log::error!("sql: serialising the database failed: {e}");
                &mut w
            }
        };
        w.finish();
    }

    fn restore(&mut self, snapshot: &[u8]) -> Result<(), StateError> {
        let mut r = SnapshotReader::open(snapshot, ServiceKind::Sql, STATE_VERSION)?;
        let image = r.bytes()?;
        r.finish()?;
        let mut connection = open(&self.statements).map_err(|_| StateError::TooLarge)?;
        connection
            .deserialize_read_exact(MAIN_DB, image, image.len(), false)
            .map_err(|_| StateError::Corrupt)?;
        let check: String = connection
            .query_row("PRAGMA integrity_check", [], |row| row.get(0))
            .map_err(|_| StateError::Corrupt)?;
        if check != "ok" || prepare_all(&connection, &self.statements).is_err() {
            return Err(StateError::Corrupt);
        }
        self.connection = RefCell::new(connection);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::request::execute;
    use super::*;
    use crate::services::testing::{call, Harness};
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    const SCHEMA: &str = "CREATE TABLE readings (sensor INTEGER NOT NULL, at INTEGER NOT NULL,
                              value REAL, note TEXT, PRIMARY KEY (sensor, at));";
    const STATEMENTS: [&str; 3] = [
        "INSERT INTO readings VALUES (?1, ?2, ?3, ?4)",
        "SELECT at, value, note FROM readings WHERE sensor = ?1 AND at >= ?2 ORDER BY at",
        "SELECT sensor, count(*), avg(value) FROM readings GROUP BY sensor ORDER BY sensor",
    ];

    fn sql() -> Harness<Sql> {
        Harness::new(Sql::new(ServiceId(1), SCHEMA, &STATEMENTS).unwrap())
    }

    /// Decodes a result: (changes, columns, rows of values).
    fn decode(answer: &[u8]) -> (u64, usize, Vec<Vec<Value>>) {
        let mut r = Request::new(answer);
        let changes = r.u64().unwrap();
        let columns = usize::from(r.u16().unwrap());
        let rows = r.u16().unwrap();
        let table = (0..rows)
            .map(|_| {
                (0..columns)
                    .map(|_| match r.u8().unwrap() {
                        tag::NULL => Value::Null,
                        tag::INTEGER => Value::Integer(r.i64().unwrap()),
                        tag::REAL => Value::Real(r.f64().unwrap()),
                        tag::TEXT => {
                            let n = usize::from(r.u16().unwrap());
                            Value::Text(String::from_utf8(r.bytes(n).unwrap().to_vec()).unwrap())
                        }
                        _ => {
                            let n = usize::from(r.u16().unwrap());
                            Value::Blob(r.bytes(n).unwrap().to_vec())
                        }
                    })
                    .collect()
            })
            .collect();
        assert_eq!(r.remaining(), 0);
        (changes, columns, table)
    }

    fn insert(sensor: i64, at: i64, value: f64, note: Option<&str>) -> Vec<u8> {
        let note = note.map_or(Value::Null, |n| Value::Text(n.to_string()));
        execute(
            0,
            &[
                Value::Integer(sensor),
                Value::Integer(at),
                Value::Real(value),
                note,
            ],
        )
    }

    #[test]
    fn parameterised_statements_answer_like_sqlite() {
        let mut h = sql();
        for at in 0..5 {
            assert_eq!(decode(&h.ok(&insert(1, at, at as f64 * 1.5, None))).0, 1);
        }
        h.ok(&insert(2, 0, 10.0, Some("calibrated")));
        let (changes, columns, rows) =
            decode(&h.ok(&execute(1, &[Value::Integer(1), Value::Integer(3)])));
        assert_eq!((changes, columns), (0, 3));
        assert_eq!(
            rows,
            [
                vec![Value::Integer(3), Value::Real(4.5), Value::Null],
                vec![Value::Integer(4), Value::Real(6.0), Value::Null],
            ]
        );
        let (_, _, groups) = decode(&h.ok(&execute(2, &[])));
        assert_eq!(
            groups,
            [
                vec![Value::Integer(1), Value::Integer(5), Value::Real(3.0)],
                vec![Value::Integer(2), Value::Integer(1), Value::Real(10.0)],
            ]
        );
    }

    #[test]
    fn failures_change_nothing() {
        let mut h = sql();
        h.ok(&insert(1, 1, 1.0, None));
        assert_eq!(
            h.err(&insert(1, 1, 2.0, None)),
            ServiceError::Refused,
            "primary key"
        );
        assert_eq!(
            h.err(&execute(0, &[Value::Integer(1)])),
            ServiceError::BadField
        );
        assert_eq!(h.err(&execute(9, &[])), ServiceError::BadOpcode);
        assert_eq!(h.err(&[9]), ServiceError::BadOpcode);
        assert_eq!(h.err(&[0]), ServiceError::Truncated);
        assert_eq!(h.err(&[0, 4, 1, 0]), ServiceError::Truncated);
        assert_eq!(h.err(&[0, 4, 3, 9, 0, b'a']), ServiceError::BadLength);
        assert_eq!(h.err(&[0, 4, 7]), ServiceError::BadField);
        let bad_utf8 = [
            0, 4, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0,
            3, 1, 0, 0xff,
        ];
        assert_eq!(h.err(&bad_utf8), ServiceError::BadField);
        // A result that does not fit rolls back like any other failure.
        for at in 2..40 {
            h.ok(&insert(
                1,
                at,
                0.5,
                Some("a fairly long note to fill the response"),
            ));
        }
        let mut small = [0u8; 256];
        let select = execute(1, &[Value::Integer(1), Value::Integer(0)]);
        assert_eq!(
            call(&mut h.service, &select, &mut small),
            Err(ServiceError::ResponseTooSmall)
        );
        let (_, _, rows) = decode(&h.ok(&select));
        assert_eq!(rows.len(), 39);
    }

    #[test]
    fn snapshot_restore_gives_identical_answers() {
        let mut h = sql();
        for at in 0..20 {
            h.ok(&insert(at % 3, at, at as f64, Some("x")));
        }
        let mut other = sql();
        h.migrate_to(&mut other);
        let queries = [
            execute(2, &[]),
            execute(1, &[Value::Integer(2), Value::Integer(5)]),
        ];
        for q in &queries {
            assert_eq!(h.ok(q), other.ok(q));
        }
        assert_eq!(other.err(&insert(1, 1, 0.0, None)), ServiceError::Refused);
        let mut bytes = Vec::new();
        h.service.snapshot(&mut bytes);
        let garbage_at = bytes.len() - 100;
        bytes[garbage_at] ^= 0xff;
        assert!(other.service.restore(&bytes).is_err());
        assert_eq!(
            h.ok(&queries[0]),
            other.ok(&queries[0]),
            "a refused snapshot changes nothing"
        );
    }

    const MODEL_SCHEMA: &str = "CREATE TABLE readings (sensor INTEGER NOT NULL, \
        at INTEGER NOT NULL, value REAL NOT NULL, PRIMARY KEY (sensor, at));";
    const MODEL_STATEMENTS: [&str; 5] = [
        "INSERT INTO readings VALUES (?1, ?2, ?3)",
        "INSERT OR REPLACE INTO readings VALUES (?1, ?2, ?3)",
        "DELETE FROM readings WHERE sensor = ?1 AND at = ?2",
        "SELECT at, value FROM readings WHERE sensor = ?1 ORDER BY at",
        "SELECT count(*), sum(value) FROM readings WHERE sensor = ?1",
    ];

    proptest! {
        /// Random inserts, replacements, deletions and queries against a sorted map of
        /// (sensor, at) -> value; a request with one parameter too few fails and changes
        /// nothing. Values are small integers, so sums are exact.
        #[test]
        fn agrees_with_a_sorted_map(
            ops in proptest::collection::vec(
                (0u8..5, 0i64..4, 0i64..8, -50i16..50, proptest::bool::weighted(0.1)), 1..60),
        ) {
            let mut h = Harness::new(Sql::new(ServiceId(1), MODEL_SCHEMA, &MODEL_STATEMENTS).unwrap());
            let mut table: BTreeMap<(i64, i64), f64> = BTreeMap::new();
            for (statement, sensor, at, value, short) in ops {
                let value = f64::from(value);
                let mut parameters = match statement {
                    0 | 1 => vec![Value::Integer(sensor), Value::Integer(at), Value::Real(value)],
                    2 => vec![Value::Integer(sensor), Value::Integer(at)],
                    _ => vec![Value::Integer(sensor)],
                };
                if short {
                    parameters.pop();
                    prop_assert_eq!(h.err(&execute(statement, &parameters)), ServiceError::BadField);
                    continue;
                }
                let request = execute(statement, &parameters);
                let expected: (u64, usize, Vec<Vec<Value>>) = match statement {
                    0 if table.contains_key(&(sensor, at)) => {
                        prop_assert_eq!(h.err(&request), ServiceError::Refused);
                        continue;
                    }
                    0 | 1 => {
                        table.insert((sensor, at), value);
                        (1, 0, vec![])
                    }
                    2 => (u64::from(table.remove(&(sensor, at)).is_some()), 0, vec![]),
                    3 => {
                        let rows = table
                            .range((sensor, i64::MIN)..=(sensor, i64::MAX))
                            .map(|(&(_, at), &v)| vec![Value::Integer(at), Value::Real(v)])
                            .collect();
                        (0, 2, rows)
                    }
                    _ => {
                        let values: Vec<f64> = table
                            .range((sensor, i64::MIN)..=(sensor, i64::MAX))
                            .map(|(_, &v)| v)
                            .collect();
                        let sum = if values.is_empty() {
                            Value::Null
                        } else {
                            Value::Real(values.iter().sum())
                        };
                        (0, 2, vec![vec![Value::Integer(values.len() as i64), sum]])
                    }
                };
                prop_assert_eq!(decode(&h.ok(&request)), expected);
            }
        }
    }
}
