//! The Leptos app: the HTML shell, the router, the pages and the `#[server]` functions.
//!
//! Compiled twice: with `ssr` inside the server binary (rendering HTML, answering server functions
//! through the driving ports in [`ports`]) and with `hydrate` into the WASM bundle.

pub mod api;
pub mod dto;
pub mod pages;
#[cfg(feature = "ssr")]
pub mod ports;

use leptos::prelude::*;
use leptos_meta::{provide_meta_context, MetaTags, Stylesheet, Title};
use leptos_router::{
    components::{Route, Router, Routes},
    ParamSegment, SsrMode, StaticSegment,
};

/// The document around every page. Rendered on the server only. (The wall screen, `/status`, is
/// not a route of the app: see [`pages::render_status_document`].)
pub fn shell(options: LeptosOptions) -> impl IntoView {
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8" />
                <meta name="viewport" content="width=device-width, initial-scale=1" />
                <AutoReload options=options.clone() />
                <HydrationScripts options />
                <link rel="icon" href="/favicon.svg" type="image/svg+xml" />
                <MetaTags />
            </head>
            <body class="min-h-screen">
                <App />
            </body>
        </html>
    }
}

#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    let user = pages::UserResource(Resource::new(|| (), |_| api::current_user()));
    provide_context(user);

    view! {
        <Stylesheet id="leptos" href="/pkg/oio.css" />
        <Title text="OIO // orchestrator" />
        <Router>
            <header class="border-b-4 border-ink px-4 py-2 flex flex-wrap items-baseline gap-6">
                <a href="/" class="font-bold no-underline text-lg tracking-tight">
                    "OIO//ORCHESTRATOR"
                </a>
                <nav data-testid="nav" class="flex flex-wrap gap-4 font-bold">
                    <a href="/">"OVERVIEW"</a>
                    <a href="/sessions">"SESSIONS"</a>
                    <a href="/tasks">"TASKS"</a>
                    <a href="/agents">"AGENTS"</a>
                    <a href="/inbox" data-testid="nav-inbox">
                        "INBOX"
                    </a>
                    // A full page load: the wall screen is served outside the app, without scripts.
                    <a href=pages::STATUS_PATH rel="external">
                        "STATUS"
                    </a>
                </nav>
                <span class="text-dim text-sm ml-auto">"opencode industrial orchestrator"</span>
                <Suspense fallback=|| ()>
                    {move || {
                        user.user()
                            .map(|u| {
                                let csrf = u.csrf.clone();
                                view! {
                                    <span data-testid="whoami" class="text-sm font-bold">
                                        {u.name.clone()}
                                        " ["
                                        {u.role.as_str()}
                                        "]"
                                    </span>
                                    {csrf
                                        .map(|token| {
                                            view! {
                                                <form method="post" action="/logout" class="inline">
                                                    <input type="hidden" name="csrf_token" value=token />
                                                    <button
                                                        type="submit"
                                                        data-testid="sign-out"
                                                        class="px-1 border-2 border-ink text-sm font-bold"
                                                    >
                                                        "[ SIGN OUT ]"
                                                    </button>
                                                </form>
                                            }
                                        })}
                                }
                            })
                    }}
                </Suspense>
            </header>
            <main class="p-4">
                // Async: every page is rendered in full before it is sent, so it reads without
                // JavaScript.
                <Routes fallback=|| pages::NotFound>
                    <Route path=StaticSegment("") view=pages::Overview ssr=SsrMode::Async />
                    <Route path=StaticSegment("sessions") view=pages::Sessions ssr=SsrMode::Async />
                    <Route
                        path=(StaticSegment("sessions"), ParamSegment("id"))
                        view=pages::SessionDetailPage
                        ssr=SsrMode::Async
                    />
                    <Route path=StaticSegment("tasks") view=pages::Tasks ssr=SsrMode::Async />
                    <Route
                        path=(StaticSegment("tasks"), ParamSegment("id"))
                        view=pages::TaskDetailPage
                        ssr=SsrMode::Async
                    />
                    <Route path=StaticSegment("agents") view=pages::Agents ssr=SsrMode::Async />
                    <Route path=StaticSegment("inbox") view=pages::Inbox ssr=SsrMode::Async />
                    <Route
                        path=(StaticSegment("agents"), ParamSegment("name"))
                        view=pages::AgentEdit
                        ssr=SsrMode::Async
                    />
                </Routes>
            </main>
        </Router>
    }
}
