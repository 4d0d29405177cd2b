//! Lookup joins: a stream joined with a table that has no WATERMARK, each
//! stream row looked up by its keys (see runnel_engine::ops::lookup_join).

use arrow::datatypes::DataType;
use runnel_engine::expr::Expr;
use runnel_engine::ops::JoinKind;
use runnel_engine::types::ROW_KIND_COLUMN;
use sqlparser::ast;

use super::join::{data_scope, equality_sides};
use super::{conjuncts, pos, resolve_column, table_scope, Planner};
use crate::binder::{Bound, Scope, ScopeColumn};
use crate::catalog::key_of;
use crate::error::{Result, SqlError};
use crate::plan::{Node, Plan};

impl Planner<'_> {
    /// `left [LEFT] JOIN table ON ...` where the table has no WATERMARK (and
    /// is not a changelog): a lookup join, the table's policies applied to
    /// its columns of the output.
    pub(super) fn plan_lookup_join(
        &mut self,
        left: Plan,
        (name, alias, table): (
            &ast::ObjectName,
            &Option<ast::TableAlias>,
            &crate::catalog::TableEntry,
        ),
        (kind, constraint): (JoinKind, &ast::JoinConstraint),
        relation: &ast::TableFactor,
    ) -> Result<Plan> {
        self.record_read(name);
        let qualifier = alias
            .as_ref()
            .map(|a| a.name.value.clone())
            .unwrap_or_else(|| key_of(name));
        let right_scope = table_scope(table, &qualifier);
        let ast::JoinConstraint::On(on) = constraint else {
            return Err(SqlError::plan(
                "a join needs an ON condition",
                pos(relation),
            ));
        };
        // Keys computed from the stream's columns (`ON MOD(s.id, 100) =
        // t.key`) become columns of the stream, dropped after the join.
        let left_width = left.scope.columns.len();
        let (left, computed) = lookup_key_columns(left, on, &right_scope)?;
        // An updating stream is joined row by row, each output row with
        // its input row's kind: the changelog column stays last.
        let left_data = data_scope(&left);
        let (stream_keys, table_keys) = lookup_keys(on, &left_data, &right_scope, &computed)?;
        let mut columns = left_data.columns.clone();
        for c in &right_scope.columns {
            let mut c = c.clone();
            c.nullable |= kind == JoinKind::Left;
            columns.push(c);
        }
        let updating = left.updating;
        if updating {
            columns.push(ScopeColumn {
                qualifier: None,
                name: ROW_KIND_COLUMN.to_string(),
                data_type: DataType::Int8,
                nullable: false,
            });
        }
        let keys = table_keys.clone();
        let joined = Plan {
            time_column: left.time_column,
            window: left.window,
            node: Node::LookupJoin {
                input: Box::new(left),
                table: self.reader_table(table),
                stream_keys,
                table_keys,
                kind,
            },
            scope: Scope::new(columns),
            updating,
        };
        // The table's row filter and masks, over its columns of the output.
        let joined = self.apply_lookup_policies(
            joined,
            &key_of(name),
            (left_data.columns.len(), right_scope.columns.len()),
            (kind, &keys),
            crate::catalog::position_of(name),
        )?;
        if computed.is_empty() {
            return Ok(joined);
        }
        // Drop the computed key columns again.
        let keep: Vec<usize> = (0..joined.scope.columns.len())
            .filter(|&c| c < left_width || c >= left_width + computed.len())
            .collect();
        Ok(Plan {
            time_column: joined.time_column,
            window: joined.window,
            updating: joined.updating,
            scope: Scope::new(
                keep.iter()
                    .map(|&c| joined.scope.columns[c].clone())
                    .collect(),
            ),
            node: Node::Project {
                exprs: keep
                    .iter()
                    .map(|&c| (Expr::Column(c), joined.scope.columns[c].name.clone()))
                    .collect(),
                input: Box::new(joined),
            },
        })
    }
}

