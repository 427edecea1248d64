//! One module per page.

mod agents;
mod common;
mod dashboard;
mod inbox;
#[cfg(feature = "hydrate")]
mod live;
mod overview;
mod session_detail;
mod sessions;
mod status;
mod task_detail;
mod tasks;

pub use agents::{AgentEdit, Agents};
pub use common::{CsrfField, UserResource};
pub use dashboard::Dashboard;
pub use inbox::Inbox;
pub use overview::Overview;
pub use session_detail::{SessionDetailPage, SESSION_EVENT_TYPES};
pub use sessions::Sessions;
#[cfg(feature = "ssr")]
pub use status::render_status_document;
pub use status::STATUS_PATH;
pub use task_detail::TaskDetailPage;
pub use tasks::Tasks;

use leptos::prelude::*;

#[component]
pub fn NotFound() -> impl IntoView {
    #[cfg(feature = "ssr")]
    {
        if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
            response.set_status(http::StatusCode::NOT_FOUND);
        }
    }
    view! {
        <h1 class="text-2xl font-bold">"404 // NOT FOUND"</h1>
        <p>
            <a href="/">"back to the dashboard"</a>
        </p>
    }
}
