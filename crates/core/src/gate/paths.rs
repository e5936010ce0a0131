//! Field paths inside a workload's spec (`spec.template.spec.containers[0].image`)
//! and the patterns policies write for them (`spec.template.spec.containers[*].image`).
//! A pattern covers a path when it matches the path or one of its ancestors.

use std::fmt;

/// One step of a path: an object key or a list index.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Segment {
    Key(String),
    Index(usize),
}

/// A concrete location in a JSON document.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct FieldPath(pub Vec<Segment>);

impl FieldPath {
    pub fn child_key(&self, key: &str) -> Self {
        let mut segs = self.0.clone();
        segs.push(Segment::Key(key.to_string()));
        Self(segs)
    }

    pub fn child_index(&self, index: usize) -> Self {
        let mut segs = self.0.clone();
        segs.push(Segment::Index(index));
        Self(segs)
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                Segment::Key(k) if i == 0 => write!(f, "{k}")?,
                Segment::Key(k) => write!(f, ".{k}")?,
                Segment::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum PatternSegment {
    Key(String),
    Index(usize),
    AnyIndex,
}

/// A path pattern: dotted keys, `[N]` for one list element, `[*]` for any.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PathPattern {
    segments: Vec<PatternSegment>,
}

/// Why a pattern string is not a valid path pattern.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid path pattern {pattern:?}: {reason} (write it like spec.template.spec.containers[*].image)"
)]
pub struct PatternError {
    pub pattern: String,
    pub reason: &'static str,
}

impl PathPattern {
    pub fn parse(pattern: &str) -> Result<Self, PatternError> {
        let err = |reason| PatternError {
            pattern: pattern.to_string(),
            reason,
        };
        if pattern.is_empty() {
            return Err(err("it is empty"));
        }
        let mut segments = Vec::new();
        for part in pattern.split('.') {
            let (key, mut rest) = match part.find('[') {
                Some(i) => (&part[..i], &part[i..]),
                None => (part, ""),
            };
            if key.is_empty() {
                return Err(err("a segment has no field name"));
            }
            if !key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            {
                return Err(err(
                    "a field name may hold only letters, digits, '_' and '-'",
                ));
            }
            segments.push(PatternSegment::Key(key.to_string()));
            while !rest.is_empty() {
                let close = rest.find(']').ok_or_else(|| err("a '[' is not closed"))?;
                let inner = &rest[1..close];
                segments.push(match inner {
                    "*" => PatternSegment::AnyIndex,
                    n => PatternSegment::Index(
                        n.parse()
                            .map_err(|_| err("an index must be a number or *"))?,
                    ),
                });
                rest = &rest[close + 1..];
                if !rest.is_empty() && !rest.starts_with('[') {
                    return Err(err("unexpected text after ']'"));
                }
            }
        }
        Ok(Self { segments })
    }

    /// True when `path` is this pattern's location or lies below it.
    pub fn covers(&self, path: &FieldPath) -> bool {
        if path.0.len() < self.segments.len() {
            return false;
        }
        self.segments
            .iter()
            .zip(&path.0)
            .all(|(p, s)| match (p, s) {
                (PatternSegment::Key(a), Segment::Key(b)) => a == b,
                (PatternSegment::Index(a), Segment::Index(b)) => a == b,
                (PatternSegment::AnyIndex, Segment::Index(_)) => true,
                _ => false,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A path from dotted segments; numeric segments are list indexes.
    fn path(dotted: &str) -> FieldPath {
        FieldPath(
            dotted
                .split('.')
                .map(|s| {
                    s.parse::<usize>()
                        .map_or_else(|_| Segment::Key(s.to_string()), Segment::Index)
                })
                .collect(),
        )
    }

    #[test]
    fn a_wildcard_pattern_covers_every_container_image() {
        let p = PathPattern::parse("spec.template.spec.containers[*].image").expect("valid");
        assert!(p.covers(&path("spec.template.spec.containers.0.image")));
        assert!(p.covers(&path("spec.template.spec.containers.3.image")));
        assert!(!p.covers(&path("spec.template.spec.containers.0.env")));
        assert!(
            !p.covers(&path("spec.template.spec.containers")),
            "adding a container is not an image change"
        );
    }

    #[test]
    fn a_pattern_covers_everything_below_it() {
        let p = PathPattern::parse("spec.template.metadata.annotations").expect("valid");
        assert!(p.covers(&path("spec.template.metadata.annotations.restartedAt")));
        assert!(!p.covers(&path("spec.template.metadata.labels.app")));
    }

    #[test]
    fn an_index_pattern_covers_only_that_element() {
        let p = PathPattern::parse("spec.template.spec.containers[1].image").expect("valid");
        assert!(p.covers(&path("spec.template.spec.containers.1.image")));
        assert!(!p.covers(&path("spec.template.spec.containers.0.image")));
    }

    #[test]
    fn malformed_patterns_say_what_is_wrong() {
        for bad in [
            "",
            "spec..x",
            "spec.containers[",
            "spec.containers[x]",
            "spec.a b",
            "spec.c[0]x",
        ] {
            let e = PathPattern::parse(bad).expect_err(bad);
            assert!(e.to_string().contains("write it like"), "{e}");
        }
    }

    #[test]
    fn paths_print_like_patterns() {
        assert_eq!(
            path("spec.template.spec.containers.0.image").to_string(),
            "spec.template.spec.containers[0].image"
        );
    }
}