/// Appends a column to `left` for each equality of `on` between an
/// expression over the stream's columns (not a plain column) and a column
/// of the table; returns the new plan and each expression's text with its
/// column.
fn lookup_key_columns(
    left: Plan,
    on: &ast::Expr,
    right: &Scope,
) -> Result<(Plan, Vec<(String, usize)>)> {
    let mut computed: Vec<(ast::Expr, crate::binder::Bound)> = Vec::new();
    for eq in conjuncts(on) {
        let ast::Expr::BinaryOp {
            left: a,
            op: ast::BinaryOperator::Eq,
            right: b,
        } = eq
        else {
            continue;
        };
        for (stream, table) in [(a, b), (b, a)] {
            if resolve_column(table, right).is_err() || resolve_column(stream, &left.scope).is_ok()
            {
                continue;
            }
            if let Ok(mut bound) = crate::binder::bind_expr(stream, &left.scope) {
                // Of the table key's type, when both are numbers (MOD of a
                // BIGINT against an INT key); a value the key type cannot
                // hold matches no key (NULL).
                let key_type = resolve_column(table, right)
                    .map(|k| right.columns[k].data_type.clone())
                    .ok();
                if let Some(t) = key_type.filter(|t| {
                    t != &bound.data_type && t.is_numeric() && bound.data_type.is_numeric()
                }) {
                    bound = Bound {
                        expr: Expr::TryCast {
                            expr: Box::new(bound.expr),
                            to: t.clone(),
                        },
                        data_type: t,
                        nullable: true,
                    };
                }
                if left.updating {
                    return Err(SqlError::plan(
                        "a lookup key computed from an updating stream is not supported; compute it in a subquery first",
                        pos(stream.as_ref()),
                    ));
                }
                computed.push((stream.as_ref().clone(), bound));
                break;
            }
        }
    }
    if computed.is_empty() {
        return Ok((left, Vec::new()));
    }
    let width = left.scope.columns.len();
    let mut exprs: Vec<(Expr, String)> = left
        .scope
        .columns
        .iter()
        .enumerate()
        .map(|(i, c)| (Expr::Column(i), c.name.clone()))
        .collect();
    let mut columns = left.scope.columns.clone();
    let mut named = Vec::new();
    for (i, (e, b)) in computed.into_iter().enumerate() {
        let name = format!("$lookup_key{i}");
        exprs.push((b.expr, name.clone()));
        columns.push(ScopeColumn {
            qualifier: None,
            name,
            data_type: b.data_type,
            nullable: b.nullable,
        });
        named.push((e.to_string(), width + i));
    }
    Ok((
        Plan {
            time_column: left.time_column,
            window: left.window,
            updating: false,
            scope: Scope::new(columns),
            node: Node::Project {
                input: Box::new(left),
                exprs,
            },
        },
        named,
    ))
}

/// The key columns `(stream, table)` of a lookup join's ON condition,
/// which must be equalities between the two sides joined by AND; a stream
/// side that is an expression reads its column in `computed`.
fn lookup_keys(
    on: &ast::Expr,
    left: &Scope,
    right: &Scope,
    computed: &[(String, usize)],
) -> Result<(Vec<usize>, Vec<usize>)> {
    let mut stream_keys = Vec::new();
    let mut table_keys = Vec::new();
    for eq in conjuncts(on) {
        if !matches!(
            eq,
            ast::Expr::BinaryOp {
                op: ast::BinaryOperator::Eq,
                ..
            }
        ) {
            return Err(SqlError::plan(
                "join conditions must be equalities between the two sides, joined by AND",
                pos(eq),
            ));
        }
        let Some((s, t)) = equality_sides(eq, left, right).or_else(|| {
            let ast::Expr::BinaryOp {
                left: a, right: b, ..
            } = eq
            else {
                return None;
            };
            let find = |e: &ast::Expr| {
                let text = e.to_string();
                computed.iter().find(|(t, _)| *t == text).map(|(_, c)| *c)
            };
            match (find(a), resolve_column(b, right)) {
                (Some(l), Ok(r)) => Some((l, r)),
                _ => match (find(b), resolve_column(a, right)) {
                    (Some(l), Ok(r)) => Some((l, r)),
                    _ => None,
                },
            }
        }) else {
            return Err(SqlError::plan(
                "each side of a join equality must be a column of one side of the join",
                pos(eq),
            ));
        };
        stream_keys.push(s);
        table_keys.push(t);
    }
    Ok((stream_keys, table_keys))
}
