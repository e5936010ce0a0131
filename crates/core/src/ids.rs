//! Identifier newtypes and the small validated values (slugs, e-mail
//! addresses, change numbers) that every other module takes.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

macro_rules! id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub i64);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

id!(
    /// A tenant: one client company, or the MSP's own internal IT.
    TenantId
);
id!(
    /// A person (MSP staff or client user) or a service account.
    UserId
);
id!(
    /// A change request's row; its number (`CHG-<n>`) is the same value.
    ChangeId
);

macro_rules! number {
    ($(#[$doc:meta])* $name:ident, $prefix:literal, $what:literal, $example:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(pub i64);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!($prefix, "-{}"), self.0)
            }
        }

        impl FromStr for $name {
            type Err = InvalidValue;
            /// Accepts the prefixed form in either case, or the bare number.
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                let prefix = concat!($prefix, "-");
                // `get` and `strip_prefix`, never a byte slice: a multi-byte
                // character where the prefix would end is simply not the prefix.
                let digits = match s.get(..prefix.len()) {
                    Some(head) if s.len() > prefix.len() && head.eq_ignore_ascii_case(prefix) => {
                        &s[prefix.len()..]
                    }
                    _ => s,
                };
                match digits.parse::<i64>() {
                    Ok(n) if n > 0 => Ok($name(n)),
                    _ => Err(InvalidValue::new(
                        $what,
                        format!(
                            concat!("{:?} is not a ", $what, " number; write it as ", $prefix, "-<n>, e.g. ", $example),
                            s
                        ),
                    )),
                }
            }
        }

        /// Written with its prefix in JSON, as everywhere else.
        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = String::deserialize(d)?;
                text.parse()
                    .map_err(|e: InvalidValue| serde::de::Error::custom(e.message))
            }
        }
    };
}

number!(
    /// `CHG-<n>`, unique per installation (contract).
    ChangeNumber, "CHG", "change", "CHG-12"
);
number!(
    /// `REL-<n>`, unique per installation (contract).
    ReleaseNumber, "REL", "release", "REL-3"
);

/// A value that failed validation, with the field it came from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct InvalidValue {
    pub field: String,
    pub message: String,
}

impl InvalidValue {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        InvalidValue {
            field: field.into(),
            message: message.into(),
        }
    }

    /// The same error under a parent field (`boards[0].members` ...).
    pub fn within(mut self, parent: &str) -> Self {
        self.field = if self.field.is_empty() {
            parent.to_string()
        } else {
            format!("{parent}.{}", self.field)
        };
        self
    }
}

/// A tenant's short name, used in URLs and files: 1 to 63 characters of
/// `a-z`, `0-9` and `-`, starting with a letter or digit.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct Slug(String);

impl Slug {
    pub fn parse(s: &str) -> Result<Self, InvalidValue> {
        let ok = !s.is_empty()
            && s.len() <= 63
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !s.starts_with('-');
        if ok {
            Ok(Slug(s.to_string()))
        } else {
            Err(InvalidValue::new(
                "slug",
                format!(
                    "{s:?} is not a valid short name: use 1 to 63 lowercase letters, digits and dashes, e.g. client-a"
                ),
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Slug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Slug {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Slug::parse(&s).map_err(|e| serde::de::Error::custom(e.message))
    }
}

/// An e-mail address, trimmed and lower-cased: the login and the identity
/// approvals are recorded under.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct Email(String);

impl Email {
    pub fn parse(s: &str) -> Result<Self, InvalidValue> {
        let s = s.trim().to_ascii_lowercase();
        let valid = match s.split_once('@') {
            Some((local, domain)) => {
                !local.is_empty()
                    && domain.contains('.')
                    && !domain.starts_with('.')
                    && !domain.ends_with('.')
                    && !s.chars().any(|c| c.is_whitespace() || c == '<' || c == '>')
                    && s.len() <= 254
            }
            None => false,
        };
        if valid {
            Ok(Email(s))
        } else {
            Err(InvalidValue::new(
                "email",
                format!("{s:?} is not an e-mail address, e.g. alice@client-a.example"),
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Email {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Email::parse(&s).map_err(|e| serde::de::Error::custom(e.message))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn change_numbers_parse_with_or_without_prefix() {
        assert_eq!("CHG-12".parse::<ChangeNumber>(), Ok(ChangeNumber(12)));
        assert_eq!("12".parse::<ChangeNumber>(), Ok(ChangeNumber(12)));
        assert!("CHG-0".parse::<ChangeNumber>().is_err());
        assert!("REL-3".parse::<ChangeNumber>().is_err());
        assert_eq!(ChangeNumber(7).to_string(), "CHG-7");
        assert_eq!("rel-3".parse::<ReleaseNumber>(), Ok(ReleaseNumber(3)));
        assert_eq!(ReleaseNumber(3).to_string(), "REL-3");
        assert!("CHG-3".parse::<ReleaseNumber>().is_err());
    }

    proptest::proptest! {
        /// Any text at all, of any script, is a number or a clear error:
        /// never a panic (a path segment reaches this parser as it was sent).
        #[test]
        fn numbers_parse_any_text_without_panicking(s in "\\PC{0,12}", prefix in "(CHG-|chg-|REL-|rel-|)") {
            let text = format!("{prefix}{s}");
            if let Ok(n) = text.parse::<ChangeNumber>() {
                proptest::prop_assert!(n.0 > 0);
            }
            if let Ok(n) = text.parse::<ReleaseNumber>() {
                proptest::prop_assert!(n.0 > 0);
            }
        }

        #[test]
        fn a_number_reads_back_as_itself(n in 1i64..i64::MAX) {
            proptest::prop_assert_eq!(ChangeNumber(n).to_string().parse::<ChangeNumber>(), Ok(ChangeNumber(n)));
            proptest::prop_assert_eq!(ReleaseNumber(n).to_string().parse::<ReleaseNumber>(), Ok(ReleaseNumber(n)));
        }

        #[test]
        fn slugs_and_emails_parse_any_text_without_panicking(s in "\\PC{0,40}") {
            let _ = Slug::parse(&s);
            let _ = Email::parse(&s);
        }
    }

    #[test]
    fn a_multi_byte_character_where_the_prefix_ends_is_not_a_number() {
        // "0" then U+10000 (four bytes): byte 4 is inside the character.
        assert!("0\u{10000}".parse::<ChangeNumber>().is_err());
        assert!("CHG\u{10000}".parse::<ChangeNumber>().is_err());
        assert!("ÄÄÄÄ5".parse::<ReleaseNumber>().is_err());
    }

    #[test]
    fn slugs_are_lowercase_short_names() {
        assert!(Slug::parse("client-a").is_ok());
        assert!(Slug::parse("Client-A").is_err());
        assert!(Slug::parse("").is_err());
        assert!(Slug::parse("-a").is_err());
        assert!(Slug::parse("a/b").is_err());
    }

    #[test]
    fn emails_are_normalised_and_checked() {
        assert_eq!(
            Email::parse(" Alice@Client-A.example ").map(|e| e.0),
            Ok("alice@client-a.example".into())
        );
        assert!(Email::parse("alice").is_err());
        assert!(Email::parse("alice@localhost").is_err());
        assert!(Email::parse("a b@x.example").is_err());
    }
}
