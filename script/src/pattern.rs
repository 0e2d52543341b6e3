//! Match Lua 5.4 string patterns on bytes, every step charged to a meter.
//!
//! A port of the matcher in Lua 5.4's `lstrlib.c` (`match`, `max_expand`, `min_expand`,
//! captures, `%b`, `%f`, back-references) with the same results and error messages. The C
//! matcher cannot be interrupted: a pattern like `.-.-.-b` backtracks for hours on a long
//! subject. Here every call of [`Matcher::match_at`], every iteration of the expansion
//! loops, every byte scanned by `%b` and every 64 bytes compared by a back-reference is
//! charged to a [`Meter`], which can stop the match.

use std::ops::Range;

/// Captures one pattern may open (`LUA_MAXCAPTURES`).
pub(super) const CAPTURES_MAX: usize = 32;
/// Nested calls of the matcher one match may make (`MAXCCALLS`).
pub(super) const MATCH_DEPTH_MAX: u32 = 200;
/// Bytes a back-reference compares per charged step.
const BACKREFERENCE_BYTES_PER_STEP: usize = 64;

const ESCAPE: u8 = b'%';
const SPECIALS: &[u8] = b"^$*+?.([%-";

/// Why a match did not finish.
#[derive(Debug)]
pub(super) enum PatternError {
    /// A Lua error with this message, as `luaL_error` would raise it (bad pattern, a step limit).
    Raise(String),
    /// An error from the host (the budget or cancel hook, memory): passed on.
    Host(mlua::Error),
    /// A bad argument, raised as `luaL_argerror` would (it names the function as called).
    Argument { index: usize, message: String },
    /// An error value raised by a replacement function or `__index`, raised again unchanged.
    Rethrow(mlua::Value),
}

impl PatternError {
    fn raise(message: impl Into<String>) -> Self {
        Self::Raise(message.into())
    }
}

/// Pays for matching steps; an error stops the match.
pub(super) trait Meter {
    /// Charges `steps` steps.
    fn charge(&mut self, steps: u64) -> Result<(), PatternError>;
}

/// One capture's value: a range of the subject, or a position (1-based).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Capture {
    Bytes(Range<usize>),
    Position(usize),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CaptureLength {
    Unfinished,
    Position,
    Bytes(usize),
}

#[derive(Clone, Copy, Debug)]
struct CaptureState {
    start: usize,
    length: CaptureLength,
}

type MatchResult = Result<Option<usize>, PatternError>;

/// The matcher state for one subject and one pattern (`MatchState`).
pub(super) struct Matcher<'a, M: Meter> {
    subject: &'a [u8],
    pattern: &'a [u8],
    depth_left: u32,
    level: usize,
    captures: [CaptureState; CAPTURES_MAX],
    meter: &'a mut M,
}

impl<'a, M: Meter> Matcher<'a, M> {
    /// A matcher of `pattern` (without a leading anchor) over `subject`.
    pub(super) fn new(subject: &'a [u8], pattern: &'a [u8], meter: &'a mut M) -> Self {
        let empty = CaptureState { start: 0, length: CaptureLength::Unfinished };
        Self { subject, pattern, depth_left: MATCH_DEPTH_MAX, level: 0, captures: [empty; CAPTURES_MAX], meter }
    }

    /// Prepares a new match attempt (`reprepstate`).
    pub(super) fn reset(&mut self) {
        self.depth_left = MATCH_DEPTH_MAX;
        self.level = 0;
    }

    /// Byte `index` of the pattern; 0 past its end, like C's terminating NUL.
    fn pattern_at(&self, index: usize) -> u8 {
        self.pattern.get(index).copied().unwrap_or(0)
    }

    /// Byte `index` of the subject; 0 past its end, like C's terminating NUL.
    fn subject_at(&self, index: usize) -> u8 {
        self.subject.get(index).copied().unwrap_or(0)
    }

    /// Matches the whole pattern at subject position `start`; returns where the match ends.
    pub(super) fn match_at(&mut self, start: usize) -> MatchResult {
        self.match_from(start, 0)
    }

    fn match_from(&mut self, subject_index: usize, pattern_index: usize) -> MatchResult {
        self.meter.charge(1)?;
        if self.depth_left == 0 {
            return Err(PatternError::raise("pattern too complex"));
        }
        self.depth_left -= 1;
        let result = self.match_items(subject_index, pattern_index);
        self.depth_left += 1;
        result
    }

