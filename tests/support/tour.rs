//! Read the README's tour: the fenced blocks whose info string says `tour`, as commands
//! and the output the README shows for each, and check real output against it.
//!
//! A tour block is a transcript: a line that starts with `$ ` is a shell command, one
//! that starts with `nest> ` is a console line, and the lines after it, up to the next
//! command, are its output. In output, `<name>` stands for one word (no spaces) the
//! README cannot know, such as a key or a hash: the first time it is seen it binds the
//! name, after that it must be the same word, and a command that names it gets the word
//! substituted. `…` stands for any text, and a command with no output lines shown is not
//! checked beyond its success.

use std::collections::BTreeMap;

/// Who runs a tour command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Prompt {
    /// `$ `: a shell.
    Shell,
    /// `nest> `: the console.
    Console,
}

/// One command of the tour and the output the README shows for it.
#[derive(Clone, Debug)]
pub struct Step {
    /// Shell or console.
    pub prompt: Prompt,
    /// The command as the README writes it, without its prompt.
    pub command: String,
    /// The lines the README shows it printing (none: not shown, not checked).
    pub output: Vec<String>,
}

/// The steps of every tour block of `readme`, in order.
pub fn steps(readme: &str) -> Vec<Step> {
    let mut steps: Vec<Step> = Vec::new();
    let mut in_tour = None;
    for line in readme.lines() {
        if let Some(info) = line.strip_prefix("```") {
            in_tour = match in_tour {
                None => Some(info.split_whitespace().any(|word| word == "tour")),
                Some(_) => None,
            };
            continue;
        }
        if in_tour != Some(true) {
            continue;
        }
        if let Some(command) = line.strip_prefix("$ ") {
            steps.push(Step { prompt: Prompt::Shell, command: command.to_string(), output: Vec::new() });
        } else if let Some(command) = line.strip_prefix("nest> ") {
            steps.push(Step { prompt: Prompt::Console, command: command.to_string(), output: Vec::new() });
        } else {
            let step = steps.last_mut().unwrap_or_else(|| panic!("tour output before any command: {line:?}"));
            step.output.push(line.to_string());
        }
    }
    steps
}

/// The words the placeholders stand for, as the tour goes.
#[derive(Clone, Debug, Default)]
pub struct Bindings {
    words: BTreeMap<String, String>,
}

impl Bindings {
    /// Binds `name` (without its angle brackets) before the tour shows it.
    pub fn bind(&mut self, name: &str, word: &str) {
        self.words.insert(name.to_string(), word.to_string());
    }

    /// The word bound to `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.words.get(name).map(String::as_str)
    }

    /// `command` with each bound `<name>` replaced; an unbound one is an error.
    pub fn substitute(&self, command: &str) -> Result<String, String> {
        let mut text = String::new();
        for piece in pieces(command) {
            match piece {
                Piece::Literal(literal) => text.push_str(literal),
                Piece::Anything => text.push('…'),
                Piece::Placeholder(name) => match self.get(name) {
                    Some(word) => text.push_str(word),
                    None => return Err(format!("`{command}` names <{name}> before the tour shows it")),
                },
            }
        }
        Ok(text)
    }

    /// Checks `actual` output lines against the README's `expected` lines; binds the
    /// placeholders they show. On a mismatch, says which line differs and leaves the
    /// bindings as they were.
    pub fn check(&mut self, expected: &[String], actual: &[String]) -> Result<(), String> {
        if expected.len() != actual.len() {
            return Err(format!("{} lines where the README shows {}", actual.len(), expected.len()));
        }
        let mut words = self.words.clone();
        for (expected, actual) in expected.iter().zip(actual) {
            if !matches(&pieces(expected), actual, &mut words) {
                return Err(format!("{actual:?} is not what the README shows, {expected:?}"));
            }
        }
        self.words = words;
        Ok(())
    }
}

