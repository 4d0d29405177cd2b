//! Window table functions in FROM: `TABLE(TUMBLE(TABLE t, DESCRIPTOR(ts),
//! INTERVAL ...))` and HOP, CUMULATE and SESSION alike. The window columns
//! they add are consumed by a GROUP BY or a window join.

use runnel_engine::window::WindowSpec;
use sqlparser::ast;

use super::{
    col, function_args, is_proctime_column, pos, resolve_column, ts_type, use_processing_time,
    Planner, WINDOW_END, WINDOW_START, WINDOW_TIME,
};
use crate::binder::{interval_millis, Scope};
use crate::catalog::key_of;
use crate::error::{Result, SqlError};
use crate::parser::TABLE_ARGUMENT;
use crate::plan::{engine_message, Node, Plan};

impl Planner<'_> {
    /// `TABLE(TUMBLE(TABLE t, DESCRIPTOR(ts), INTERVAL ...))` and friends.
    pub(super) fn plan_window_tvf(&mut self, expr: &ast::Expr) -> Result<Plan> {
        let ast::Expr::Function(f) = expr else {
            return Err(SqlError::plan(
                "expected a window function: TUMBLE, HOP, CUMULATE or SESSION",
                pos(expr),
            ));
        };
        let fname = f.name.to_string().to_uppercase();
        let args = window_args(f, &fname, expr)?;
        let (mut input, partition, tname) = self.window_input(&fname, args[0])?;
        let time_column = descriptor_column(args[1], &mut input, &tname)?;
        let window = window_spec(&fname, &args, expr)?;
        // An optional last argument: the offset of the windows from
        // multiples of their size, as in Flink.
        let offset = match (fname.as_str(), args.len()) {
            ("TUMBLE", 4) | ("HOP" | "CUMULATE", 5) => {
                crate::binder::interval_millis(args[args.len() - 1])?
            }
            _ => 0,
        };
        let mut columns = input.scope.columns.clone();
        columns.push(col(WINDOW_START, None, ts_type(), false));
        columns.push(col(WINDOW_END, None, ts_type(), false));
        columns.push(col(WINDOW_TIME, None, ts_type(), false));
        let width = input.scope.columns.len();
        Ok(Plan {
            time_column: input.time_column,
            window: match window {
                WindowSpec::Session { .. } => None,
                _ => Some((width, width + 1)),
            },
            node: Node::WindowTvf {
                input: Box::new(input),
                window,
                time_column,
                partition,
                offset,
            },
            scope: Scope::new(columns),
            updating: false,
        })
    }

    /// The first argument, `TABLE t [PARTITION BY ...]`: the table's plan,
    /// the partition columns (SESSION only) and the table's name.
    fn window_input(
        &mut self,
        fname: &str,
        arg: &ast::Expr,
    ) -> Result<(Plan, Vec<usize>, ast::ObjectName)> {
        let ast::Expr::Function(table_arg) = arg else {
            return Err(SqlError::plan(
                format!("the first argument of {fname} must be TABLE name"),
                pos(arg),
            ));
        };
        if !table_arg
            .name
            .to_string()
            .eq_ignore_ascii_case(TABLE_ARGUMENT)
        {
            return Err(SqlError::plan(
                format!("the first argument of {fname} must be TABLE name"),
                pos(arg),
            ));
        }
        let targs = function_args(table_arg)?;
        let Some(ast::Expr::CompoundIdentifier(parts)) = targs.first().copied() else {
            return Err(SqlError::plan(
                "expected a table name after TABLE",
                pos(arg),
            ));
        };
        let tname = ast::ObjectName::from(parts.clone());
        let qualifier = key_of(&tname);
        let input = self.plan_named(&tname, &qualifier)?;
        if input.updating {
            return Err(SqlError::plan(
                "windows over an updating stream are not supported",
                pos(arg),
            ));
        }
        let partition = targs[1..]
            .iter()
            .map(|k| resolve_column(k, &input.scope))
            .collect::<Result<Vec<_>>>()?;
        if !partition.is_empty() && fname != "SESSION" {
            return Err(SqlError::plan(
                "PARTITION BY is only allowed for SESSION windows",
                pos(arg),
            ));
        }
        Ok((input, partition, tname))
    }
}

