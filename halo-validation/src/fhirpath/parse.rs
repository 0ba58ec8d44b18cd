//! FHIRPath lexer and parser (the grammar of FHIRPath N1, without quantities and time literals,
//! which no invariant in scope uses).

/// A parsed FHIRPath expression.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Expr {
    /// A string literal.
    Str(String),
    /// `true` / `false`.
    Bool(bool),
    /// An integer literal.
    Int(i64),
    /// A decimal literal.
    Dec(f64),
    /// A date/time literal (`@2020-01-01`), kept as text.
    DateTime(String),
    /// `{}`.
    EmptySet,
    /// An identifier evaluated against the input (member access, or the resource type).
    Ident(String),
    /// `$this`.
    This,
    /// `%name`.
    Env(String),
    /// `expr.name`.
    Member(Box<Expr>, String),
    /// `expr.name(args)`, or `name(args)` on the input when the target is `None`.
    Call(Option<Box<Expr>>, String, Vec<Expr>),
    /// `expr[index]`.
    Index(Box<Expr>, Box<Expr>),
    /// `-expr`.
    Negate(Box<Expr>),
    /// `left op right`.
    Binary(BinOp, Box<Expr>, Box<Expr>),
    /// `expr is Type` / `expr as Type`.
    TypeOp(bool, Box<Expr>, String),
}

/// A binary operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BinOp {
    Implies,
    Or,
    Xor,
    And,
    In,
    Contains,
    Eq,
    NotEq,
    Equiv,
    NotEquiv,
    Lt,
    Gt,
    Le,
    Ge,
    Union,
    Add,
    Sub,
    Concat,
    Mul,
    Div,
    IntDiv,
    Mod,
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Ident(String),
    /// A backtick-delimited identifier: never a keyword.
    Quoted(String),
    Str(String),
    Num(String),
    DateTime(String),
    Env(String),
    Dollar(String),
    Sym(&'static str),
}

const SYMBOLS: &[&str] = &[
    "!=", "!~", "<=", ">=", ".", ",", "(", ")", "[", "]", "{", "}", "|", "+", "-", "*", "/", "&",
    "=", "~", "<", ">",
];

fn lex(text: &str) -> Result<Vec<Token>, String> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '/' && chars.get(i + 1) == Some(&'/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '\'' || c == '`' {
            let (value, next) = quoted(&chars, i)?;
            tokens.push(if c == '\'' {
                Token::Str(value)
            } else {
                Token::Quoted(value)
            });
            i = next;
        } else if c.is_ascii_digit() {
            let start = i;
            while i < chars.len() && chars[i].is_ascii_digit() {
                i += 1;
            }
            if chars.get(i) == Some(&'.') && chars.get(i + 1).is_some_and(char::is_ascii_digit) {
                i += 1;
                while i < chars.len() && chars[i].is_ascii_digit() {
                    i += 1;
                }
            }
            tokens.push(Token::Num(chars[start..i].iter().collect()));
        } else if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            tokens.push(Token::Ident(chars[start..i].iter().collect()));
        } else if c == '%' || c == '$' {
            i += 1;
            let name = if chars.get(i) == Some(&'`') || chars.get(i) == Some(&'\'') {
                let (value, next) = quoted(&chars, i)?;
                i = next;
                value
            } else {
                let start = i;
                while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                    i += 1;
                }
                chars[start..i].iter().collect()
            };
            tokens.push(if c == '%' {
                Token::Env(name)
            } else {
                Token::Dollar(name)
            });
        } else if c == '@' {
            let start = i + 1;
            i += 1;
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric() || matches!(chars[i], '-' | ':' | '.' | '+'))
            {
                i += 1;
            }
            tokens.push(Token::DateTime(chars[start..i].iter().collect()));
        } else {
            let rest: String = chars[i..chars.len().min(i + 2)].iter().collect();
            let symbol = SYMBOLS
                .iter()
                .find(|s| rest.starts_with(**s))
                .ok_or_else(|| format!("unexpected character `{c}`"))?;
            tokens.push(Token::Sym(symbol));
            i += symbol.len();
        }
    }
    Ok(tokens)
}

fn quoted(chars: &[char], start: usize) -> Result<(String, usize), String> {
    let quote = chars[start];
    let mut value = String::new();
    let mut i = start + 1;
    while i < chars.len() {
        match chars[i] {
            '\\' => {
                let escaped = chars.get(i + 1).ok_or("unterminated escape")?;
                value.push(match escaped {
                    'n' => '\n',
                    't' => '\t',
                    'r' => '\r',
                    other => *other,
                });
                i += 2;
            }
            c if c == quote => return Ok((value, i + 1)),
            c => {
                value.push(c);
                i += 1;
            }
        }
    }
    Err("unterminated string".into())
}

