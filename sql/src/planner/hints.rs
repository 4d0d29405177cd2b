//! Query hints: Flink's `/*+ STATE_TTL('o' = '1d', 'c' = '12h') */` after
//! SELECT gives the regular joins and non-windowed aggregates of that
//! SELECT a state TTL per input, named by its alias or table name; it wins
//! over `'table.exec.state.ttl'`. A join takes each side's TTL from the
//! side's name (a side that is itself a join has none); an aggregate over
//! one named input takes that input's. A name that no such input has is an
//! error, as in Flink, and so is any other hint.

use std::collections::HashMap;
use std::time::Duration;

use runnel_engine::connector::parse_duration;
use sqlparser::ast;

use super::pos;
use crate::error::{Result, SqlError};
use crate::plan::{Node, Plan};

/// The STATE_TTL entries of `select`'s hints: name (lower case) to TTL.
pub(super) fn state_ttl_hints(select: &ast::Select) -> Result<HashMap<String, Duration>> {
    let mut out = HashMap::new();
    for hint in &select.optimizer_hints {
        let mut rest = hint.text.trim();
        while !rest.is_empty() {
            let open = rest
                .find('(')
                .ok_or_else(|| bad(select, "a hint is NAME(options)"))?;
            let name = rest[..open].trim();
            let close = rest[open..]
                .find(')')
                .map(|c| open + c)
                .ok_or_else(|| bad(select, "a hint's options end with ')'"))?;
            if !name.eq_ignore_ascii_case("STATE_TTL") {
                return Err(SqlError::plan(
                    format!("unknown query hint '{name}'; Runnel knows STATE_TTL"),
                    pos(select),
                ));
            }
            for pair in rest[open + 1..close]
                .split(',')
                .filter(|p| !p.trim().is_empty())
            {
                let (k, v) = pair
                    .split_once('=')
                    .ok_or_else(|| bad(select, "STATE_TTL takes 'name' = 'duration' pairs"))?;
                let unquote = |t: &str| t.trim().trim_matches('\'').trim_matches('"').to_string();
                let (k, v) = (unquote(k), unquote(v));
                let ttl = parse_duration(&v).ok_or_else(|| {
                    bad(
                        select,
                        &format!("STATE_TTL of '{k}' must be a duration such as '1d' or '12h', not '{v}'"),
                    )
                })?;
                out.insert(k.to_lowercase(), ttl);
            }
            rest = rest[close + 1..]
                .trim_start()
                .trim_start_matches(',')
                .trim_start();
        }
    }
    Ok(out)
}

fn bad(select: &ast::Select, what: &str) -> SqlError {
    SqlError::plan(format!("bad STATE_TTL hint: {what}"), pos(select))
}

/// The name a plan of one input answers to in a STATE_TTL hint: the
/// qualifier all its columns share (a table's alias or name).
pub(super) fn input_name(plan: &Plan) -> Option<String> {
    let mut names = plan
        .scope
        .columns
        .iter()
        .filter_map(|c| c.qualifier.as_deref());
    let first = names.next()?;
    names.all(|n| n == first).then(|| first.to_lowercase())
}

/// Gives the first non-windowed aggregate under `plan` (through filters
/// and projections) the TTL `ttl`.
pub(super) fn set_aggregate_ttl(plan: &mut Plan, ttl: Duration) -> bool {
    match &mut plan.node {
        Node::GroupAggregate { spec, .. } => {
            spec.ttl = Some(ttl);
            true
        }
        Node::Filter { input, .. } | Node::Project { input, .. } => set_aggregate_ttl(input, ttl),
        _ => false,
    }
}
