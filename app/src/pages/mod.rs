//! One module per page.

mod dashboard;

pub use dashboard::Dashboard;

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
