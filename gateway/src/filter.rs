//! Consumer-group filters: RocketMQ tag expressions and SQL92 property filters.
//!
//! Both are parsed once, when a group is defined (a bad expression is a 400 naming the
//! position), and compiled into a [`Filter`] evaluated per message. SQL92 is parsed with
//! `sqlparser` and narrowed to what RocketMQ supports: comparisons, `AND`/`OR`/`NOT`, `IN`,
//! `BETWEEN`, `IS [NOT] NULL`, string, numeric and boolean literals, and `TAGS` for the tag.
//! A property compared with a number is read as a number; a comparison with a missing or
//! non-numeric value is unknown, and unknown selects nothing (SQL three-valued logic).

use std::collections::BTreeMap;

use sqlparser::ast::{BinaryOperator, Expr, Spanned, UnaryOperator, Value};
use sqlparser::dialect::GenericDialect;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::Token;

use crate::service::Error;

/// A compiled subscription filter.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    /// Everything (`*`).
    All,
    /// A message whose tag is one of these.
    Tags(Vec<String>),
    /// A SQL92 predicate.
    Sql(Predicate),
}

/// A SQL92 predicate over properties and `TAGS`.
#[derive(Debug, Clone, PartialEq)]
pub enum Predicate {
    And(Box<Predicate>, Box<Predicate>),
    Or(Box<Predicate>, Box<Predicate>),
    Not(Box<Predicate>),
    Compare(Operand, CmpOp, Operand),
    IsNull(Operand, bool),
    In(Operand, Vec<Operand>, bool),
    Between(Operand, Operand, Operand, bool),
    Literal(Option<bool>),
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// One side of a comparison.
#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    Property(String),
    Tags,
    Number(f64),
    Text(String),
    Bool(bool),
    Null,
}

/// A value an operand resolves to for one message.
#[derive(Debug, Clone, PartialEq)]
enum Val<'a> {
    Missing,
    Text(&'a str),
    Number(f64),
    Bool(bool),
}

fn invalid(expr: &str, position: String, why: impl std::fmt::Display) -> Error {
    Error::InvalidFilter(format!("bad filter {expr:?} at {position}: {why}"))
}

/// Parses a tag expression: `*`, `A`, `A || B`.
pub fn parse_tags(expr: &str) -> Result<Filter, Error> {
    let e = expr.trim();
    if e.is_empty() || e == "*" {
        return Ok(Filter::All);
    }
    let mut tags = Vec::new();
    let mut pos = 0;
    for part in expr.split("||") {
        let t = part.trim();
        if t.is_empty() || t.contains(['|', '*', '(', ')', '\'', '"']) {
            return Err(invalid(
                expr,
                format!("character {}", pos + 1),
                "expected a tag",
            ));
        }
        tags.push(t.to_string());
        pos += part.len() + 2;
    }
    Ok(Filter::Tags(tags))
}

/// Parses a SQL92 filter.
pub fn parse_sql(sql: &str) -> Result<Filter, Error> {
    let dialect = GenericDialect {};
    let mut parser = Parser::new(&dialect)
        .try_with_sql(sql)
        .map_err(|e| invalid(sql, "the start".into(), e))?;
    let expr = parser.parse_expr().map_err(|e| {
        let at = parser.peek_token().span.start;
        let position = if at.line == 0 {
            format!("the end (character {})", sql.chars().count() + 1)
        } else {
            format!("line {} column {}", at.line, at.column)
        };
        invalid(sql, position, e)
    })?;
    let next = parser.peek_token();
    if next.token != Token::EOF {
        return Err(invalid(
            sql,
            format!(
                "line {} column {}",
                next.span.start.line, next.span.start.column
            ),
            format!("unexpected {}", next.token),
        ));
    }
    Ok(Filter::Sql(predicate(sql, &expr)?))
}

