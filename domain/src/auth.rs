//! Who may do what: the three roles and the signed-in user as the UI sees them.
//!
//! Roles are ordered: every role may do what the roles below it may. Viewers read; operators also
//! create, cancel and retry sessions and task trees; admins also manage agents, the fleet, users
//! and API tokens.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::ValidationError;

/// What a principal may do; each role includes the ones below it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads everything: pages, the API's GETs, the event stream.
    Viewer,
    /// Also creates, cancels and retries sessions and task trees.
    Operator,
    /// Also manages agents, the fleet, users and tokens.
    Admin,
}

impl Role {
    /// Every role, lowest first.
    pub const ALL: [Role; 3] = [Role::Viewer, Role::Operator, Role::Admin];

    /// The role's name, as stored and sent.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }

    /// Whether this role may do what `required` may.
    pub fn allows(self, required: Role) -> bool {
        self >= required
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = ValidationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "viewer" => Ok(Role::Viewer),
            "operator" => Ok(Role::Operator),
            "admin" => Ok(Role::Admin),
            other => Err(ValidationError::new(
                "role",
                format!("unknown role {other:?}: expected viewer, operator or admin"),
            )),
        }
    }
}

/// The principal behind a request, as pages show it. `csrf` is set for browser sessions: every
/// form that changes something carries it back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CurrentUser {
    /// The user name, or `token:<name>` for an API token.
    pub name: String,
    /// What the principal may do.
    pub role: Role,
    /// The browser session's CSRF token; `None` for bearer tokens.
    pub csrf: Option<String>,
}

impl CurrentUser {
    /// Whether the principal may do what `required` may.
    pub fn may(&self, required: Role) -> bool {
        self.role.allows(required)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_ordered_viewer_operator_admin() {
        assert!(Role::Admin.allows(Role::Operator));
        assert!(Role::Admin.allows(Role::Viewer));
        assert!(Role::Operator.allows(Role::Viewer));
        assert!(!Role::Operator.allows(Role::Admin));
        assert!(!Role::Viewer.allows(Role::Operator));
        assert!(Role::Viewer.allows(Role::Viewer));
    }

    #[test]
    fn roles_round_trip_through_text_and_json() {
        for role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>().unwrap(), role);
            let json = serde_json::to_string(&role).unwrap();
            assert_eq!(json, format!("\"{role}\""));
        }
        let err = "root".parse::<Role>().unwrap_err();
        assert_eq!(err.field, "role");
    }
}
