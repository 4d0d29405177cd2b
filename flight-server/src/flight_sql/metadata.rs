//! What the server tells BI tools about itself: SQL info, the types it
//! knows (XDBC type info), and the Flight SQL column metadata that drivers
//! read to show type names.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Int32Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow_flight::sql::metadata::{
    SqlInfoData, SqlInfoDataBuilder, XdbcTypeInfo, XdbcTypeInfoData, XdbcTypeInfoDataBuilder,
};
use arrow_flight::sql::{
    Nullable, Searchable, SqlInfo, SqlNullOrdering, SqlSupportedCaseSensitivity,
    SqlSupportedTransactions, SqlSupportsConvert, SupportedSqlGrammar, XdbcDataType,
    XdbcDatetimeSubcode,
};
use runnel_sql::binder::flink_type_name;

use crate::system::TableInfo;

/// The server's name in GetSqlInfo.
pub const SERVER_NAME: &str = "Runnel";

/// Everything GetSqlInfo can report.
pub fn sql_info() -> SqlInfoData {
    let mut b = SqlInfoDataBuilder::new();
    server_info(&mut b);
    syntax_info(&mut b);
    keyword_and_function_info(&mut b);
    support_info(&mut b);
    limit_info(&mut b);
    transaction_and_result_set_info(&mut b);
    // The list is static and well formed; a failure here is a bug that the
    // unit test below catches.
    b.build()
        .unwrap_or_else(|e| panic!("the SQL info table is malformed: {e}"))
}

/// The server itself: name, versions, what the protocol can do.
fn server_info(b: &mut SqlInfoDataBuilder) {
    b.append(SqlInfo::FlightSqlServerName, SERVER_NAME);
    b.append(SqlInfo::FlightSqlServerVersion, env!("CARGO_PKG_VERSION"));
    b.append(SqlInfo::FlightSqlServerArrowVersion, "59");
    b.append(SqlInfo::FlightSqlServerReadOnly, false);
    b.append(SqlInfo::FlightSqlServerSql, true);
    b.append(SqlInfo::FlightSqlServerSubstrait, false);
    b.append(
        SqlInfo::FlightSqlServerTransaction,
        SqlSupportedTransactions::SqlTransactionUnspecified as i32,
    );
    b.append(SqlInfo::FlightSqlServerCancel, false);
    b.append(SqlInfo::FlightSqlServerBulkIngestion, false);
    b.append(SqlInfo::FlightSqlServerIngestTransactionsSupported, false);
    b.append(SqlInfo::FlightSqlServerStatementTimeout, 0i32);
    b.append(SqlInfo::FlightSqlServerTransactionTimeout, 0i32);
}

/// DDL, identifiers and NULL ordering.
fn syntax_info(b: &mut SqlInfoDataBuilder) {
    b.append(SqlInfo::SqlDdlCatalog, false);
    b.append(SqlInfo::SqlDdlSchema, false);
    b.append(SqlInfo::SqlDdlTable, true);
    b.append(
        SqlInfo::SqlIdentifierCase,
        SqlSupportedCaseSensitivity::SqlCaseSensitivityCaseInsensitive as i32,
    );
    b.append(SqlInfo::SqlIdentifierQuoteChar, "`");
    b.append(
        SqlInfo::SqlQuotedIdentifierCase,
        SqlSupportedCaseSensitivity::SqlCaseSensitivityCaseInsensitive as i32,
    );
    b.append(SqlInfo::SqlAllTablesAreSelectable, true);
    b.append(
        SqlInfo::SqlNullOrdering,
        SqlNullOrdering::SqlNullsSortedAtEnd as i32,
    );
}

/// Keywords and the functions by family.
fn keyword_and_function_info(b: &mut SqlInfoDataBuilder) {
    let keywords: &[&str] = &[
        "CUMULATE",
        "DESCRIPTOR",
        "HOP",
        "MATERIALIZED",
        "PROCTIME",
        "SESSION",
        "STOP",
        "TUMBLE",
        "WATERMARK",
    ];
    b.append(SqlInfo::SqlKeywords, keywords);
    let numeric: &[&str] = &[
        "ABS", "CEIL", "FLOOR", "MOD", "POWER", "ROUND", "SQRT", "LN", "LOG10", "EXP",
    ];
    b.append(SqlInfo::SqlNumericFunctions, numeric);
    let string: &[&str] = &[
        "CHAR_LENGTH",
        "CONCAT",
        "LOWER",
        "UPPER",
        "TRIM",
        "SUBSTRING",
        "REPLACE",
        "POSITION",
    ];
    b.append(SqlInfo::SqlStringFunctions, string);
    let system: &[&str] = &["PROCTIME"];
    b.append(SqlInfo::SqlSystemFunctions, system);
    let datetime: &[&str] = &[
        "CURRENT_TIMESTAMP",
        "DATE_FORMAT",
        "EXTRACT",
        "TO_TIMESTAMP",
        "TUMBLE",
        "HOP",
        "CUMULATE",
        "SESSION",
    ];
    b.append(SqlInfo::SqlDatetimeFunctions, datetime);
}

