//! Users, their roles, and the actor recorded against every change and access.

use std::fmt;
use std::str::FromStr;

use crate::ids::UserId;

/// What a signed-in person may do. Patients are not users; they arrive later
/// through their own links.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// Rooms, radiologists, availability, catalogue, rule pack, users, audit log.
    Admin,
    /// Triage queue, phone referrals, booking, reminders, check-in.
    Scheduler,
    /// Screening call, hold plans, recovery, discharge, follow-up.
    Nurse,
    /// Vets referrals, reviews imaging, documents procedures.
    Radiologist,
    /// Referring provider: orders and follows their own referrals only.
    Referrer,
}

impl Role {
    /// Every role, in display order.
    pub const ALL: [Role; 5] = [
        Role::Admin,
        Role::Scheduler,
        Role::Nurse,
        Role::Radiologist,
        Role::Referrer,
    ];

    /// The stable machine name (stored in the database and used in the API).
    pub const fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Scheduler => "scheduler",
            Role::Nurse => "nurse",
            Role::Radiologist => "radiologist",
            Role::Referrer => "referrer",
        }
    }

    /// A human label.
    pub const fn label(self) -> &'static str {
        match self {
            Role::Admin => "Administrator",
            Role::Scheduler => "Scheduler",
            Role::Nurse => "Nurse",
            Role::Radiologist => "Radiologist",
            Role::Referrer => "Referring provider",
        }
    }

    /// Department staff (everyone but referring providers) see every case.
    pub const fn is_department_staff(self) -> bool {
        !matches!(self, Role::Referrer)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A role name that is not one of ours.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown role {given:?}: expected one of admin, scheduler, nurse, radiologist, referrer")]
pub struct UnknownRole {
    /// What was given.
    pub given: String,
}

impl FromStr for Role {
    type Err = UnknownRole;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s.trim().to_ascii_lowercase())
            .ok_or_else(|| UnknownRole {
                given: s.to_owned(),
            })
    }
}

/// A sign-in name: 2-64 characters of lowercase letters, digits, `.`, `_`, `-`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Username(String);

/// Why a username was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("username must be 2-64 characters of lowercase letters, digits, '.', '_' or '-'")]
pub struct InvalidUsername;

impl Username {
    /// Parses and normalises (trims, lowercases) a username.
    pub fn parse(raw: &str) -> Result<Self, InvalidUsername> {
        let s = raw.trim().to_ascii_lowercase();
        let ok = (2..=64).contains(&s.len())
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c));
        if ok {
            Ok(Self(s))
        } else {
            Err(InvalidUsername)
        }
    }

    /// The normalised name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Who did something: recorded with every transition and audit event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// The user's id; `None` for the system itself (CLI, background work).
    pub user_id: Option<UserId>,
    /// The username, or `system`.
    pub username: String,
    /// The role acted in; `None` for the system.
    pub role: Option<Role>,
    /// Where the request came from (client address), for the audit log.
    pub client: Option<String>,
}

impl Actor {
    /// A signed-in user.
    pub fn user(user_id: UserId, username: impl Into<String>, role: Role) -> Self {
        Self {
            user_id: Some(user_id),
            username: username.into(),
            role: Some(role),
            client: None,
        }
    }

    /// The same actor, seen at a client address.
    pub fn from_client(mut self, client: impl Into<String>) -> Self {
        self.client = Some(client.into());
        self
    }

    /// irflow itself, e.g. the command line or the demo seeder.
    pub fn system(what: &str) -> Self {
        Self {
            user_id: None,
            username: format!("system:{what}"),
            role: None,
            client: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_round_trip() {
        for role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>(), Ok(role));
        }
        assert!("doctor".parse::<Role>().is_err());
        assert_eq!(" Nurse ".parse::<Role>(), Ok(Role::Nurse));
    }

    #[test]
    fn usernames_are_normalised_and_checked() {
        assert_eq!(
            Username::parse(" Dr.Smith ").map(|u| u.0),
            Ok("dr.smith".into())
        );
        assert!(Username::parse("a").is_err());
        assert!(Username::parse("has space").is_err());
        assert!(Username::parse("semi;colon").is_err());
        assert!(Username::parse(&"x".repeat(65)).is_err());
    }
}