/// How deeply an expression may nest (parentheses, arguments, signs, and each `.member`, index
/// and operator wrapped around what came before). The parser, the evaluator and dropping the tree
/// all recurse that deep; the invariants of R4 and CA Baseline stay far below it.
const MAX_DEPTH: usize = 128;

/// Parses a FHIRPath expression.
pub(crate) fn parse(text: &str) -> Result<Expr, String> {
    let tokens = lex(text)?;
    let mut parser = Parser {
        tokens,
        pos: 0,
        depth: 0,
    };
    let expr = parser.expression(0)?;
    if parser.pos != parser.tokens.len() {
        return Err(format!(
            "unexpected {:?} after the expression",
            parser.tokens[parser.pos]
        ));
    }
    Ok(expr)
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
    /// The nesting of the tree being built, bounded by [`MAX_DEPTH`].
    depth: usize,
}

impl Parser {
    /// One level deeper; an error past [`MAX_DEPTH`], before a deeper tree can exist.
    fn deeper(&mut self) -> Result<(), String> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(format!(
                "the expression nests more than {MAX_DEPTH} levels deep"
            ));
        }
        Ok(())
    }

    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn next(&mut self) -> Option<Token> {
        let token = self.tokens.get(self.pos).cloned();
        self.pos += 1;
        token
    }

    fn peek_is(&self, symbol: &str) -> bool {
        matches!(self.peek(), Some(Token::Sym(s)) if *s == symbol)
    }

    fn eat(&mut self, symbol: &str) -> bool {
        if matches!(self.peek(), Some(Token::Sym(s)) if *s == symbol) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, symbol: &str) -> Result<(), String> {
        if self.eat(symbol) {
            Ok(())
        } else {
            Err(format!("expected `{symbol}`"))
        }
    }

    /// The binary operator at the cursor and its binding power.
    fn operator(&self) -> Option<(BinOp, u8)> {
        let op = match self.peek()? {
            Token::Ident(word) => match word.as_str() {
                "implies" => (BinOp::Implies, 1),
                "or" => (BinOp::Or, 2),
                "xor" => (BinOp::Xor, 2),
                "and" => (BinOp::And, 3),
                "in" => (BinOp::In, 4),
                "contains" => (BinOp::Contains, 4),
                "div" => (BinOp::IntDiv, 10),
                "mod" => (BinOp::Mod, 10),
                _ => return None,
            },
            Token::Sym(symbol) => match *symbol {
                "=" => (BinOp::Eq, 5),
                "!=" => (BinOp::NotEq, 5),
                "~" => (BinOp::Equiv, 5),
                "!~" => (BinOp::NotEquiv, 5),
                "<" => (BinOp::Lt, 6),
                ">" => (BinOp::Gt, 6),
                "<=" => (BinOp::Le, 6),
                ">=" => (BinOp::Ge, 6),
                "|" => (BinOp::Union, 7),
                "+" => (BinOp::Add, 9),
                "-" => (BinOp::Sub, 9),
                "&" => (BinOp::Concat, 9),
                "*" => (BinOp::Mul, 10),
                "/" => (BinOp::Div, 10),
                _ => return None,
            },
            _ => return None,
        };
        Some(op)
    }

    fn expression(&mut self, min_power: u8) -> Result<Expr, String> {
        let depth = self.depth;
        let expr = self.expression_at(min_power);
        self.depth = depth;
        expr
    }

    fn expression_at(&mut self, min_power: u8) -> Result<Expr, String> {
        self.deeper()?;
        let mut left = self.unary()?;
        loop {
            // `is` / `as` bind at power 8 and take a type name, not an expression.
            if let Some(Token::Ident(word)) = self.peek()
                && (word == "is" || word == "as")
                && min_power < 8
            {
                let is = word == "is";
                self.pos += 1;
                self.deeper()?;
                let name = self.type_name()?;
                left = Expr::TypeOp(is, Box::new(left), name);
                continue;
            }
            let Some((op, power)) = self.operator() else {
                break;
            };
            if power <= min_power {
                break;
            }
            self.pos += 1;
            self.deeper()?;
            let right = self.expression(power)?;
            left = Expr::Binary(op, Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn type_name(&mut self) -> Result<String, String> {
        let mut name = match self.next() {
            Some(Token::Ident(name) | Token::Quoted(name)) => name,
            other => return Err(format!("expected a type name, found {other:?}")),
        };
        while self.eat(".") {
            match self.next() {
                Some(Token::Ident(part) | Token::Quoted(part)) => {
                    name.push('.');
                    name.push_str(&part);
                }
                other => return Err(format!("expected a type name, found {other:?}")),
            }
        }
        Ok(name)
    }

    fn unary(&mut self) -> Result<Expr, String> {
        let depth = self.depth;
        let expr = self.unary_at();
        self.depth = depth;
        expr
    }

    fn unary_at(&mut self) -> Result<Expr, String> {
        self.deeper()?;
        if self.eat("-") {
            return Ok(Expr::Negate(Box::new(self.unary()?)));
        }
        if self.eat("+") {
            return self.unary();
        }
        let mut expr = self.primary()?;
        loop {
            if self.peek_is(".") || self.peek_is("[") {
                self.deeper()?;
            }
            if self.eat(".") {
                let name = match self.next() {
                    Some(Token::Ident(name) | Token::Quoted(name)) => name,
                    other => return Err(format!("expected a name after `.`, found {other:?}")),
                };
                if self.eat("(") {
                    let args = self.arguments()?;
                    expr = Expr::Call(Some(Box::new(expr)), name, args);
                } else {
                    expr = Expr::Member(Box::new(expr), name);
                }
            } else if self.eat("[") {
                let index = self.expression(0)?;
                self.expect("]")?;
                expr = Expr::Index(Box::new(expr), Box::new(index));
            } else {
                return Ok(expr);
            }
        }
    }

    fn arguments(&mut self) -> Result<Vec<Expr>, String> {
        let mut args = Vec::new();
        if self.eat(")") {
            return Ok(args);
        }
        loop {
            args.push(self.expression(0)?);
            if self.eat(")") {
                return Ok(args);
            }
            self.expect(",")?;
        }
    }

    fn primary(&mut self) -> Result<Expr, String> {
        match self.next() {
            Some(Token::Str(value)) => Ok(Expr::Str(value)),
            Some(Token::Num(text)) => {
                if text.contains('.') {
                    text.parse()
                        .map(Expr::Dec)
                        .map_err(|_| format!("bad number {text}"))
                } else {
                    text.parse()
                        .map(Expr::Int)
                        .map_err(|_| format!("bad number {text}"))
                }
            }
            Some(Token::DateTime(text)) => Ok(Expr::DateTime(text)),
            Some(Token::Env(name)) => Ok(Expr::Env(name)),
            Some(Token::Dollar(name)) => match name.as_str() {
                "this" => Ok(Expr::This),
                other => Err(format!("`${other}` is not supported")),
            },
            Some(Token::Quoted(name)) => Ok(Expr::Ident(name)),
            Some(Token::Ident(name)) => match name.as_str() {
                "true" => Ok(Expr::Bool(true)),
                "false" => Ok(Expr::Bool(false)),
                _ if self.eat("(") => Ok(Expr::Call(None, name, self.arguments()?)),
                _ => Ok(Expr::Ident(name)),
            },
            Some(Token::Sym("(")) => {
                let expr = self.expression(0)?;
                self.expect(")")?;
                Ok(expr)
            }
            Some(Token::Sym("{")) => {
                self.expect("}")?;
                Ok(Expr::EmptySet)
            }
            other => Err(format!("unexpected {other:?}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_precedence_of_logical_operators() {
        let expr = parse("a.exists() implies b or c and d").unwrap();
        let Expr::Binary(BinOp::Implies, _, right) = expr else {
            panic!("implies binds loosest")
        };
        assert!(matches!(*right, Expr::Binary(BinOp::Or, _, _)));
    }

    #[test]
    fn parses_every_invariant_shape_in_scope() {
        for text in [
            "reference.startsWith('#').not() or (reference.substring(1).trace('url') in %rootResource.contained.id.trace('ids'))",
            "text.`div`.exists()",
            "offset.empty() or (when.exists() and when.select($this in ('C' | 'CM' | 'CD' | 'CV')).allFalse())",
            "type = 'document' implies entry.first().resource.is(Composition)",
            "($this as dateTime).toString().length() >= 8",
            "(type = 'history') or entry.where(fullUrl.exists()).select(fullUrl&resource.meta.versionId).isDistinct()",
            "fullUrl.contains('/_history/').not()",
        ] {
            assert!(parse(text).is_ok(), "{text}");
        }
    }

    // REQ: HARD-02
    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        // Each of these overflowed the stack (found by the `fhirpath` fuzz target).
        for text in [
            format!("{}1{}", "(".repeat(50_000), ")".repeat(50_000)),
            format!("a{}", ".a".repeat(100_000)),
            format!("{}1", "-".repeat(100_000)),
            format!("a{}", "[0]".repeat(100_000)),
            format!("1{}", " + 1".repeat(100_000)),
            format!("f({}1{})", "f(".repeat(50_000), ")".repeat(50_000)),
            format!("a{}", " is X".repeat(100_000)),
        ] {
            let Err(why) = parse(&text) else {
                panic!("{} parsed", text.chars().take(20).collect::<String>());
            };
            assert!(why.contains("nests more than"), "{why}");
        }
        let fine = format!("a{}", ".a".repeat(40));
        assert!(parse(&fine).is_ok());
    }

    #[test]
    fn rejects_malformed_text() {
        assert!(parse("a.(").is_err());
        assert!(parse("'open").is_err());
        assert!(parse("a b").is_err());
    }
}
