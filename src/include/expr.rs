//! `#if` and `#elif` conditions, evaluated as GCC does (intmax_t and uintmax_t arithmetic,
//! `defined`, `__has_include`, `__has_include_next`, `true`/`false` in C++, and the feature
//! tests such as `__has_builtin`, which the caller asks the compiler about), with a third
//! answer, [`Truth::Unknown`], when the value depends on something the walk cannot know
//! (`__LINE__`, a feature test the compiler would not answer), on a macro the walk knows
//! only as "maybe", or when the expression is not one GCC would accept. The caller then
//! follows both branches.

use super::macros::{Expander, Lookup, Table};
use super::token::{known, spell, Kind, Tok};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Truth {
    True,
    False,
    Unknown,
}

/// What only the surroundings of a condition know; `None` when they cannot tell.
pub trait Oracle {
    /// `__has_include` (`next` for `__has_include_next`) of `name` (`angle` for `<name>`):
    /// whether the file exists.
    fn has_include(&mut self, angle: bool, name: &str, next: bool) -> Option<bool>;
    /// The value of a feature test, spelled as written: `__has_builtin(__builtin_expect)`.
    fn feature(&mut self, test: &str) -> Option<i64>;
}

/// The truth of `expr` under `table`. `cplusplus` makes `true` and `false` keywords.
pub fn evaluate(expr: &[Tok], table: &Table, cplusplus: bool, oracle: &mut dyn Oracle) -> Truth {
    let Some(items) = items(expr, table, cplusplus, oracle) else {
        return Truth::Unknown;
    };
    let mut p = Parser {
        items: &items,
        pos: 0,
        skipping: 0,
    };
    match p.comma() {
        Ok(v) if p.pos == items.len() => match v {
            Some(v) if v.bits != 0 => Truth::True,
            Some(_) => Truth::False,
            None => Truth::Unknown,
        },
        _ => Truth::Unknown,
    }
}

/// A value: its bits, and whether it is unsigned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Value {
    bits: u64,
    unsigned: bool,
}

impl Value {
    fn int(v: i64) -> Value {
        Value {
            bits: v as u64,
            unsigned: false,
        }
    }
    fn truth(b: bool) -> Value {
        Value::int(i64::from(b))
    }
}