    /// The body of C's `match`; its `goto init` tail calls are this loop.
    fn match_items(&mut self, mut s: usize, mut p: usize) -> MatchResult {
        loop {
            if p == self.pattern.len() {
                return Ok(Some(s));
            }
            match self.pattern_at(p) {
                b'(' if self.pattern_at(p + 1) == b')' => {
                    return self.start_capture(s, p + 2, CaptureLength::Position);
                }
                b'(' => return self.start_capture(s, p + 1, CaptureLength::Unfinished),
                b')' => return self.end_capture(s, p + 1),
                b'$' if p + 1 == self.pattern.len() => return Ok((s == self.subject.len()).then_some(s)),
                ESCAPE if self.pattern_at(p + 1) == b'b' => match self.match_balance(s, p + 2)? {
                    Some(end) => (s, p) = (end, p + 4),
                    None => return Ok(None),
                },
                ESCAPE if self.pattern_at(p + 1) == b'f' => {
                    p += 2;
                    if self.pattern_at(p) != b'[' {
                        return Err(PatternError::raise("missing '[' after '%f' in pattern"));
                    }
                    let class_end = self.class_end(p)?;
                    let previous = if s == 0 { 0 } else { self.subject[s - 1] };
                    let current = self.subject_at(s);
                    if self.matches_set(previous, p, class_end - 1) || !self.matches_set(current, p, class_end - 1) {
                        return Ok(None);
                    }
                    p = class_end;
                }
                ESCAPE if self.pattern_at(p + 1).is_ascii_digit() => {
                    match self.match_backreference(s, self.pattern_at(p + 1))? {
                        Some(end) => (s, p) = (end, p + 2),
                        None => return Ok(None),
                    }
                }
                _ => match self.match_item(s, p)? {
                    Item::Done(result) => return Ok(result),
                    Item::Continue(next_s, next_p) => (s, p) = (next_s, next_p),
                },
            }
        }
    }

    /// A single character class with an optional suffix `*`, `+`, `-` or `?` (C's `dflt`).
    fn match_item(&mut self, s: usize, p: usize) -> Result<Item, PatternError> {
        let class_end = self.class_end(p)?;
        let suffix = self.pattern_at(class_end);
        if !self.single_match(s, p, class_end) {
            return Ok(match suffix {
                b'*' | b'?' | b'-' => Item::Continue(s, class_end + 1),
                _ => Item::Done(None),
            });
        }
        Ok(match suffix {
            b'?' => match self.match_from(s + 1, class_end + 1)? {
                Some(end) => Item::Done(Some(end)),
                None => Item::Continue(s, class_end + 1),
            },
            b'+' => Item::Done(self.max_expand(s + 1, p, class_end)?),
            b'*' => Item::Done(self.max_expand(s, p, class_end)?),
            b'-' => Item::Done(self.min_expand(s, p, class_end)?),
            _ => Item::Continue(s + 1, class_end),
        })
    }

    fn max_expand(&mut self, s: usize, p: usize, class_end: usize) -> MatchResult {
        let mut count = 0;
        while self.single_match(s + count, p, class_end) {
            self.meter.charge(1)?;
            count += 1;
        }
        loop {
            self.meter.charge(1)?;
            if let Some(end) = self.match_from(s + count, class_end + 1)? {
                return Ok(Some(end));
            }
            if count == 0 {
                return Ok(None);
            }
            count -= 1;
        }
    }

    fn min_expand(&mut self, mut s: usize, p: usize, class_end: usize) -> MatchResult {
        loop {
            self.meter.charge(1)?;
            if let Some(end) = self.match_from(s, class_end + 1)? {
                return Ok(Some(end));
            }
            if !self.single_match(s, p, class_end) {
                return Ok(None);
            }
            s += 1;
        }
    }

    fn start_capture(&mut self, s: usize, p: usize, length: CaptureLength) -> MatchResult {
        if self.level >= CAPTURES_MAX {
            return Err(PatternError::raise("too many captures"));
        }
        self.captures[self.level] = CaptureState { start: s, length };
        self.level += 1;
        let result = self.match_from(s, p)?;
        if result.is_none() {
            self.level -= 1;
        }
        Ok(result)
    }

    fn end_capture(&mut self, s: usize, p: usize) -> MatchResult {
        let level = self.capture_to_close()?;
        self.captures[level].length = CaptureLength::Bytes(s - self.captures[level].start);
        let result = self.match_from(s, p)?;
        if result.is_none() {
            self.captures[level].length = CaptureLength::Unfinished;
        }
        Ok(result)
    }

