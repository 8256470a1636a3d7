//! The daemon's check of directives-only text (see `debuginfo`) before gcc compiles it:
//! gcc obeys every directive in a `.i` compiled with `-fdirectives-only`, `#include`
//! included, so only the directives that `gcc -E -fdirectives-only` itself writes may
//! stand where a directive would be obeyed.
//!
//! This module only scans bytes: receiving the text and refusing the job belong to the
//! daemon, and what the client sends to `cmdline`.

/// The directives that `gcc -E -fdirectives-only` writes (line markers aside).
const WRITTEN_DIRECTIVES: &[&str] = &[
    "define", "undef", "pragma", "ident", "sccs", "line", "assert", "unassert",
];

#[derive(Clone, Copy, PartialEq, Eq)]
enum Lex {
    Code,
    LineComment,
    BlockComment,
    Quoted(u8),
}

/// Checks directives-only text before gcc obeys its directives. Where our scan says a
/// directive stands, it must be one that gcc writes in such text; `#include` and the like
/// are refused (the offending line is returned). Where a line starts with `#` but our scan
/// says it is inside a comment, a string or a continued line, the `#` is blanked out: that
/// changes nothing if the scan is right, and defeats a text crafted to make it wrong.
pub fn check_directives(text: &mut [u8]) -> Result<(), String> {
    let mut scan = Scan {
        text,
        state: Lex::Code,
        fresh: true,
        line_start: true,
        i: 0,
    };
    while scan.i < scan.text.len() {
        if scan.line_start {
            scan.line_start = false;
            scan.blank_hidden_directive();
        }
        if scan.skip_plain_run() || scan.skip_splice() {
            continue;
        }
        let c = scan.text[scan.i];
        match scan.state {
            Lex::Code => {
                if scan.directive(c)? {
                    continue;
                }
            }
            Lex::LineComment => scan.in_line_comment(c),
            Lex::BlockComment => scan.in_block_comment(c),
            Lex::Quoted(q) => scan.in_quotes(c, q),
        }
        if scan.text.get(scan.i) == Some(&b'\n') {
            scan.line_start = true;
        }
        scan.i += 1;
    }
    Ok(())
}

/// Where [`check_directives`] stands in the text.
struct Scan<'a> {
    text: &'a mut [u8],
    state: Lex,
    /// No token yet on this logical line: a `#` here starts a directive.
    fresh: bool,
    /// `i` is the first byte of a physical line.
    line_start: bool,
    i: usize,
}

impl Scan<'_> {
    /// At the start of a physical line: blanks out a directive sign that gcc might take
    /// for a directive but our scan does not (inside a comment, a string or a continued
    /// line).
    fn blank_hidden_directive(&mut self) {
        let i = self.i;
        let first = self.text[i..]
            .iter()
            .position(|&c| !is_blank(c))
            .map(|n| i + n);
        if let Some(at) = first {
            if directive_sign(&self.text[at..]) > 0 && !(self.state == Lex::Code && self.fresh) {
                self.text[at] = b' ';
            }
        }
    }

    /// Skips a run of bytes that change nothing but `fresh`, in a tight loop (a kernel
    /// source's 4 MB of directives-only text took 15 ms byte by byte). Whether it did.
    fn skip_plain_run(&mut self) -> bool {
        let plain = match self.state {
            Lex::Code => &CODE_PLAIN,
            Lex::LineComment => &LINE_COMMENT_PLAIN,
            Lex::BlockComment => &BLOCK_COMMENT_PLAIN,
            Lex::Quoted(_) => &QUOTED_PLAIN,
        };
        let i = self.i;
        let run = self.text[i..]
            .iter()
            .take_while(|&&c| plain[c as usize])
            .count();
        if run == 0 {
            return false;
        }
        if self.state == Lex::Code && self.text[i..i + run].iter().any(|&c| !is_blank(c)) {
            self.fresh = false;
        }
        self.i += run;
        true
    }

    /// Skips a backslash, blanks and a newline, which join two lines as gcc splices them.
    /// Whether it did.
    fn skip_splice(&mut self) -> bool {
        let i = self.i;
        if self.text[i] != b'\\' {
            return false;
        }
        let blanks = self.text[i + 1..]
            .iter()
            .take_while(|&&c| matches!(c, b' ' | b'\t' | b'\r'))
            .count();
        if self.text.get(i + 1 + blanks) != Some(&b'\n') {
            return false;
        }
        self.i += blanks + 2;
        self.line_start = true;
        true
    }

    /// Byte `c` of code. Checks a directive that starts here and steps over its sign
    /// (returns true); otherwise follows `c` into comments and quotes.
    fn directive(&mut self, c: u8) -> Result<bool, String> {
        let i = self.i;
        let sign = directive_sign(&self.text[i..]);
        if sign > 0 && self.fresh {
            check_directive(self.text, i + sign)?;
            self.fresh = false;
            self.i += sign;
            return Ok(true);
        }
        let next = self.text.get(i + 1).copied();
        match c {
            b'\n' => self.fresh = true,
            _ if is_blank(c) => {}
            b'/' if next == Some(b'/') => {
                self.state = Lex::LineComment;
                self.i += 1;
            }
            b'/' if next == Some(b'*') => {
                self.state = Lex::BlockComment;
                self.i += 1;
            }
            b'"' | b'\'' => {
                self.state = Lex::Quoted(c);
                self.fresh = false;
            }
            _ => self.fresh = false,
        }
        Ok(false)
    }

    fn in_line_comment(&mut self, c: u8) {
        if c == b'\n' {
            self.state = Lex::Code;
            self.fresh = true;
        }
    }

    fn in_block_comment(&mut self, c: u8) {
        if c == b'*' && self.text.get(self.i + 1) == Some(&b'/') {
            self.state = Lex::Code;
            self.i += 1;
        } else if c == b'\n' {
            // Where a comment ends, a directive may follow: count it as a new line.
            self.fresh = true;
        }
    }

    fn in_quotes(&mut self, c: u8, quote: u8) {
        if c == b'\\' {
            self.i += 1;
        } else if c == quote {
            self.state = Lex::Code;
        } else if c == b'\n' {
            self.state = Lex::Code;
            self.fresh = true;
        }
    }
}

