//! Rendering a page: an askama template into a response with its status, and the page that
//! says why a request was refused (used by the pages and by the session checks of `auth`).

use askama::Template;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};

/// A template as a `200` page, or a `500` that says why it could not be rendered.
pub(super) fn render(t: &impl Template) -> Response {
    match t.render() {
        Ok(html) => Html(html).into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("the page could not be rendered: {e}"),
        )
            .into_response(),
    }
}

/// A template as a page with `status` (a rendering error stays a `500`).
pub(super) fn render_with(status: StatusCode, t: &impl Template) -> Response {
    let mut r = render(t);
    if r.status() == StatusCode::OK {
        *r.status_mut() = status;
    }
    r
}

#[derive(Template)]
#[template(path = "message.html")]
struct MessagePage<'a> {
    title: &'a str,
    text: &'a str,
}

/// A page that says why a request was refused or failed, with its status.
pub(super) fn refusal(status: StatusCode, text: &str) -> Response {
    let title = status.canonical_reason().unwrap_or("Refused");
    render_with(status, &MessagePage { title, text })
}
