//! changegate's domain: who may do what in which tenant, how approval
//! boards decide, how a change moves through its states, what approvals
//! sign, how the audit chain links, and when windows are open.
//!
//! Pure: no I/O, no clock (callers pass `now`), no web, database or
//! Kubernetes types. The server and the agent both build on it.

/// A closed set of names written in kebab case (states, kinds, ...):
/// `as_str`, `Display`, `FromStr` naming the accepted values, serde.
macro_rules! kebab_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
        #[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
        pub enum $name {
            $($(#[$vdoc])* #[serde(rename = $text)] $variant),+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = $crate::ids::InvalidValue;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                $name::ALL.iter().copied().find(|v| v.as_str() == s).ok_or_else(|| {
                    let names: Vec<&str> = $name::ALL.iter().map(|v| v.as_str()).collect();
                    $crate::ids::InvalidValue::new(
                        stringify!($name).to_ascii_lowercase(),
                        format!("{s:?} is not one of {}", names.join(", ")),
                    )
                })
            }
        }
    };
}

pub mod approval;
pub mod audit;
pub mod authz;
pub mod board;
pub mod catalogue;
pub mod change;
pub mod fingerprint;
pub mod gate;
pub mod ids;
pub mod policy;
pub mod proposal;
pub mod release;
pub mod risk;
pub mod role;
pub mod routing;
pub mod slot;
pub mod window;

pub use ids::{ChangeId, ChangeNumber, Email, ReleaseNumber, Slug, TenantId, UserId};
pub use role::{Role, UserKind};
