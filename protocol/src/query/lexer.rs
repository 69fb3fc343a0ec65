//! Tokens of the query language, each with its line and column (1-based, in characters).

use super::QueryError;
use crate::limits;

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Tok {
    /// An identifier or a keyword, as written.
    Ident(String),
    Number(f64),
    Text(String),
    LParen,
    RParen,
    LBracket,
    RBracket,
    Comma,
    Dot,
    Star,
    Minus,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    End,
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Token {
    pub tok: Tok,
    pub line: u32,
    pub column: u32,
}

impl Tok {
    /// How the token is named in error messages.
    pub fn describe(&self) -> String {
        match self {
            Tok::Ident(s) => format!("'{s}'"),
            Tok::Number(x) => format!("number {x}"),
            Tok::Text(_) => "a text literal".into(),
            Tok::LParen => "'('".into(),
            Tok::RParen => "')'".into(),
            Tok::LBracket => "'['".into(),
            Tok::RBracket => "']'".into(),
            Tok::Comma => "','".into(),
            Tok::Dot => "'.'".into(),
            Tok::Star => "'*'".into(),
            Tok::Minus => "'-'".into(),
            Tok::Eq => "'='".into(),
            Tok::Ne => "'!='".into(),
            Tok::Lt => "'<'".into(),
            Tok::Le => "'<='".into(),
            Tok::Gt => "'>'".into(),
            Tok::Ge => "'>='".into(),
            Tok::End => "the end of the query".into(),
        }
    }
}

struct Cursor<'a> {
    chars: std::iter::Peekable<std::str::Chars<'a>>,
    line: u32,
    column: u32,
}

impl Cursor<'_> {
    fn peek(&mut self) -> Option<char> {
        self.chars.peek().copied()
    }
    fn bump(&mut self) -> Option<char> {
        let c = self.chars.next()?;
        if c == '\n' {
            self.line = self.line.saturating_add(1);
            self.column = 1;
        } else {
            self.column = self.column.saturating_add(1);
        }
        Some(c)
    }
}