#[derive(Debug, Clone, Copy)]
enum Item {
    Num(Option<Value>),
    Op(&'static str),
}

/// The expanded condition as numbers (unknown ones as `None`) and operators; `None`
/// when the whole condition is undecidable.
fn items(
    expr: &[Tok],
    table: &Table,
    cplusplus: bool,
    oracle: &mut dyn Oracle,
) -> Option<Vec<Item>> {
    let k = known();
    let clang = matches!(table.get(k.clang), Lookup::Defined(_));
    let mut ex = Expander::new(table, expr.to_vec());
    let mut out = Vec::new();
    while let Some(t) = ex.next() {
        let item = match t.kind {
            Kind::Number => Item::Num(Some(number(t.text())?)),
            Kind::Char => {
                let unsigned = matches!(table.get(k.char_unsigned), Lookup::Defined(_));
                Item::Num(Some(character(t.text(), unsigned)?))
            }
            Kind::Ident if t.sym == k.defined => {
                ex.expanding = false;
                let mut name = ex.next()?;
                let paren = name.is(k.lparen);
                if paren {
                    name = ex.next()?;
                }
                if name.kind != Kind::Ident || (paren && !ex.next()?.is(k.rparen)) {
                    return None;
                }
                ex.expanding = true;
                Item::Num(table.is_defined(name.sym).map(Value::truth))
            }
            Kind::Ident if t.sym == k.has_include || t.sym == k.has_include_next => {
                let next = t.sym == k.has_include_next;
                let operand = parenthesized(&mut ex)?;
                let (angle, name) = super::macros::header_name(&operand)?;
                Item::Num(oracle.has_include(angle, &name, next).map(Value::truth))
            }
            Kind::Ident if k.feature_tests.contains(&t.sym) => {
                // `__has_builtin(x)` and friends: the compiler knows, with the operand as
                // written. GCC expands macros in the operand; clang does not.
                ex.expanding = !clang;
                let operand = parenthesized(&mut ex);
                ex.expanding = true;
                let operand = operand?;
                let test = format!("{}({})", t.text(), feature_spelling(&operand));
                Item::Num(oracle.feature(&test).map(Value::int))
            }
            Kind::Ident if k.dynamic.contains(&t.sym) => Item::Num(None),
            Kind::Ident if cplusplus && t.sym == k.true_ => Item::Num(Some(Value::truth(true))),
            Kind::Ident if cplusplus && t.sym == k.false_ => Item::Num(Some(Value::truth(false))),
            // Any other name is 0; one called like a function is a macro defined somewhere
            // the walk did not see (GCC reports an error): undecidable.
            Kind::Ident => Item::Num(Some(Value::int(0))),
            Kind::Punct => Item::Op(t.text()),
            _ => return None,
        };
        out.push(item);
    }
    if ex.ambiguous || ex.failed {
        return None;
    }
    // A name directly followed by `(`: an unknown function-like macro.
    for w in out.windows(2) {
        if let (Item::Num(_), Item::Op("(")) = (w[0], w[1]) {
            return None;
        }
    }
    Some(out)
}

/// After a `__has_...` operator: the tokens between its parentheses.
fn parenthesized(ex: &mut Expander) -> Option<Vec<Tok>> {
    let k = known();
    if !ex.next()?.is(k.lparen) {
        return None;
    }
    let mut inside = Vec::new();
    let mut depth = 0;
    loop {
        let o = ex.next()?;
        if o.is(k.lparen) {
            depth += 1;
        } else if o.is(k.rparen) {
            if depth == 0 {
                return Some(inside);
            }
            depth -= 1;
        }
        inside.push(o);
    }
}

/// How a feature test is written for the compiler: its tokens without spaces.
fn feature_spelling(toks: &[Tok]) -> String {
    let mut s = spell(toks);
    s.retain(|c| c != ' ');
    s
}

/// The feature tests (`__has_builtin(x)`, ...) written in `expr`, as the compiler is
/// asked them: for asking a file's tests at once.
pub fn feature_tests(expr: &[Tok]) -> Vec<String> {
    let k = known();
    let mut out = Vec::new();
    for (i, t) in expr.iter().enumerate() {
        if t.kind != Kind::Ident || !k.feature_tests.contains(&t.sym) {
            continue;
        }
        if !expr.get(i + 1).is_some_and(|o| o.is(k.lparen)) {
            continue;
        }
        let mut depth = 0;
        for (j, o) in expr.iter().enumerate().skip(i + 1) {
            if o.is(k.lparen) {
                depth += 1;
            } else if o.is(k.rparen) {
                depth -= 1;
                if depth == 0 {
                    out.push(feature_spelling(&expr[i..=j]));
                    break;
                }
            }
        }
    }
    out
}

/// An integer literal: decimal, octal, hex or binary, with `u`/`l`/`ll` suffixes (and
/// digit separators). Floating literals are not allowed in `#if`.
fn number(text: &str) -> Option<Value> {
    let t = text.replace('\'', "");
    let lower = t.to_ascii_lowercase();
    let body = lower.trim_end_matches(['u', 'l', 'z']);
    let suffix = &lower[body.len()..];
    if !suffix.chars().all(|c| matches!(c, 'u' | 'l' | 'z')) {
        return None;
    }
    let (digits, radix) = if let Some(h) = body.strip_prefix("0x") {
        (h, 16)
    } else if let Some(b) = body.strip_prefix("0b") {
        (b, 2)
    } else if body.len() > 1 && body.starts_with('0') {
        (&body[1..], 8)
    } else {
        (body, 10)
    };
    let bits = u64::from_str_radix(digits, radix).ok()?;
    // A decimal literal too big for intmax_t, or any literal with `u`, is unsigned; an
    // octal or hex one too big for intmax_t is too.
    let unsigned = suffix.contains('u') || bits > i64::MAX as u64;
    Some(Value { bits, unsigned })
}

/// A character literal's value: plain ones as `char`, signed unless the compiler defines
/// `__CHAR_UNSIGNED__`; anything else is left to the compiler.
fn character(text: &str, unsigned_char: bool) -> Option<Value> {
    let body = text.strip_prefix('\'')?.strip_suffix('\'')?;
    let b = body.as_bytes();
    let c: u32 = match b {
        [c] => u32::from(*c),
        [b'\\', rest @ ..] => match rest {
            [b'n'] => 10,
            [b't'] => 9,
            [b'r'] => 13,
            [b'0'] => 0,
            [b'a'] => 7,
            [b'b'] => 8,
            [b'f'] => 12,
            [b'v'] => 11,
            [b'e'] => 27,
            [c @ (b'\\' | b'\'' | b'"' | b'?')] => u32::from(*c),
            [b'x', hex @ ..] => u32::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?,
            oct if oct.len() <= 3 && oct.iter().all(|c| (b'0'..=b'7').contains(c)) => {
                u32::from_str_radix(std::str::from_utf8(oct).ok()?, 8).ok()?
            }
            _ => return None,
        },
        _ => return None,
    };
    if c > 0xff {
        return None;
    }
    Some(Value::int(if unsigned_char {
        i64::from(c as u8)
    } else {
        i64::from(c as u8 as i8)
    }))
}

struct Parser<'a> {
    items: &'a [Item],
    pos: usize,
    /// Inside an operand that is not evaluated (`0 && x`): its errors do not count.
    skipping: usize,
}

