//! `/status`: the public wall screen. Not a route of the hydrated app: the server renders this
//! whole document itself (see [`render_status_document`]), so it carries no script at all and
//! refreshes itself with `<meta http-equiv="refresh" content="10">`.

#[cfg(feature = "ssr")]
use leptos::prelude::*;

#[cfg(feature = "ssr")]
use super::common::{fmt_time, ErrorBox};
#[cfg(feature = "ssr")]
use crate::api::StatusBoard;

/// Where the server serves the wall screen.
pub const STATUS_PATH: &str = "/status";

/// The complete wall-screen document for `board` (or the error that prevented reading it).
#[cfg(feature = "ssr")]
pub fn render_status_document(board: Result<StatusBoard, String>) -> String {
    let owner = Owner::new();
    owner.with(|| {
        view! {
            <!DOCTYPE html>
            <html lang="en">
                <head>
                    <meta charset="utf-8" />
                    <meta name="viewport" content="width=device-width, initial-scale=1" />
                    <meta http-equiv="refresh" content="10" />
                    <link rel="stylesheet" href="/pkg/oio.css" />
                    <link rel="icon" href="/favicon.svg" type="image/svg+xml" />
                    <title>"OIO // status"</title>
                </head>
                <body class="min-h-screen p-4">
                    <header class="border-b-4 border-ink pb-2 mb-4 flex items-baseline gap-6">
                        <a href="/" class="font-bold text-2xl">
                            "OIO//STATUS"
                        </a>
                    </header>
                    <Board board />
                </body>
            </html>
        }
        .to_html()
    })
}

#[cfg(feature = "ssr")]
#[component]
fn Board(board: Result<StatusBoard, String>) -> impl IntoView {
    match board {
        Ok(board) => {
            let healthy = board.fleet.servers.iter().filter(|s| s.healthy).count();
            let total = board.fleet.servers.len();
            let fleet_down = healthy < total;
            let failed = board.failed_last_hour > 0;
            let servers = board
                .fleet
                .servers
                .iter()
                .map(|s| {
                    let down = !s.healthy;
                    view! {
                        <li data-testid="status-server" class:text-alert=down class:font-bold=down>
                            {format!("{} {}", if down { "DOWN" } else { "up" }, s.name)}
                        </li>
                    }
                })
                .collect_view();
            let trees = board
                .running_trees
                .iter()
                .map(|t| {
                    view! {
                        <li data-testid="status-tree">
                            {t.title().as_str().to_owned()}
                            {format!(" ({} subtasks)", t.subtasks().len())}
                        </li>
                    }
                })
                .collect_view();
            view! {
                <div class="grid grid-cols-2 md:grid-cols-4 gap-4 text-center">
                    <div class="border-4 border-ink p-4">
                        <div data-testid="status-running" class="text-7xl font-bold">
                            {board.running}
                        </div>
                        <div class="text-2xl">"RUNNING"</div>
                    </div>
                    <div class="border-4 border-ink p-4">
                        <div data-testid="status-queued" class="text-7xl font-bold">
                            {board.queued}
                        </div>
                        <div class="text-2xl">"QUEUED"</div>
                    </div>
                    <div
                        class="border-4 p-4"
                        class:border-alert=failed
                        class:border-ink=!failed
                        class:text-alert=failed
                    >
                        <div data-testid="status-failed" class="text-7xl font-bold">
                            {board.failed_last_hour}
                        </div>
                        <div class="text-2xl">"FAILED / 1 H"</div>
                    </div>
                    <div
                        data-testid="status-fleet"
                        class="border-4 p-4"
                        class:border-alert=fleet_down
                        class:border-ink=!fleet_down
                        class:text-alert=fleet_down
                    >
                        <div data-testid="status-fleet-count" class="text-7xl font-bold">
                            {format!("{healthy}/{total}")}
                        </div>
                        <div class="text-2xl">"SERVERS HEALTHY"</div>
                        <ul class="text-left mt-2">{servers}</ul>
                    </div>
                </div>
                <h2 class="text-3xl font-bold mt-6">"RUNNING TASK TREES"</h2>
                {if board.running_trees.is_empty() {
                    view! { <p data-testid="status-no-trees" class="text-2xl">"NONE."</p> }.into_any()
                } else {
                    view! { <ul class="text-2xl pl-8">{trees}</ul> }.into_any()
                }}
                <p class="text-dim mt-6">
                    {format!("as of {} utc · refreshes every 10 s", fmt_time(board.at))}
                </p>
            }
                .into_any()
        }
        Err(message) => view! { <ErrorBox message /> }.into_any(),
    }
}
