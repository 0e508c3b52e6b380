//! The authenticated principal that scopes every store call.

use crate::model::UserId;

/// A user whose identity has been verified. Every [`TaskStore`](crate::TaskStore) method takes one,
/// and every statement the store runs filters by its user id, so a caller can only ever reach the
/// principal's own tasks.
///
/// A `Principal` cannot be built from request data: it is not `Deserialize`, its fields are private,
/// and the only constructors are an [`Authenticator`](crate::Authenticator) (which verifies a
/// credential) and the explicitly named escape hatch [`Principal::assume_authenticated`] for hosts
/// that authenticate by other means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    user_id: UserId,
    email: Option<String>,
    name: Option<String>,
}

impl Principal {
    /// **Escape hatch.** Declares that the host application has already authenticated `user_id` by
    /// its own means (a session it manages, mTLS, a trusted gateway...). Everything done with the
    /// returned principal acts as that user, so only call this with an identity you have verified;
    /// never with a value taken from a request. Grep for this name when reviewing.
    pub fn assume_authenticated(user_id: UserId) -> Self {
        Self {
            user_id,
            email: None,
            name: None,
        }
    }

    /// Built by authenticators in this crate after verifying a credential.
    pub(crate) fn verified(user_id: UserId, email: Option<String>, name: Option<String>) -> Self {
        Self {
            user_id,
            email,
            name,
        }
    }

    /// Adds the profile details a credential carried (they never affect authorisation).
    pub fn with_profile(mut self, email: Option<String>, name: Option<String>) -> Self {
        self.email = email;
        self.name = name;
        self
    }

    /// The user's id: the owner of every task this principal touches.
    pub fn user_id(&self) -> &UserId {
        &self.user_id
    }

    /// The user's email, when the credential carried one.
    pub fn email(&self) -> Option<&str> {
        self.email.as_deref()
    }

    /// The user's display name, when the credential carried one.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }
}
