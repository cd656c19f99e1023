//! The leaf crate of the benchmark project.
use serde::{Deserialize, Serialize};

/// A parsed record.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct Record {
    pub key: String,
    pub value: u64,
}

/// Errors of [`parse`].
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    #[error("line {0} is not `key=value`")]
    Malformed(usize),
}

/// Parses `key=value` lines.
pub fn parse(text: &str) -> Result<Vec<Record>, ParseError> {
    let re = regex::Regex::new(r"^(\w+)=(\d+)$").unwrap();
    text.lines()
        .enumerate()
        .map(|(i, l)| {
            let c = re.captures(l.trim()).ok_or(ParseError::Malformed(i + 1))?;
            Ok(Record { key: c[1].to_owned(), value: c[2].parse().unwrap() })
        })
        .collect()
}

/// As JSON.
pub fn to_json(records: &[Record]) -> String {
    serde_json::to_string(records).unwrap()
}