/// Which SQL features are supported.
fn support_info(b: &mut SqlInfoDataBuilder) {
    b.append(SqlInfo::SqlSearchStringEscape, "\\");
    b.append(SqlInfo::SqlExtraNameCharacters, "");
    b.append(SqlInfo::SqlSupportsColumnAliasing, true);
    b.append(SqlInfo::SqlNullPlusNullIsNull, true);
    b.append(
        SqlInfo::SqlSupportsConvert,
        std::collections::BTreeMap::<i32, Vec<i32>>::from([(
            SqlSupportsConvert::SqlConvertInteger as i32,
            vec![
                SqlSupportsConvert::SqlConvertBigint as i32,
                SqlSupportsConvert::SqlConvertFloat as i32,
                SqlSupportsConvert::SqlConvertVarchar as i32,
            ],
        )]),
    );
    b.append(SqlInfo::SqlSupportsTableCorrelationNames, true);
    b.append(SqlInfo::SqlSupportsDifferentTableCorrelationNames, false);
    b.append(SqlInfo::SqlSupportsExpressionsInOrderBy, false);
    b.append(SqlInfo::SqlSupportsOrderByUnrelated, false);
    // Bitmask of SqlSupportedGroupBy: unrelated (1) is not supported,
    // beyond-select (2) is.
    b.append(SqlInfo::SqlSupportedGroupBy, 2i32);
    b.append(SqlInfo::SqlSupportsLikeEscapeClause, false);
    b.append(SqlInfo::SqlSupportsNonNullableColumns, true);
    b.append(
        SqlInfo::SqlSupportedGrammar,
        1i32 << (SupportedSqlGrammar::SqlMinimumGrammar as i32),
    );
    // Bitmask of SupportedAnsi92SqlGrammarLevel: entry level (bit 0).
    b.append(SqlInfo::SqlAnsi92SupportedLevel, 1i32);
    b.append(SqlInfo::SqlSupportsIntegrityEnhancementFacility, false);
    // SqlOuterJoinsSupportLevel: 0 = unsupported.
    b.append(SqlInfo::SqlOuterJoinsSupportLevel, 0i32);
    b.append(SqlInfo::SqlSchemaTerm, "schema");
    b.append(SqlInfo::SqlProcedureTerm, "procedure");
    b.append(SqlInfo::SqlCatalogTerm, "catalog");
    b.append(SqlInfo::SqlCatalogAtStart, true);
    b.append(SqlInfo::SqlSchemasSupportedActions, 0i32);
    b.append(SqlInfo::SqlCatalogsSupportedActions, 0i32);
    b.append(SqlInfo::SqlSupportedPositionedCommands, 0i32);
    b.append(SqlInfo::SqlSelectForUpdateSupported, false);
    b.append(SqlInfo::SqlStoredProceduresSupported, false);
    // Subqueries in FROM (bit 3 = "in" is not, comparisons are not).
    b.append(SqlInfo::SqlSupportedSubqueries, 0i32);
    b.append(SqlInfo::SqlCorrelatedSubqueriesSupported, false);
    // Bitmask of SqlSupportedUnions: UNION ALL (bit 1).
    b.append(SqlInfo::SqlSupportedUnions, 2i32);
}