/// Parses a subscription's filter: its `sql` if given, else its tag `filter`.
pub fn parse(filter: Option<&str>, sql: Option<&str>) -> Result<Filter, Error> {
    match (filter, sql) {
        (Some(f), Some(_)) if !matches!(f.trim(), "" | "*") => Err(Error::bad(
            "give a subscription either filter or sql, not both",
        )),
        (_, Some(s)) => parse_sql(s),
        (f, None) => parse_tags(f.unwrap_or("*")),
    }
}

fn at(e: &Expr) -> String {
    let s = e.span().start;
    format!("line {} column {}", s.line, s.column)
}

fn predicate(sql: &str, e: &Expr) -> Result<Predicate, Error> {
    Ok(match e {
        Expr::Nested(inner) => predicate(sql, inner)?,
        Expr::BinaryOp { left, op, right } => match op {
            BinaryOperator::And => Predicate::And(
                Box::new(predicate(sql, left)?),
                Box::new(predicate(sql, right)?),
            ),
            BinaryOperator::Or => Predicate::Or(
                Box::new(predicate(sql, left)?),
                Box::new(predicate(sql, right)?),
            ),
            op => {
                let op = match op {
                    BinaryOperator::Eq => CmpOp::Eq,
                    BinaryOperator::NotEq => CmpOp::Ne,
                    BinaryOperator::Lt => CmpOp::Lt,
                    BinaryOperator::LtEq => CmpOp::Le,
                    BinaryOperator::Gt => CmpOp::Gt,
                    BinaryOperator::GtEq => CmpOp::Ge,
                    other => {
                        return Err(invalid(sql, at(e), format!("unsupported operator {other}")));
                    }
                };
                Predicate::Compare(operand(sql, left)?, op, operand(sql, right)?)
            }
        },
        Expr::UnaryOp {
            op: UnaryOperator::Not,
            expr,
        } => Predicate::Not(Box::new(predicate(sql, expr)?)),
        Expr::IsNull(x) => Predicate::IsNull(operand(sql, x)?, false),
        Expr::IsNotNull(x) => Predicate::IsNull(operand(sql, x)?, true),
        Expr::IsTrue(x) => Predicate::Compare(operand(sql, x)?, CmpOp::Eq, Operand::Bool(true)),
        Expr::IsFalse(x) => Predicate::Compare(operand(sql, x)?, CmpOp::Eq, Operand::Bool(false)),
        Expr::InList {
            expr,
            list,
            negated,
        } => Predicate::In(
            operand(sql, expr)?,
            list.iter()
                .map(|x| operand(sql, x))
                .collect::<Result<_, _>>()?,
            *negated,
        ),
        Expr::Between {
            expr,
            negated,
            low,
            high,
        } => Predicate::Between(
            operand(sql, expr)?,
            operand(sql, low)?,
            operand(sql, high)?,
            *negated,
        ),
        Expr::Value(v) => match &v.value {
            Value::Boolean(b) => Predicate::Literal(Some(*b)),
            Value::Null => Predicate::Literal(None),
            _ => return Err(invalid(sql, at(e), "expected a condition, found a literal")),
        },
        other => {
            return Err(invalid(
                sql,
                at(e),
                format!("unsupported expression {other}"),
            ));
        }
    })
}

fn operand(sql: &str, e: &Expr) -> Result<Operand, Error> {
    Ok(match e {
        Expr::Nested(inner) => operand(sql, inner)?,
        Expr::Identifier(id)
            if id.quote_style.is_none() && id.value.eq_ignore_ascii_case("TAGS") =>
        {
            Operand::Tags
        }
        Expr::Identifier(id) => Operand::Property(id.value.clone()),
        Expr::CompoundIdentifier(parts) => Operand::Property(
            parts
                .iter()
                .map(|p| p.value.as_str())
                .collect::<Vec<_>>()
                .join("."),
        ),
        Expr::Value(v) => match &v.value {
            Value::Number(n, _) => Operand::Number(
                n.parse()
                    .map_err(|_| invalid(sql, at(e), format!("bad number {n}")))?,
            ),
            Value::SingleQuotedString(s) => Operand::Text(s.clone()),
            Value::Boolean(b) => Operand::Bool(*b),
            Value::Null => Operand::Null,
            other => return Err(invalid(sql, at(e), format!("unsupported literal {other}"))),
        },
        Expr::UnaryOp {
            op: UnaryOperator::Minus,
            expr,
        } => match operand(sql, expr)? {
            Operand::Number(n) => Operand::Number(-n),
            _ => return Err(invalid(sql, at(e), "minus needs a number")),
        },
        other => {
            return Err(invalid(
                sql,
                at(e),
                format!("expected a property or a literal, found {other}"),
            ));
        }
    })
}

