//! The browser viewer, built into the binary: crates/server/viewer/ (plain
//! HTML, JavaScript and CSS; no build step) served at `/` unless
//! `[server] static_dir` names a folder of its own. It reads
//! `/ws?format=json` (docs/protocol.md, "The viewer").

use std::sync::Arc;

use axum::http::header;
use axum::routing::get;
use axum::Router;

use crate::Shared;

const INDEX: &str = include_str!("../viewer/index.html");
const SCRIPT: &str = include_str!("../viewer/viewer.js");
const STYLE: &str = include_str!("../viewer/viewer.css");

/// `app` with the viewer's three files.
pub(crate) fn routes(app: Router<Arc<Shared>>) -> Router<Arc<Shared>> {
    let file = |body: &'static str, kind: &'static str| {
        get(move || async move {
            (
                [
                    (header::CONTENT_TYPE, kind),
                    (header::CACHE_CONTROL, "no-cache"),
                ],
                body,
            )
        })
    };
    app.route("/", file(INDEX, "text/html; charset=utf-8"))
        .route("/index.html", file(INDEX, "text/html; charset=utf-8"))
        .route("/viewer.js", file(SCRIPT, "text/javascript; charset=utf-8"))
        .route("/viewer.css", file(STYLE, "text/css; charset=utf-8"))
}