/// A parse error (GCC would reject the directive).
struct Bad;

type R = Result<Option<Value>, Bad>;

fn prec(op: &str) -> Option<u8> {
    Some(match op {
        "*" | "/" | "%" => 10,
        "+" | "-" => 9,
        "<<" | ">>" => 8,
        "<" | ">" | "<=" | ">=" => 7,
        "==" | "!=" => 6,
        "&" => 5,
        "^" => 4,
        "|" => 3,
        "&&" => 2,
        "||" => 1,
        _ => return None,
    })
}

impl Parser<'_> {
    fn peek_op(&self) -> Option<&'static str> {
        match self.items.get(self.pos) {
            Some(Item::Op(o)) => Some(o),
            _ => None,
        }
    }

    fn expect(&mut self, op: &str) -> Result<(), Bad> {
        if self.peek_op() == Some(op) {
            self.pos += 1;
            Ok(())
        } else {
            Err(Bad)
        }
    }

    fn comma(&mut self) -> R {
        let mut v = self.conditional()?;
        while self.peek_op() == Some(",") {
            self.pos += 1;
            v = self.conditional()?;
        }
        Ok(v)
    }

    fn conditional(&mut self) -> R {
        let c = self.binary(1)?;
        if self.peek_op() != Some("?") {
            return Ok(c);
        }
        self.pos += 1;
        let take = c.map(|c| c.bits != 0);
        self.skipping += usize::from(take == Some(false));
        let a = self.comma()?;
        self.skipping -= usize::from(take == Some(false));
        self.expect(":")?;
        self.skipping += usize::from(take == Some(true));
        let b = self.conditional()?;
        self.skipping -= usize::from(take == Some(true));
        Ok(match (take, a, b) {
            (Some(true), Some(a), Some(b)) => Some(promote(a, b).0),
            (Some(false), Some(a), Some(b)) => Some(promote(a, b).1),
            (Some(true), a, _) => a,
            (Some(false), _, b) => b,
            (None, Some(a), Some(b)) if a == b => Some(a),
            (None, _, _) => None,
        })
    }

    fn binary(&mut self, min: u8) -> R {
        let mut left = self.unary()?;
        while let Some(op) = self.peek_op() {
            let Some(p) = prec(op) else { break };
            if p < min {
                break;
            }
            self.pos += 1;
            let right = if op == "&&" || op == "||" {
                let decided = left.map(|l| (l.bits != 0) == (op == "||"));
                let skip = usize::from(decided == Some(true));
                self.skipping += skip;
                let r = self.binary(p + 1)?;
                self.skipping -= skip;
                left = match (decided, left, r) {
                    (Some(true), _, _) => Some(Value::truth(op == "||")),
                    (_, Some(_), Some(r)) => Some(Value::truth(r.bits != 0)),
                    // `x && 0` is 0 and `x || 1` is 1 whatever x is.
                    (None, None, Some(r)) if (r.bits != 0) == (op == "||") => {
                        Some(Value::truth(op == "||"))
                    }
                    _ => None,
                };
                continue;
            } else {
                self.binary(p + 1)?
            };
            left = match (left, right) {
                (Some(l), Some(r)) => self.apply(op, l, r)?,
                _ => None,
            };
        }
        Ok(left)
    }

    fn apply(&self, op: &str, l: Value, r: Value) -> R {
        if op == "<<" || op == ">>" {
            return Ok(Some(shift(op == "<<", l, r)));
        }
        let (l, r) = promote(l, r);
        let u = l.unsigned;
        let (a, b) = (l.bits, r.bits);
        let (sa, sb) = (a as i64, b as i64);
        let num = |bits: u64| Some(Value { bits, unsigned: u });
        let cmp = |ord: std::cmp::Ordering, want: &[std::cmp::Ordering]| {
            Some(Value::truth(want.contains(&ord)))
        };
        use std::cmp::Ordering::*;
        let ord = if u { a.cmp(&b) } else { sa.cmp(&sb) };
        Ok(match op {
            "*" => num(if u {
                a.wrapping_mul(b)
            } else {
                sa.wrapping_mul(sb) as u64
            }),
            "/" | "%" => {
                if b == 0 {
                    return if self.skipping > 0 {
                        Ok(Some(Value::int(0)))
                    } else {
                        Err(Bad)
                    };
                }
                num(match (op, u) {
                    ("/", true) => a / b,
                    ("/", false) => sa.wrapping_div(sb) as u64,
                    (_, true) => a % b,
                    (_, false) => sa.wrapping_rem(sb) as u64,
                })
            }
            "+" => num(a.wrapping_add(b)),
            "-" => num(a.wrapping_sub(b)),
            "<" => cmp(ord, &[Less]),
            ">" => cmp(ord, &[Greater]),
            "<=" => cmp(ord, &[Less, Equal]),
            ">=" => cmp(ord, &[Greater, Equal]),
            "==" => Some(Value::truth(a == b)),
            "!=" => Some(Value::truth(a != b)),
            "&" => num(a & b),
            "^" => num(a ^ b),
            "|" => num(a | b),
            _ => return Err(Bad),
        })
    }

    fn unary(&mut self) -> R {
        match self.items.get(self.pos).copied() {
            Some(Item::Num(v)) => {
                self.pos += 1;
                Ok(v)
            }
            Some(Item::Op("(")) => {
                self.pos += 1;
                let v = self.comma()?;
                self.expect(")")?;
                Ok(v)
            }
            Some(Item::Op(op @ ("-" | "+" | "~" | "!"))) => {
                self.pos += 1;
                let v = self.unary()?;
                Ok(v.map(|v| match op {
                    "-" => Value {
                        bits: v.bits.wrapping_neg(),
                        ..v
                    },
                    "~" => Value { bits: !v.bits, ..v },
                    "!" => Value::truth(v.bits == 0),
                    _ => v,
                }))
            }
            _ => Err(Bad),
        }
    }
}