/// The arguments of window function `f` (named `fname`, upper case),
/// checked to be as many as that function takes.
fn window_args<'f>(
    f: &'f ast::Function,
    fname: &str,
    expr: &ast::Expr,
) -> Result<Vec<&'f ast::Expr>> {
    let args = function_args(f)?;
    let arity = match fname {
        "TUMBLE" if args.len() == 4 => 4,
        "TUMBLE" | "SESSION" => 3,
        "HOP" | "CUMULATE" if args.len() == 5 => 5,
        "HOP" | "CUMULATE" => 4,
        _ => {
            return Err(SqlError::plan(
                format!(
                    "unknown window function '{}'; expected one of TUMBLE, HOP, CUMULATE, SESSION",
                    f.name
                ),
                pos(&f.name),
            ))
        }
    };
    if args.len() != arity {
        return Err(SqlError::plan(
            format!(
                "{fname} takes {arity} arguments (TABLE t, DESCRIPTOR(time column), {}), found {}",
                match fname {
                    "TUMBLE" => "size[, offset]",
                    "SESSION" => "gap",
                    "HOP" => "slide, size[, offset]",
                    _ => "step, size[, offset]",
                },
                args.len()
            ),
            pos(expr),
        ));
    }
    Ok(args)
}

/// The second argument, `DESCRIPTOR(ts)`: the time column, which must be
/// the event-time column (the one with a WATERMARK) of `input`, table
/// `tname`.
fn descriptor_column(arg: &ast::Expr, input: &mut Plan, tname: &ast::ObjectName) -> Result<usize> {
    let ast::Expr::Function(d) = arg else {
        return Err(SqlError::plan(
            "the second argument must be DESCRIPTOR(time column)",
            pos(arg),
        ));
    };
    let dargs = function_args(d)?;
    if !d.name.to_string().eq_ignore_ascii_case("DESCRIPTOR") || dargs.len() != 1 {
        return Err(SqlError::plan(
            "the second argument must be DESCRIPTOR(time column)",
            pos(arg),
        ));
    }
    let time_column = resolve_column(dargs[0], &input.scope)?;
    // A processing-time window: the sources below send the clock's time
    // as their watermark, and the PROCTIME() column is the time attribute.
    if input.time_column != Some(time_column) && is_proctime_column(input, time_column) {
        use_processing_time(input, pos(dargs[0]))?;
        input.time_column = Some(time_column);
    }
    if input.time_column != Some(time_column) {
        let name = &input.scope.columns[time_column].name;
        let hint = match input.time_column {
            Some(t) => format!(
                "the event-time column of '{tname}' is '{}'",
                input.scope.columns[t].name
            ),
            None => format!("'{tname}' declares no WATERMARK"),
        };
        return Err(SqlError::plan(
            format!("column '{name}' has no watermark, so it cannot drive a window; declare WATERMARK FOR {name} AS {name} - INTERVAL '...' SECOND in the table ({hint})"),
            pos(dargs[0]),
        ));
    }
    Ok(time_column)
}

/// The window the interval arguments after DESCRIPTOR describe, validated
/// by the engine.
fn window_spec(fname: &str, args: &[&ast::Expr], expr: &ast::Expr) -> Result<WindowSpec> {
    let size = |e: &ast::Expr| -> Result<i64> {
        let ms = interval_millis(e)?;
        if ms <= 0 {
            return Err(SqlError::plan(
                "a window size must be a positive interval",
                pos(e),
            ));
        }
        Ok(ms)
    };
    let window = match fname {
        "TUMBLE" => WindowSpec::Tumble {
            size: size(args[2])?,
        },
        "HOP" => WindowSpec::Hop {
            slide: size(args[2])?,
            size: size(args[3])?,
        },
        "CUMULATE" => WindowSpec::Cumulate {
            step: size(args[2])?,
            size: size(args[3])?,
        },
        _ => WindowSpec::Session {
            gap: size(args[2])?,
        },
    };
    window
        .validate()
        .map_err(|e| SqlError::plan(engine_message(&e), pos(expr)))?;
    Ok(window)
}
