//! The site's Linux user: isolated, with its own group and home.

use super::desired::DesiredSite;
use crate::observe::ObservedSite;
use crate::plan::{Action, Change, ResourceKind, Step};

/// The home directory of a site user.
pub fn home(user: &str) -> String {
    format!("/home/{user}")
}

/// # Guarantees
/// `EnsureUser` creates the user only when missing; re-running it changes nothing.
pub fn diff(desired: &DesiredSite, observed: &ObservedSite) -> Change {
    let step = Step::EnsureUser {
        user: desired.user.to_owned(),
        home: home(desired.user),
    };
    match &observed.user {
        None => Change::new(
            ResourceKind::User,
            desired.user,
            Action::Create,
            format!("user `{}` does not exist", desired.user),
        )
        .step(step),
        Some(user) if user.home != home(desired.user) => Change::new(
            ResourceKind::User,
            desired.user,
            Action::Update,
            format!(
                "home of `{}` is {}, want {}",
                desired.user,
                user.home,
                home(desired.user)
            ),
        )
        .step(step),
        Some(_) => Change::no_op(ResourceKind::User, desired.user),
    }
}
