//! `/status`: the wall screen, rendered whole on the server so that it carries no script at all.
//! Whether it needs a sign-in is the auth layer's business (`auth.public_status`).

use axum::extract::State;
use axum::response::Html;
use axum::routing::get;
use axum::Router;

use app::ports::AppServices;

pub fn routes<S: Clone + Send + Sync + 'static>(services: AppServices) -> Router<S> {
    Router::new()
        .route(app::pages::STATUS_PATH, get(status_page))
        .with_state(services)
}

async fn status_page(State(services): State<AppServices>) -> Html<String> {
    let board = services.fleet.status_board().await.map_err(|e| {
        tracing::warn!(error = %e, "status wall: figures unavailable");
        e.to_string()
    });
    Html(app::pages::render_status_document(board))
}