    fn capture_to_close(&self) -> Result<usize, PatternError> {
        (0..self.level)
            .rev()
            .find(|&level| self.captures[level].length == CaptureLength::Unfinished)
            .ok_or_else(|| PatternError::raise("invalid pattern capture"))
    }

    /// `%1`–`%9` (and the invalid `%0`): the text of a closed capture again.
    fn match_backreference(&mut self, s: usize, digit: u8) -> MatchResult {
        let index = i32::from(digit) - i32::from(b'1');
        let level = usize::try_from(index)
            .ok()
            .filter(|&level| level < self.level && self.captures[level].length != CaptureLength::Unfinished);
        let Some(level) = level else {
            return Err(PatternError::Raise(format!("invalid capture index %{}", index + 1)));
        };
        let capture = self.captures[level];
        // A position capture has C length -2, which as a size never fits: no match.
        let CaptureLength::Bytes(length) = capture.length else { return Ok(None) };
        self.meter.charge((length / BACKREFERENCE_BYTES_PER_STEP) as u64)?;
        let matches = self.subject.len() - s >= length
            && self.subject[capture.start..capture.start + length] == self.subject[s..s + length];
        Ok(matches.then_some(s + length))
    }

    /// `%bxy`: a balanced run from `x` to `y`.
    fn match_balance(&mut self, s: usize, p: usize) -> MatchResult {
        if p + 1 >= self.pattern.len() {
            return Err(PatternError::raise("malformed pattern (missing arguments to '%b')"));
        }
        let (open, close) = (self.pattern[p], self.pattern[p + 1]);
        if self.subject_at(s) != open {
            return Ok(None);
        }
        let mut depth = 1;
        for index in s + 1..self.subject.len() {
            self.meter.charge(1)?;
            let byte = self.subject[index];
            if byte == close {
                depth -= 1;
                if depth == 0 {
                    return Ok(Some(index + 1));
                }
            } else if byte == open {
                depth += 1;
            }
        }
        Ok(None)
    }

    /// Where the single character class at `p` ends (`classend`).
    fn class_end(&self, mut p: usize) -> Result<usize, PatternError> {
        let first = self.pattern_at(p);
        p += 1;
        match first {
            ESCAPE if p == self.pattern.len() => Err(PatternError::raise("malformed pattern (ends with '%')")),
            ESCAPE => Ok(p + 1),
            b'[' => {
                if self.pattern_at(p) == b'^' {
                    p += 1;
                }
                loop {
                    if p == self.pattern.len() {
                        return Err(PatternError::raise("malformed pattern (missing ']')"));
                    }
                    let byte = self.pattern_at(p);
                    p += 1;
                    if byte == ESCAPE && p < self.pattern.len() {
                        p += 1;
                    }
                    if self.pattern_at(p) == b']' {
                        return Ok(p + 1);
                    }
                }
            }
            _ => Ok(p),
        }
    }

    /// Whether subject byte `s` (none past the end) matches the class from `p` to `class_end`.
    fn single_match(&self, s: usize, p: usize, class_end: usize) -> bool {
        let Some(&byte) = self.subject.get(s) else { return false };
        match self.pattern_at(p) {
            b'.' => true,
            ESCAPE => class_matches(byte, self.pattern_at(p + 1)),
            b'[' => self.matches_set(byte, p, class_end - 1),
            literal => literal == byte,
        }
    }

    /// Whether `byte` is in the set `[...]` that starts at `p` and closes at `set_end`.
    fn matches_set(&self, byte: u8, mut p: usize, set_end: usize) -> bool {
        let mut inside = true;
        if self.pattern_at(p + 1) == b'^' {
            inside = false;
            p += 1;
        }
        loop {
            p += 1;
            if p >= set_end {
                return !inside;
            }
            let item = self.pattern_at(p);
            if item == ESCAPE {
                p += 1;
                if class_matches(byte, self.pattern_at(p)) {
                    return inside;
                }
            } else if self.pattern_at(p + 1) == b'-' && p + 2 < set_end {
                p += 2;
                if item <= byte && byte <= self.pattern_at(p) {
                    return inside;
                }
            } else if item == byte {
                return inside;
            }
        }
    }

