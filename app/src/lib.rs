//! The Leptos app: the HTML shell, the router, the pages and the `#[server]` functions.
//!
//! Compiled twice: with `ssr` inside the server binary (rendering HTML, answering server functions
//! through the driving ports in [`ports`]) and with `hydrate` into the WASM bundle.

pub mod api;
pub mod pages;
#[cfg(feature = "ssr")]
pub mod ports;

use leptos::prelude::*;
use leptos_meta::{provide_meta_context, MetaTags, Stylesheet, Title};
use leptos_router::{
    components::{Route, Router, Routes},
    SsrMode, StaticSegment,
};

/// The document around every page. Rendered on the server only.
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

    view! {
        <Stylesheet id="leptos" href="/pkg/oio.css" />
        <Title text="OIO // orchestrator" />
        <Router>
            <header class="border-b-4 border-ink px-4 py-2 flex items-baseline gap-6">
                <a href="/" class="font-bold no-underline text-lg tracking-tight">
                    "OIO//ORCHESTRATOR"
                </a>
                <span class="text-dim text-sm">"opencode industrial orchestrator"</span>
            </header>
            <main class="p-4">
                <Routes fallback=|| pages::NotFound>
                    // Async: the whole page is rendered before it is sent, so it reads without JavaScript.
                    <Route path=StaticSegment("") view=pages::Dashboard ssr=SsrMode::Async />
                </Routes>
            </main>
        </Router>
    }
}