#[derive(Clone, Copy, Debug)]
enum Piece<'a> {
    Literal(&'a str),
    Placeholder(&'a str),
    Anything,
}

fn pieces(template: &str) -> Vec<Piece<'_>> {
    let mut pieces = Vec::new();
    let mut rest = template;
    while !rest.is_empty() {
        let next = rest.find(['<', '…']).unwrap_or(rest.len());
        if next > 0 {
            pieces.push(Piece::Literal(&rest[..next]));
            rest = &rest[next..];
            continue;
        }
        if let Some(after) = rest.strip_prefix('…') {
            pieces.push(Piece::Anything);
            rest = after;
        } else if let Some((name, after)) = rest[1..].split_once('>').filter(|(name, _)| !name.is_empty()) {
            pieces.push(Piece::Placeholder(name));
            rest = after;
        } else {
            pieces.push(Piece::Literal("<"));
            rest = &rest[1..];
        }
    }
    pieces
}

/// True when `text` is `pieces` whole; binds new placeholders in `words`.
fn matches(pieces: &[Piece<'_>], text: &str, words: &mut BTreeMap<String, String>) -> bool {
    let Some((first, rest)) = pieces.split_first() else { return text.is_empty() };
    match first {
        Piece::Literal(literal) => text.strip_prefix(literal).is_some_and(|after| matches(rest, after, words)),
        Piece::Anything => text.char_indices().map(|(at, _)| at).chain([text.len()]).any(|at| {
            let mut tried = words.clone();
            matches(rest, &text[at..], &mut tried) && {
                *words = tried;
                true
            }
        }),
        Piece::Placeholder(name) => {
            if let Some(word) = words.get(*name).cloned() {
                return text.strip_prefix(word.as_str()).is_some_and(|after| matches(rest, after, words));
            }
            let word_end = text.find(char::is_whitespace).unwrap_or(text.len());
            (1..=word_end).filter(|end| text.is_char_boundary(*end)).any(|end| {
                let mut tried = words.clone();
                tried.insert(name.to_string(), text[..end].to_string());
                matches(rest, &text[end..], &mut tried) && {
                    *words = tried;
                    true
                }
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &str) -> Vec<String> {
        text.lines().map(str::to_string).collect()
    }

    #[test]
    fn tour_blocks_are_read_as_commands_and_their_output() {
        let readme = "```sh\n$ not a tour\n```\n```console tour\n$ nestd keygen\n<key>\n$ curl x\n```\n\
                      ```\nnest> no\n```\n```text tour\nnest> 1 + 1\n2\n```\n";
        let steps = steps(readme);
        let shown: Vec<(Prompt, &str, usize)> =
            steps.iter().map(|s| (s.prompt, s.command.as_str(), s.output.len())).collect();
        assert_eq!(
            shown,
            [(Prompt::Shell, "nestd keygen", 1), (Prompt::Shell, "curl x", 0), (Prompt::Console, "1 + 1", 1)]
        );
    }

    #[test]
    fn placeholders_bind_once_and_must_then_repeat() {
        let mut bindings = Bindings::default();
        let expected = lines("accepted <hash>: 5000 from <faucet> to <bob>, fee 1000");
        bindings.check(&expected, &lines("accepted ab12: 5000 from f00 to b0b, fee 1000")).unwrap();
        assert_eq!((bindings.get("hash"), bindings.get("bob")), (Some("ab12"), Some("b0b")));
        assert_eq!(bindings.substitute("curl /accounts/<bob>").unwrap(), "curl /accounts/b0b");
        assert!(bindings.substitute("curl /accounts/<carol>").is_err());
        let again = lines("<bob> has 5000");
        assert!(bindings.check(&again, &lines("c0c has 5000")).is_err(), "another word than the bound one");
        assert!(bindings.check(&again, &lines("b0b has 4000")).is_err(), "another literal");
        assert!(bindings.check(&again, &lines("b0b has 5000\nmore")).is_err(), "another line count");
        bindings.check(&again, &lines("b0b has 5000")).unwrap();
    }

    #[test]
    fn an_ellipsis_stands_for_any_text_and_a_placeholder_for_one_word() {
        let mut bindings = Bindings::default();
        let expected = lines(r#"{"uid":"<uid>",…"last_counter":1,…}"#);
        bindings.check(&expected, &lines(r#"{"uid":"u1","key":"k","last_counter":1,"x":[]}"#)).unwrap();
        assert_eq!(bindings.get("uid"), Some("u1"));
        assert!(bindings.check(&expected, &lines(r#"{"uid":"u1","last_counter":0,"x":1}"#)).is_err());
        assert!(Bindings::default().check(&lines("<word>"), &lines("two words")).is_err());
    }
}