/// Size limits (0: no limit is known).
fn limit_info(b: &mut SqlInfoDataBuilder) {
    b.append(SqlInfo::SqlMaxBinaryLiteralLength, 0i64);
    b.append(SqlInfo::SqlMaxCharLiteralLength, 0i64);
    b.append(SqlInfo::SqlMaxColumnNameLength, 0i64);
    b.append(SqlInfo::SqlMaxColumnsInGroupBy, 0i64);
    b.append(SqlInfo::SqlMaxColumnsInIndex, 0i64);
    b.append(SqlInfo::SqlMaxColumnsInOrderBy, 0i64);
    b.append(SqlInfo::SqlMaxColumnsInSelect, 0i64);
    b.append(SqlInfo::SqlMaxColumnsInTable, 0i64);
    b.append(SqlInfo::SqlMaxConnections, 0i64);
    b.append(SqlInfo::SqlMaxCursorNameLength, 0i64);
    b.append(SqlInfo::SqlMaxIndexLength, 0i64);
    b.append(SqlInfo::SqlDbSchemaNameLength, 0i64);
    b.append(SqlInfo::SqlMaxProcedureNameLength, 0i64);
    b.append(SqlInfo::SqlMaxCatalogNameLength, 0i64);
    b.append(SqlInfo::SqlMaxRowSize, 0i64);
    b.append(SqlInfo::SqlMaxRowSizeIncludesBlobs, false);
    b.append(SqlInfo::SqlMaxStatementLength, 0i64);
    b.append(SqlInfo::SqlMaxStatements, 0i64);
    b.append(SqlInfo::SqlMaxTableNameLength, 0i64);
    b.append(SqlInfo::SqlMaxTablesInSelect, 0i64);
    b.append(SqlInfo::SqlMaxUsernameLength, 0i64);
}

/// Transactions, result sets and the other JDBC/ODBC odds and ends.
fn transaction_and_result_set_info(b: &mut SqlInfoDataBuilder) {
    b.append(SqlInfo::SqlDefaultTransactionIsolation, 0i64);
    b.append(SqlInfo::SqlTransactionsSupported, false);
    b.append(SqlInfo::SqlSupportedTransactionsIsolationLevels, 0i32);
    b.append(SqlInfo::SqlDataDefinitionCausesTransactionCommit, false);
    b.append(SqlInfo::SqlDataDefinitionsInTransactionsIgnored, true);
    b.append(SqlInfo::SqlSupportedResultSetTypes, 0i32);
    for concurrency in [
        SqlInfo::SqlSupportedConcurrenciesForResultSetUnspecified,
        SqlInfo::SqlSupportedConcurrenciesForResultSetForwardOnly,
        SqlInfo::SqlSupportedConcurrenciesForResultSetScrollSensitive,
        SqlInfo::SqlSupportedConcurrenciesForResultSetScrollInsensitive,
    ] {
        b.append(concurrency, 0i32);
    }
    b.append(SqlInfo::SqlBatchUpdatesSupported, false);
    b.append(SqlInfo::SqlSavepointsSupported, false);
    b.append(SqlInfo::SqlNamedParametersSupported, false);
    b.append(SqlInfo::SqlLocatorsUpdateCopy, false);
    b.append(SqlInfo::SqlStoredFunctionsUsingCallSyntaxSupported, false);
}

