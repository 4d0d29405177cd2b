//! Cutting a script into its statements' texts, shared by the CLI (which
//! shows them in `SHOW JOBS` and errors) and the server (which logs them).

use runnel_sql::parser::Located;

/// The text of statement `i` of `stmts`: from its start to the next one.
pub fn statement_text<'a>(sql: &'a str, stmts: &[Located], i: usize) -> &'a str {
    let offset = |p: runnel_sql::error::Position| -> usize {
        let mut off = 0;
        for (n, l) in sql.split_inclusive('\n').enumerate() {
            if n + 1 == p.line as usize {
                // Columns count characters, not bytes.
                let col = (p.column as usize).saturating_sub(1);
                return off + l.char_indices().nth(col).map_or(l.len(), |(b, _)| b);
            }
            off += l.len();
        }
        sql.len()
    };
    let start = offset(stmts[i].position);
    let end = stmts.get(i + 1).map_or(sql.len(), |s| offset(s.position));
    sql[start..end].trim().trim_end_matches(';').trim()
}

#[cfg(test)]
mod tests {
    use super::*;
    use runnel_sql::parser::parse_sql;

    #[test]
    fn statement_text_is_cut_at_the_next_statement() {
        let sql = "SET 'a' = '1';\n  SELECT 1\n  FROM t;\nSHOW TABLES";
        let stmts = parse_sql(sql).expect("parses");
        assert_eq!(statement_text(sql, &stmts, 0), "SET 'a' = '1'");
        assert_eq!(statement_text(sql, &stmts, 1), "SELECT 1\n  FROM t");
        assert_eq!(statement_text(sql, &stmts, 2), "SHOW TABLES");
        // Columns are characters: multi-byte text before a statement does
        // not shift the cut.
        let sql = "SELECT '日日日日'; SELECT 2";
        let stmts = parse_sql(sql).expect("parses");
        assert_eq!(statement_text(sql, &stmts, 0), "SELECT '日日日日'");
        assert_eq!(statement_text(sql, &stmts, 1), "SELECT 2");
    }
}