    /// Capture `index` of the match `start..end` (`get_onecapture`).
    pub(super) fn capture(&self, index: usize, start: usize, end: usize) -> Result<Capture, PatternError> {
        if index >= self.level {
            if index != 0 {
                return Err(PatternError::Raise(format!("invalid capture index %{}", index + 1)));
            }
            return Ok(Capture::Bytes(start..end));
        }
        let capture = self.captures[index];
        match capture.length {
            CaptureLength::Unfinished => Err(PatternError::raise("unfinished capture")),
            CaptureLength::Position => Ok(Capture::Position(capture.start + 1)),
            CaptureLength::Bytes(length) => Ok(Capture::Bytes(capture.start..capture.start + length)),
        }
    }

    /// The captures of the match `start..end`, or the whole match when there are none
    /// (`push_captures`); without a match range (`find`), only the captures.
    pub(super) fn captures(&self, range: Option<(usize, usize)>) -> Result<Vec<Capture>, PatternError> {
        let (start, end) = range.unwrap_or((0, 0));
        let count = if self.level == 0 && range.is_some() { 1 } else { self.level };
        (0..count).map(|index| self.capture(index, start, end)).collect()
    }
}

enum Item {
    Done(Option<usize>),
    Continue(usize, usize),
}

/// Whether `byte` is in the class `%class` (`match_class`, C locale).
fn class_matches(byte: u8, class: u8) -> bool {
    let matches = match class.to_ascii_lowercase() {
        b'a' => byte.is_ascii_alphabetic(),
        b'c' => byte.is_ascii_control(),
        b'd' => byte.is_ascii_digit(),
        b'g' => byte.is_ascii_graphic(),
        b'l' => byte.is_ascii_lowercase(),
        b'p' => byte.is_ascii_punctuation(),
        b's' => matches!(byte, b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r'),
        b'u' => byte.is_ascii_uppercase(),
        b'w' => byte.is_ascii_alphanumeric(),
        b'x' => byte.is_ascii_hexdigit(),
        b'z' => byte == 0,
        _ => return class == byte,
    };
    if class.is_ascii_lowercase() { matches } else { !matches }
}

/// Converts a 1-based, possibly negative `init` to a 0-based start (`posrelatI` minus one).
pub(super) fn start_index(init: i64, length: usize) -> usize {
    let position = if init > 0 {
        usize::try_from(init).unwrap_or(usize::MAX)
    } else if init == 0 || init.unsigned_abs() > length as u64 {
        1
    } else {
        length - init.unsigned_abs() as usize + 1
    };
    position - 1
}

/// What `string.find` or `string.match` found.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Found {
    /// `find`: the 1-based inclusive range, then the captures.
    Range { start: usize, end: usize, captures: Vec<Capture> },
    /// `match`: the captures, or the whole match.
    Captures(Vec<Capture>),
}

/// `string.find` (`find` true) and `string.match` (`str_find_aux`).
pub(super) fn find<M: Meter>(
    subject: &[u8],
    pattern: &[u8],
    init: i64,
    plain: bool,
    find: bool,
    meter: &mut M,
) -> Result<Option<Found>, PatternError> {
    let start = start_index(init, subject.len());
    if start > subject.len() {
        return Ok(None);
    }
    if find && (plain || !pattern.iter().any(|byte| SPECIALS.contains(byte))) {
        return Ok(find_plain(&subject[start..], pattern).map(|offset| Found::Range {
            start: start + offset + 1,
            end: start + offset + pattern.len(),
            captures: Vec::new(),
        }));
    }
    let (anchored, pattern) = strip_anchor(pattern);
    let mut matcher = Matcher::new(subject, pattern, meter);
    let mut position = start;
    loop {
        matcher.reset();
        if let Some(end) = matcher.match_at(position)? {
            return Ok(Some(if find {
                Found::Range { start: position + 1, end, captures: matcher.captures(None)? }
            } else {
                Found::Captures(matcher.captures(Some((position, end)))?)
            }));
        }
        position += 1;
        if anchored || position > subject.len() {
            return Ok(None);
        }
    }
}

fn strip_anchor(pattern: &[u8]) -> (bool, &[u8]) {
    match pattern.split_first() {
        Some((b'^', rest)) => (true, rest),
        _ => (false, pattern),
    }
}

/// The first occurrence of `needle` in `haystack` (`lmemfind`).
fn find_plain(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    haystack.windows(needle.len()).position(|window| window == needle)
}

/// The position of a `string.gmatch` iterator (`GMatchState`).
#[derive(Debug)]
pub(super) struct Gmatch {
    position: usize,
    last_match_end: Option<usize>,
}