/// The SQL types Runnel knows, for GetXdbcTypeInfo.
pub fn xdbc_types() -> XdbcTypeInfoData {
    let mut b = XdbcTypeInfoDataBuilder::new();
    let mut add = |name: &str,
                   data_type: XdbcDataType,
                   column_size: Option<i32>,
                   quote: Option<&str>,
                   searchable: Searchable,
                   numeric: bool,
                   subcode: Option<XdbcDatetimeSubcode>| {
        b.append(XdbcTypeInfo {
            type_name: name.to_string(),
            data_type,
            column_size,
            literal_prefix: quote.map(str::to_string),
            literal_suffix: quote.map(|_| "'".to_string()),
            create_params: None,
            nullable: Nullable::NullabilityNullable,
            case_sensitive: name == "STRING",
            searchable,
            unsigned_attribute: numeric.then_some(false),
            fixed_prec_scale: false,
            auto_increment: numeric.then_some(false),
            local_type_name: Some(name.to_string()),
            minimum_scale: None,
            maximum_scale: None,
            sql_data_type: data_type,
            datetime_subcode: subcode,
            num_prec_radix: numeric.then_some(10),
            interval_precision: None,
        });
    };
    let basic = Searchable::Basic;
    let full = Searchable::Full;
    add(
        "BOOLEAN",
        XdbcDataType::XdbcBit,
        Some(1),
        None,
        basic,
        false,
        None,
    );
    add(
        "TINYINT",
        XdbcDataType::XdbcTinyint,
        Some(3),
        None,
        basic,
        true,
        None,
    );
    add(
        "SMALLINT",
        XdbcDataType::XdbcSmallint,
        Some(5),
        None,
        basic,
        true,
        None,
    );
    add(
        "INT",
        XdbcDataType::XdbcInteger,
        Some(10),
        None,
        basic,
        true,
        None,
    );
    add(
        "BIGINT",
        XdbcDataType::XdbcBigint,
        Some(19),
        None,
        basic,
        true,
        None,
    );
    add(
        "FLOAT",
        XdbcDataType::XdbcFloat,
        Some(7),
        None,
        basic,
        true,
        None,
    );
    add(
        "DOUBLE",
        XdbcDataType::XdbcDouble,
        Some(15),
        None,
        basic,
        true,
        None,
    );
    add(
        "STRING",
        XdbcDataType::XdbcVarchar,
        Some(i32::MAX),
        Some("'"),
        full,
        false,
        None,
    );
    add(
        "BYTES",
        XdbcDataType::XdbcVarbinary,
        Some(i32::MAX),
        Some("X'"),
        basic,
        false,
        None,
    );
    add(
        "DATE",
        XdbcDataType::XdbcDate,
        Some(10),
        Some("DATE '"),
        basic,
        false,
        Some(XdbcDatetimeSubcode::XdbcSubcodeYear), // 1 is SQL_CODE_DATE,
    );
    add(
        "TIMESTAMP(3)",
        XdbcDataType::XdbcTimestamp,
        Some(23),
        Some("TIMESTAMP '"),
        basic,
        false,
        Some(XdbcDatetimeSubcode::XdbcSubcodeTimestamp),
    );
    b.build()
        .unwrap_or_else(|e| panic!("the XDBC type table is malformed: {e}"))
}

/// Adds the Flight SQL column metadata (type name, table, precision) to
/// every field; `table` is (schema, table) for columns of a table.
pub fn annotate(schema: &Schema, table: Option<(&str, &str)>) -> SchemaRef {
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| {
            let mut m: HashMap<String, String> = f.metadata().clone();
            m.insert(
                "ARROW:FLIGHT:SQL:TYPE_NAME".into(),
                flink_type_name(f.data_type()),
            );
            if let Some((s, t)) = table {
                m.insert(
                    "ARROW:FLIGHT:SQL:CATALOG_NAME".into(),
                    runnel_sql::catalog::CATALOG_NAME.into(),
                );
                m.insert("ARROW:FLIGHT:SQL:SCHEMA_NAME".into(), s.into());
                m.insert("ARROW:FLIGHT:SQL:TABLE_NAME".into(), t.into());
            }
            if let Some((p, s)) = precision_scale(f.data_type()) {
                m.insert("ARROW:FLIGHT:SQL:PRECISION".into(), p.to_string());
                m.insert("ARROW:FLIGHT:SQL:SCALE".into(), s.to_string());
            }
            m.insert("ARROW:FLIGHT:SQL:IS_AUTO_INCREMENT".into(), "0".into());
            m.insert(
                "ARROW:FLIGHT:SQL:IS_CASE_SENSITIVE".into(),
                if matches!(f.data_type(), DataType::Utf8 | DataType::LargeUtf8) {
                    "1"
                } else {
                    "0"
                }
                .into(),
            );
            m.insert("ARROW:FLIGHT:SQL:IS_READ_ONLY".into(), "1".into());
            m.insert("ARROW:FLIGHT:SQL:IS_SEARCHABLE".into(), "1".into());
            f.as_ref().clone().with_metadata(m)
        })
        .collect();
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

/// `schema` with each commented column's comment as Flight SQL's
/// `ARROW:FLIGHT:SQL:REMARKS` (the protocol has no place for a table's
/// comment; `system.tables` has it).
pub fn with_remarks(schema: &SchemaRef, meta: &runnel_sql::access::ObjectMeta) -> SchemaRef {
    if meta.columns.values().all(|c| c.comment.is_none()) {
        return Arc::clone(schema);
    }
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| {
            let comment = meta
                .columns
                .get(&f.name().to_lowercase())
                .and_then(|c| c.comment.clone());
            match comment {
                Some(c) => {
                    let mut m = f.metadata().clone();
                    m.insert("ARROW:FLIGHT:SQL:REMARKS".into(), c);
                    f.as_ref().clone().with_metadata(m)
                }
                None => f.as_ref().clone(),
            }
        })
        .collect();
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