/// `l << r` (`left`) or `l >> r`: the result has the left operand's type alone (no
/// usual arithmetic conversions); a negative count shifts the other way.
fn shift(left: bool, l: Value, r: Value) -> Value {
    let n = if r.unsigned {
        r.bits.min(i64::MAX as u64) as i64
    } else {
        r.bits as i64
    };
    let left = left == (n >= 0);
    let n = n.unsigned_abs();
    Value {
        bits: if left { shl(l, n) } else { shr(l, n) },
        unsigned: l.unsigned,
    }
}

fn shl(l: Value, n: u64) -> u64 {
    if n >= 64 {
        0
    } else {
        l.bits << n
    }
}

fn shr(l: Value, n: u64) -> u64 {
    match (n >= 64, l.unsigned) {
        (true, true) => 0,
        (true, false) => ((l.bits as i64) >> 63) as u64,
        (false, true) => l.bits >> n,
        (false, false) => ((l.bits as i64) >> n) as u64,
    }
}

/// The usual arithmetic conversions: both unsigned when either is.
fn promote(l: Value, r: Value) -> (Value, Value) {
    let u = l.unsigned || r.unsigned;
    (Value { unsigned: u, ..l }, Value { unsigned: u, ..r })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::include::macros::Macro;
    use crate::include::token::tokenize;
    use std::sync::Arc;

    /// Knows `yes.h` and `<sys/yes.h>`, not `maybe.h`, and that only
    /// `__builtin_expect` is a builtin.
    struct Test;

    impl Oracle for Test {
        fn has_include(&mut self, angle: bool, name: &str, _next: bool) -> Option<bool> {
            match name {
                "yes.h" => Some(true),
                "maybe.h" => None,
                _ => Some(angle && name == "sys/yes.h"),
            }
        }
        fn feature(&mut self, test: &str) -> Option<i64> {
            match test {
                "__has_builtin(__builtin_expect)" => Some(1),
                t if t.starts_with("__has_builtin(") => Some(0),
                _ => None,
            }
        }
    }

    fn eval_with(defs: &[&str], expr: &str) -> Truth {
        let mut t = Table::default();
        for d in defs {
            t.define_owned(Arc::new(Macro::from_option(d).unwrap()), false);
        }
        evaluate(&tokenize(expr.as_bytes(), false), &t, false, &mut Test)
    }

    fn eval(expr: &str) -> Truth {
        eval_with(&[], expr)
    }

    #[test]
    fn arithmetic() {
        use Truth::*;
        assert_eq!(eval("1 + 2 * 3 == 7"), True);
        assert_eq!(eval("(1 + 2) * 3 == 7"), False);
        assert_eq!(eval("-1 < 0"), True);
        assert_eq!(eval("-1 < 0u"), False);
        assert_eq!(eval("0xffffffffffffffff == -1"), True);
        assert_eq!(eval("1 << 63 < 0"), True);
        assert_eq!(eval("7 / 2 == 3 && 7 % 2 == 1 && -7 / 2 == -3"), True);
        assert_eq!(eval("1 ? 2 : 0"), True);
        assert_eq!(eval("0 ? 2 : 0"), False);
        assert_eq!(
            eval("!0 && ~0 == -1 && (5 ^ 1) == 4 && (4 | 1) == 5 && (6 & 3) == 2"),
            True
        );
        assert_eq!(eval("'a' == 97 && '\\n' == 10 && '\\377' < 0"), True);
        assert_eq!(eval("201112L >= 199901L && 1'000 == 1000"), True);
        assert_eq!(eval("0 && 1 / 0"), False);
        assert_eq!(eval("1 / 0"), Unknown);
        assert_eq!(eval("1 +"), Unknown);
        assert_eq!(eval("1.5"), Unknown);
        assert_eq!(eval("(1, 0)"), False);
        assert_eq!(
            eval("-1 >> 1u == -1 && (1u << 2) == 4 && (-8 >> -1) == -16"),
            True
        );
        assert_eq!(eval_with(&["__CHAR_UNSIGNED__"], "'\\377' > 0"), True);
    }

    #[test]
    fn names() {
        use Truth::*;
        assert_eq!(
            eval_with(&["A=2", "B"], "A > 1 && B && defined A && defined(B)"),
            True
        );
        assert_eq!(eval_with(&["A=2"], "C || defined C"), False);
        assert_eq!(eval_with(&["F(x)=x+1"], "F(1) == 2"), True);
        assert_eq!(eval("UNKNOWN(1)"), Unknown);
        assert_eq!(
            eval("__has_builtin( __builtin_expect ) && !__has_builtin(x)"),
            True
        );
        assert_eq!(eval("__has_attribute(x) || 0"), Unknown);
        assert_eq!(eval("__has_attribute(x) || 1"), True);
        assert_eq!(eval("0 && __has_attribute(x)"), False);
        assert_eq!(eval_with(&["B=__builtin_expect"], "__has_builtin(B)"), True);
        assert_eq!(
            eval("defined __has_include && defined(__has_builtin)"),
            True
        );
        assert_eq!(eval("__LINE__ > 0"), Unknown);
        assert_eq!(eval("defined __has_feature"), False);
        assert_eq!(eval_with(&["__clang__"], "defined __has_feature"), True);
        assert_eq!(eval("true"), False);
        let t = Table::default();
        assert_eq!(
            evaluate(&tokenize(b"true", false), &t, true, &mut Test),
            True
        );
    }

    #[test]
    fn feature_tests_of_a_condition() {
        let t = tokenize(
            b"__has_builtin( a ) && defined(X) || __has_cpp_attribute(gnu::b)",
            false,
        );
        assert_eq!(
            feature_tests(&t),
            ["__has_builtin(a)", "__has_cpp_attribute(gnu::b)"]
        );
    }

    #[test]
    fn has_include() {
        use Truth::*;
        assert_eq!(eval("__has_include(\"yes.h\")"), True);
        assert_eq!(
            eval("__has_include(<sys/yes.h>) && !__has_include(\"no.h\")"),
            True
        );
        assert_eq!(eval("__has_include(\"maybe.h\")"), Unknown);
        assert_eq!(eval_with(&["H=\"yes.h\""], "__has_include(H)"), True);
        assert_eq!(eval_with(&["H=<sys/yes.h>"], "__has_include(H)"), True);
    }

    #[test]
    fn ambiguity() {
        let mut t = Table::default();
        t.define_owned(Arc::new(Macro::from_option("A=1").unwrap()), true);
        let e = |s: &str, t: &Table| evaluate(&tokenize(s.as_bytes(), false), t, false, &mut Test);
        assert_eq!(e("A", &t), Truth::Unknown);
        assert_eq!(e("defined A", &t), Truth::Unknown);
        assert_eq!(e("defined B", &t), Truth::False);
    }
}