impl Gmatch {
    /// An iterator over `subject` from `init`.
    pub(super) fn new(subject_length: usize, init: i64) -> Self {
        let start = start_index(init, subject_length).min(subject_length + 1);
        Self { position: start, last_match_end: None }
    }

    /// The next match's captures (`gmatch_aux`); the pattern's `^` is a literal here, as in Lua 5.4.
    pub(super) fn next<M: Meter>(
        &mut self,
        subject: &[u8],
        pattern: &[u8],
        meter: &mut M,
    ) -> Result<Option<Vec<Capture>>, PatternError> {
        let mut matcher = Matcher::new(subject, pattern, meter);
        for start in self.position..=subject.len() {
            matcher.reset();
            if let Some(end) = matcher.match_at(start)?
                && Some(end) != self.last_match_end
            {
                self.position = end;
                self.last_match_end = Some(end);
                return matcher.captures(Some((start, end))).map(Some);
            }
        }
        self.position = subject.len() + 1;
        Ok(None)
    }
}

/// Appends the replacement of one `string.gsub` match; returns whether the text changed.
pub(super) type Replace<'r, M> =
    dyn FnMut(&Matcher<'_, M>, Range<usize>, &mut Vec<u8>) -> Result<bool, PatternError> + 'r;

/// The result of `string.gsub`: the new text (`None` when unchanged) and the count.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Substituted {
    pub(super) text: Option<Vec<u8>>,
    pub(super) count: i64,
}

/// `string.gsub` (`str_gsub`) with a replacement callback and a bound on the result's size.
pub(super) fn gsub<M: Meter>(
    subject: &[u8],
    pattern: &[u8],
    replacements_max: i64,
    result_bytes_max: usize,
    replace: &mut Replace<'_, M>,
    meter: &mut M,
) -> Result<Substituted, PatternError> {
    let (anchored, pattern) = strip_anchor(pattern);
    let mut matcher = Matcher::new(subject, pattern, meter);
    let mut result = Vec::new();
    let (mut position, mut last_match_end, mut count, mut changed) = (0, None, 0, false);
    while count < replacements_max {
        matcher.reset();
        match matcher.match_at(position)? {
            Some(end) if Some(end) != last_match_end => {
                count += 1;
                changed |= replace(&matcher, position..end, &mut result)?;
                check_result_bytes(result.len(), result_bytes_max)?;
                (position, last_match_end) = (end, Some(end));
            }
            _ if position < subject.len() => {
                result.push(subject[position]);
                position += 1;
            }
            _ => break,
        }
        if anchored {
            break;
        }
    }
    if !changed {
        return Ok(Substituted { text: None, count });
    }
    result.extend_from_slice(&subject[position..]);
    check_result_bytes(result.len(), result_bytes_max)?;
    Ok(Substituted { text: Some(result), count })
}

fn check_result_bytes(result_bytes: usize, result_bytes_max: usize) -> Result<(), PatternError> {
    if result_bytes > result_bytes_max {
        return Err(PatternError::Host(mlua::Error::MemoryError("not enough memory".to_string())));
    }
    Ok(())
}

/// Appends a replacement string with `%0`–`%9` and `%%` expanded (`add_s`).
pub(super) fn add_replacement_string<M: Meter>(
    matcher: &Matcher<'_, M>,
    replacement: &[u8],
    matched: Range<usize>,
    result: &mut Vec<u8>,
) -> Result<(), PatternError> {
    let mut rest = replacement;
    while let Some(escape) = rest.iter().position(|&byte| byte == ESCAPE) {
        result.extend_from_slice(&rest[..escape]);
        let code = rest.get(escape + 1).copied().unwrap_or(0);
        match code {
            ESCAPE => result.push(ESCAPE),
            b'0' => result.extend_from_slice(&matcher.subject[matched.clone()]),
            b'1'..=b'9' => match matcher.capture(usize::from(code - b'1'), matched.start, matched.end)? {
                Capture::Bytes(range) => result.extend_from_slice(&matcher.subject[range]),
                Capture::Position(position) => result.extend_from_slice(position.to_string().as_bytes()),
            },
            _ => return Err(PatternError::raise("invalid use of '%' in replacement string")),
        }
        rest = &rest[(escape + 2).min(rest.len())..];
    }
    result.extend_from_slice(rest);
    Ok(())
}

impl<'a, M: Meter> Matcher<'a, M> {
    /// The whole subject.
    pub(super) fn subject(&self) -> &'a [u8] {
        self.subject
    }
}