impl Filter {
    /// Whether a message with `tag` and `properties` passes.
    pub fn matches(&self, tag: Option<&str>, properties: &BTreeMap<String, String>) -> bool {
        match self {
            Filter::All => true,
            Filter::Tags(tags) => tag.is_some_and(|t| tags.iter().any(|x| x == t)),
            Filter::Sql(p) => p.eval(tag, properties) == Some(true),
        }
    }
}

fn resolve<'a>(
    o: &'a Operand,
    tag: Option<&'a str>,
    props: &'a BTreeMap<String, String>,
) -> Val<'a> {
    match o {
        Operand::Property(p) => props.get(p).map_or(Val::Missing, |v| Val::Text(v)),
        Operand::Tags => tag.map_or(Val::Missing, Val::Text),
        Operand::Number(n) => Val::Number(*n),
        Operand::Text(t) => Val::Text(t),
        Operand::Bool(b) => Val::Bool(*b),
        Operand::Null => Val::Missing,
    }
}

fn as_number(v: &Val<'_>) -> Option<f64> {
    match v {
        Val::Number(n) => Some(*n),
        Val::Text(t) => t.trim().parse().ok(),
        _ => None,
    }
}

fn compare(a: &Val<'_>, op: CmpOp, b: &Val<'_>) -> Option<bool> {
    use std::cmp::Ordering;
    let ord = match (a, b) {
        (Val::Missing, _) | (_, Val::Missing) => return None,
        (Val::Number(_), _) | (_, Val::Number(_)) => as_number(a)?.partial_cmp(&as_number(b)?)?,
        (Val::Bool(x), Val::Bool(y)) => x.cmp(y),
        (Val::Bool(x), Val::Text(t)) | (Val::Text(t), Val::Bool(x)) => {
            let y: bool = t.trim().parse().ok()?;
            return match op {
                CmpOp::Eq => Some(*x == y),
                CmpOp::Ne => Some(*x != y),
                _ => None,
            };
        }
        (Val::Text(x), Val::Text(y)) => {
            return match op {
                CmpOp::Eq => Some(x == y),
                CmpOp::Ne => Some(x != y),
                // RocketMQ compares strings for equality only.
                _ => None,
            };
        }
    };
    Some(match op {
        CmpOp::Eq => ord == Ordering::Equal,
        CmpOp::Ne => ord != Ordering::Equal,
        CmpOp::Lt => ord == Ordering::Less,
        CmpOp::Le => ord != Ordering::Greater,
        CmpOp::Gt => ord == Ordering::Greater,
        CmpOp::Ge => ord != Ordering::Less,
    })
}