/// Splits `text` into tokens, ending with [`Tok::End`]. Whitespace separates tokens; `--`
/// starts a comment that runs to the end of the line.
pub(crate) fn tokenize(text: &str) -> Result<Vec<Token>, QueryError> {
    let mut cur = Cursor {
        chars: text.chars().peekable(),
        line: 1,
        column: 1,
    };
    let mut out = Vec::new();
    loop {
        let (line, column) = (cur.line, cur.column);
        let err = |message: String| QueryError::new(line, column, message);
        let Some(c) = cur.peek() else {
            out.push(Token {
                tok: Tok::End,
                line,
                column,
            });
            return Ok(out);
        };
        let tok = match c {
            c if c.is_whitespace() => {
                cur.bump();
                continue;
            }
            'a'..='z' | 'A'..='Z' | '_' => {
                let mut s = String::new();
                while let Some(c) = cur.peek() {
                    if c.is_ascii_alphanumeric() || c == '_' {
                        s.push(c);
                        cur.bump();
                    } else {
                        break;
                    }
                }
                if s.len() > limits::MAX_QUERY_IDENTIFIER_BYTES {
                    return Err(err(format!(
                        "identifier of {} bytes is over the limit of {}",
                        s.len(),
                        limits::MAX_QUERY_IDENTIFIER_BYTES
                    )));
                }
                Tok::Ident(s)
            }
            '0'..='9' => {
                let mut s = String::new();
                let digits = |cur: &mut Cursor, s: &mut String| {
                    while let Some(c) = cur.peek() {
                        if c.is_ascii_digit() {
                            s.push(c);
                            cur.bump();
                        } else {
                            break;
                        }
                    }
                };
                digits(&mut cur, &mut s);
                if cur.peek() == Some('.') {
                    s.push('.');
                    cur.bump();
                    digits(&mut cur, &mut s);
                }
                if matches!(cur.peek(), Some('e' | 'E')) {
                    s.push('e');
                    cur.bump();
                    if let Some(sign @ ('+' | '-')) = cur.peek() {
                        s.push(sign);
                        cur.bump();
                    }
                    let before = s.len();
                    digits(&mut cur, &mut s);
                    if s.len() == before {
                        return Err(err(format!("malformed number '{s}'")));
                    }
                }
                if matches!(cur.peek(), Some(c) if c.is_alphanumeric() || c == '_') {
                    return Err(err(format!(
                        "malformed number '{s}{}'",
                        cur.peek().unwrap_or_default()
                    )));
                }
                match s.parse::<f64>() {
                    Ok(x) if x.is_finite() => Tok::Number(x),
                    _ => return Err(err(format!("number '{s}' is out of range"))),
                }
            }
            '\'' => {
                cur.bump();
                let mut s = String::new();
                loop {
                    match cur.bump() {
                        None => {
                            return Err(err("text literal is not closed: missing \"'\"".into()))
                        }
                        Some('\'') => {
                            if cur.peek() == Some('\'') {
                                cur.bump();
                                s.push('\'');
                            } else {
                                break;
                            }
                        }
                        Some(c) => s.push(c),
                    }
                    if s.len() > limits::MAX_QUERY_TEXT_BYTES {
                        return Err(err(format!(
                            "text literal is over the limit of {} bytes",
                            limits::MAX_QUERY_TEXT_BYTES
                        )));
                    }
                }
                Tok::Text(s)
            }
            _ => {
                cur.bump();
                match c {
                    '(' => Tok::LParen,
                    ')' => Tok::RParen,
                    '[' => Tok::LBracket,
                    ']' => Tok::RBracket,
                    ',' => Tok::Comma,
                    '.' => Tok::Dot,
                    '*' => Tok::Star,
                    '=' => Tok::Eq,
                    '-' if cur.peek() == Some('-') => {
                        while let Some(c) = cur.bump() {
                            if c == '\n' {
                                break;
                            }
                        }
                        continue;
                    }
                    '-' => Tok::Minus,
                    '!' if cur.peek() == Some('=') => {
                        cur.bump();
                        Tok::Ne
                    }
                    '<' if cur.peek() == Some('=') => {
                        cur.bump();
                        Tok::Le
                    }
                    '<' if cur.peek() == Some('>') => {
                        cur.bump();
                        Tok::Ne
                    }
                    '<' => Tok::Lt,
                    '>' if cur.peek() == Some('=') => {
                        cur.bump();
                        Tok::Ge
                    }
                    '>' => Tok::Gt,
                    '"' => {
                        return Err(err(
                            "unexpected '\"': text literals take single quotes".into()
                        ))
                    }
                    c => return Err(err(format!("unexpected character {c:?}"))),
                }
            }
        };
        out.push(Token { tok, line, column });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(s: &str) -> Vec<Tok> {
        tokenize(s).unwrap().into_iter().map(|t| t.tok).collect()
    }

    #[test]
    fn basics() {
        assert_eq!(
            toks("a<=1.5e3 'it''s' -- c\n!= <> -2"),
            vec![
                Tok::Ident("a".into()),
                Tok::Le,
                Tok::Number(1500.0),
                Tok::Text("it's".into()),
                Tok::Ne,
                Tok::Ne,
                Tok::Minus,
                Tok::Number(2.0),
                Tok::End
            ]
        );
        let t = tokenize("a\n  bc").unwrap();
        assert_eq!((t[1].line, t[1].column), (2, 3));
        assert_eq!((t[2].line, t[2].column), (2, 5));
    }

    #[test]
    fn errors() {
        let e = tokenize("x = 'abc").unwrap_err();
        assert_eq!((e.line, e.column), (1, 5));
        let e = tokenize("x = 1e999").unwrap_err();
        assert_eq!((e.line, e.column), (1, 5));
        let e = tokenize("x\n = 12abc").unwrap_err();
        assert_eq!((e.line, e.column), (2, 4));
        let e = tokenize("x = 1e").unwrap_err();
        assert!(e.message.contains("malformed"));
        let e = tokenize("é").unwrap_err();
        assert_eq!((e.line, e.column), (1, 1));
        assert!(tokenize("x ! y").is_err());
        assert!(tokenize("x = \"a\"").is_err());
    }
}