fn precision_scale(t: &DataType) -> Option<(u32, i32)> {
    Some(match t {
        DataType::Int8 => (3, 0),
        DataType::Int16 => (5, 0),
        DataType::Int32 => (10, 0),
        DataType::Int64 => (19, 0),
        DataType::Float32 => (7, 0),
        DataType::Float64 => (15, 0),
        DataType::Decimal128(p, s) => (u32::from(*p), i32::from(*s)),
        DataType::Timestamp(TimeUnit::Millisecond, _) => (23, 3),
        DataType::Date32 => (10, 0),
        _ => return None,
    })
}

/// The schema of GetPrimaryKeys results.
pub fn primary_keys_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("catalog_name", DataType::Utf8, true),
        Field::new("db_schema_name", DataType::Utf8, true),
        Field::new("table_name", DataType::Utf8, false),
        Field::new("column_name", DataType::Utf8, false),
        Field::new("key_name", DataType::Utf8, true),
        Field::new("key_sequence", DataType::Int32, false),
    ]))
}

/// Primary key rows of the tables that match the filters.
pub fn primary_keys(
    tables: &[TableInfo],
    catalog: Option<&str>,
    db_schema: Option<&str>,
    table: &str,
) -> arrow::error::Result<RecordBatch> {
    let mut schemas = Vec::new();
    let mut names = Vec::new();
    let mut columns = Vec::new();
    let mut seq = Vec::new();
    let catalog_ok = catalog.is_none_or(|c| c == runnel_sql::catalog::CATALOG_NAME);
    for t in tables {
        if !catalog_ok
            || !t.table_name.eq_ignore_ascii_case(table)
            || db_schema.is_some_and(|s| s != t.schema_name)
        {
            continue;
        }
        for (i, c) in t.primary_key.iter().enumerate() {
            schemas.push(t.schema_name.clone());
            names.push(t.table_name.clone());
            columns.push(c.clone());
            seq.push(i as i32 + 1);
        }
    }
    let n = names.len();
    RecordBatch::try_new(
        primary_keys_schema(),
        vec![
            Arc::new(StringArray::from(vec![
                runnel_sql::catalog::CATALOG_NAME;
                n
            ])),
            Arc::new(StringArray::from(schemas)),
            Arc::new(StringArray::from(names)),
            Arc::new(StringArray::from(columns)),
            Arc::new(StringArray::from(vec![None::<&str>; n])),
            Arc::new(Int32Array::from(seq)),
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::Array;
    use arrow_flight::sql::CommandGetSqlInfo;

    #[test]
    fn sql_info_answers_the_server_name_and_identifier_quote(
    ) -> Result<(), arrow_flight::error::FlightError> {
        let data = sql_info();
        let batch = CommandGetSqlInfo {
            info: vec![
                SqlInfo::FlightSqlServerName as u32,
                SqlInfo::SqlIdentifierQuoteChar as u32,
            ],
        }
        .into_builder(&data)
        .build()?;
        assert_eq!(batch.num_rows(), 2);
        // Every SqlInfo code of arrow-flight 59 is answered but the two
        // Substrait versions (Substrait plans are not supported).
        let all = CommandGetSqlInfo { info: vec![] }
            .into_builder(&data)
            .build()?;
        let known = (0..1000).filter(|i| SqlInfo::try_from(*i).is_ok()).count();
        assert_eq!(all.num_rows(), known - 2);
        Ok(())
    }

    #[test]
    fn type_names_follow_flink() {
        let s = Schema::new(vec![
            Field::new("a", DataType::Int32, true),
            Field::new("t", DataType::Timestamp(TimeUnit::Millisecond, None), true),
        ]);
        let a = annotate(&s, Some(("public", "x")));
        let md = a.field(0).metadata();
        assert_eq!(md["ARROW:FLIGHT:SQL:TYPE_NAME"], "INT");
        assert_eq!(md["ARROW:FLIGHT:SQL:TABLE_NAME"], "x");
        assert_eq!(
            a.field(1).metadata()["ARROW:FLIGHT:SQL:TYPE_NAME"],
            "TIMESTAMP(3)"
        );
        let types = xdbc_types().record_batch(None).expect("types");
        let names = types
            .column(0)
            .as_any()
            .downcast_ref::<StringArray>()
            .expect("names");
        assert!((0..names.len()).any(|i| names.value(i) == "TIMESTAMP(3)"));
    }
}
