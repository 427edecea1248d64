//! Identifiers of the domain's entities.
//!
//! Distinct newtypes so a `TaskId` can never be passed where a `SessionId` is expected. The crate
//! never generates ids itself (that would need randomness, which breaks determinism and wasm
//! builds); callers create the `Uuid` and wrap it.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! uuid_id {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(
            Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
        )]
        #[serde(transparent)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        pub struct $name(Uuid);

        impl $name {
            /// Wraps an existing UUID.
            pub const fn from_uuid(uuid: Uuid) -> Self {
                Self(uuid)
            }

            /// The wrapped UUID.
            pub const fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl From<Uuid> for $name {
            fn from(uuid: Uuid) -> Self {
                Self(uuid)
            }
        }

        impl From<$name> for Uuid {
            fn from(id: $name) -> Self {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }
    };
}

uuid_id!(
    /// Identifies one OpenCode session run by the orchestrator.
    SessionId
);
uuid_id!(
    /// Identifies one unit of planned work.
    TaskId
);
uuid_id!(
    /// Identifies one configured agent.
    AgentId
);

#[cfg(test)]
mod tests {
    use super::*;

    const RAW: &str = "67e55044-10b1-426f-9247-bb680e5fe0c8";

    #[test]
    fn id_displays_and_parses_as_hyphenated_uuid() {
        let id: SessionId = RAW.parse().unwrap();
        assert_eq!(id.to_string(), RAW);
        assert_eq!(id.as_uuid(), Uuid::parse_str(RAW).unwrap());
        assert_eq!(SessionId::from_uuid(id.as_uuid()), id);
    }

    #[test]
    fn id_rejects_non_uuid_text() {
        assert!("not-a-uuid".parse::<TaskId>().is_err());
    }

    #[test]
    fn id_serializes_as_bare_uuid_string() {
        let id: AgentId = RAW.parse().unwrap();
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, format!("\"{RAW}\""));
        assert_eq!(serde_json::from_str::<AgentId>(&json).unwrap(), id);
    }
}