/// Bytes that never end a run in each state of [`check_directives`]: not a line break, a
/// backslash, nor what can open or close a comment, a quote or a directive.
const CODE_PLAIN: [bool; 256] = plain_except(b"\n\\/\"'#%?");
const LINE_COMMENT_PLAIN: [bool; 256] = plain_except(b"\n\\");
const BLOCK_COMMENT_PLAIN: [bool; 256] = plain_except(b"\n\\*");
const QUOTED_PLAIN: [bool; 256] = plain_except(b"\n\\\"'");

const fn plain_except(stops: &[u8]) -> [bool; 256] {
    let mut table = [true; 256];
    let mut i = 0;
    while i < stops.len() {
        table[stops[i] as usize] = false;
        i += 1;
    }
    table
}

fn is_blank(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\x0b' | b'\x0c' | b'\r')
}

/// The length of a directive's introducer at the start of `s`: `#`, `%:` or `??=`.
fn directive_sign(s: &[u8]) -> usize {
    if s.starts_with(b"#") {
        1
    } else if s.starts_with(b"%:") {
        2
    } else if s.starts_with(b"??=") {
        3
    } else {
        0
    }
}

/// Checks the directive whose name starts after blanks at `text[at..]`.
fn check_directive(text: &[u8], at: usize) -> Result<(), String> {
    let rest = &text[at..];
    let line = &rest[..rest.iter().position(|&c| c == b'\n').unwrap_or(rest.len())];
    let body = &line[line
        .iter()
        .position(|c| !matches!(c, b' ' | b'\t'))
        .unwrap_or(line.len())..];
    let name_len = body
        .iter()
        .position(|c| !(c.is_ascii_alphanumeric() || *c == b'_'))
        .unwrap_or(body.len());
    let (name, after) = body.split_at(name_len);
    let ok = if name.is_empty() {
        // The null directive.
        after.iter().all(|c| c.is_ascii_whitespace())
    } else if name[0].is_ascii_digit() {
        true
    } else {
        // A name continued on the next line is not one we know.
        !after.starts_with(b"\\") && WRITTEN_DIRECTIVES.iter().any(|d| d.as_bytes() == name)
    };
    if ok {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&line[..line.len().min(80)]).into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checked(text: &str) -> Result<String, String> {
        let mut bytes = text.as_bytes().to_vec();
        check_directives(&mut bytes).map(|()| String::from_utf8(bytes).unwrap())
    }

    #[test]
    fn directives_gcc_writes_pass_unchanged() {
        let text = "# 0 \"t.c\"\n# 1 \"/tmp//\"\n#define X(a,b) ((a)+(b))\n#undef X\n\
                    #pragma GCC diagnostic push\n  #ident \"x\"\n#\nint x = X(1,2);\n\
                    /*\n#include \"old.h\"\n*/\n";
        let out = checked(text).unwrap();
        // The commented-out include is blanked, nothing else.
        assert_eq!(
            out,
            text.replace("\n#include \"old.h\"", "\n include \"old.h\"")
        );
    }

    #[test]
    fn obeyed_includes_are_refused() {
        for bad in [
            "#include \"/etc/passwd\"\n",
            "int a;\n  #  include_next <x>\n",
            "%:include \"x\"\n",
            "??=include \"x\"\n",
            "/* c */ #include \"x\"\n",
            "/* a\n b */ #include \"x\"\n",
            "#inc\\\nlude \"x\"\n",
            "#if 1\n#endif\n",
            "x;\n#embed \"x\"\n",
            "#import \"x\"\n",
            "# /**/ include \"x\"\n",
        ] {
            assert!(checked(bad).is_err(), "{bad:?} passed");
        }
    }

    #[test]
    fn hidden_directives_are_blanked() {
        // A raw string makes our scan think a comment opens; gcc would obey the include.
        let text = "auto s = R\"x( \" /* )x\";\n#include \"/etc/passwd\"\n// */\n";
        let out = checked(text).unwrap();
        assert!(out.contains("\n include"));
        // Continued lines and strings.
        let out = checked("// note \\\n#include \"x\"\nchar *s = \"a\\\n#b\";\n").unwrap();
        assert!(!out.contains("#include") && out.contains(" b\""));
    }
}