impl Predicate {
    /// Three-valued evaluation: `None` is unknown.
    fn eval(&self, tag: Option<&str>, props: &BTreeMap<String, String>) -> Option<bool> {
        match self {
            Predicate::And(a, b) => match (a.eval(tag, props), b.eval(tag, props)) {
                (Some(false), _) | (_, Some(false)) => Some(false),
                (Some(true), Some(true)) => Some(true),
                _ => None,
            },
            Predicate::Or(a, b) => match (a.eval(tag, props), b.eval(tag, props)) {
                (Some(true), _) | (_, Some(true)) => Some(true),
                (Some(false), Some(false)) => Some(false),
                _ => None,
            },
            Predicate::Not(a) => a.eval(tag, props).map(|v| !v),
            Predicate::Compare(a, op, b) => {
                compare(&resolve(a, tag, props), *op, &resolve(b, tag, props))
            }
            Predicate::IsNull(a, negated) => {
                Some((resolve(a, tag, props) == Val::Missing) != *negated)
            }
            Predicate::In(a, list, negated) => {
                let v = resolve(a, tag, props);
                if v == Val::Missing {
                    return None;
                }
                let mut unknown = false;
                for x in list {
                    match compare(&v, CmpOp::Eq, &resolve(x, tag, props)) {
                        Some(true) => return Some(!negated),
                        None => unknown = true,
                        Some(false) => {}
                    }
                }
                if unknown { None } else { Some(*negated) }
            }
            Predicate::Between(a, low, high, negated) => {
                let v = resolve(a, tag, props);
                let lo = compare(&v, CmpOp::Ge, &resolve(low, tag, props))?;
                let hi = compare(&v, CmpOp::Le, &resolve(high, tag, props))?;
                Some((lo && hi) != *negated)
            }
            Predicate::Literal(v) => *v,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn sql(s: &str) -> Filter {
        parse_sql(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn tag_expressions() {
        assert_eq!(parse_tags("*").ok(), Some(Filter::All));
        let f = parse_tags("TagA || TagB").expect("valid");
        assert!(f.matches(Some("TagB"), &props(&[])));
        assert!(!f.matches(Some("TagC"), &props(&[])));
        assert!(!f.matches(None, &props(&[])));
        let e = parse_tags("TagA || || TagB").expect_err("empty tag");
        assert!(e.to_string().contains("character 8"), "{e}");
    }

    #[test]
    fn sql_comparisons_logic_and_literals() {
        let p = props(&[("amount", "150"), ("region", "hz"), ("flag", "true")]);
        assert!(sql("amount > 100 AND region = 'hz'").matches(None, &p));
        assert!(!sql("amount > 200 OR region <> 'hz'").matches(None, &p));
        assert!(sql("NOT (amount < 100)").matches(None, &p));
        assert!(sql("amount BETWEEN 100 AND 150").matches(None, &p));
        assert!(!sql("amount NOT BETWEEN 100 AND 150").matches(None, &p));
        assert!(sql("region IN ('sh', 'hz')").matches(None, &p));
        assert!(!sql("region NOT IN ('sh', 'hz')").matches(None, &p));
        assert!(sql("missing IS NULL AND region IS NOT NULL").matches(None, &p));
        assert!(sql("TAGS = 'TagA'").matches(Some("TagA"), &p));
        assert!(!sql("TAGS = 'TagA'").matches(None, &p));
        assert!(sql("flag = TRUE").matches(None, &p));
        assert!(sql("amount >= -1.5e2").matches(None, &p));
    }

    #[test]
    fn missing_or_non_numeric_values_select_nothing() {
        let p = props(&[("amount", "lots")]);
        assert!(!sql("amount > 1").matches(None, &p));
        assert!(
            !sql("NOT (amount > 1)").matches(None, &p),
            "unknown stays unknown under NOT"
        );
        assert!(!sql("other = 'x'").matches(None, &p));
        assert!(!sql("NOT (other = 'x')").matches(None, &p));
        assert!(sql("other = 'x' OR amount = 'lots'").matches(None, &p));
    }

    #[test]
    fn bad_expressions_name_the_position() {
        for bad in [
            "amount >",
            "amount > 1 AND",
            "amount LIKE 'x%'",
            "a = 1 b",
            "f(a) = 1",
            "(a = 1",
        ] {
            let e = parse_sql(bad).expect_err(bad).to_string();
            assert!(
                e.contains("line 1 column") || e.contains("at the end (character"),
                "{bad}: {e}"
            );
        }
        let e = parse_sql("a = 1 b").expect_err("trailing").to_string();
        assert!(e.contains("column 7"), "{e}");
    }
}
