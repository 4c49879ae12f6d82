//! Changelogs are Markdown written by whoever publishes releases: rendered
//! with `pulldown-cmark`, then sanitised with `ammonia` (no script, no
//! event handler, no `javascript:` link, no inline style) before they reach
//! a page.

/// `markdown` as safe HTML.
///
/// ```
/// let notes = "# New\n\n**bold** [x](javascript:alert(1))\n\n<script>alert(1)</script>";
/// let html = updater_web::markdown::render(notes);
/// assert!(html.contains("<h1>New</h1>"));
/// assert!(html.contains("<strong>bold</strong>"));
/// assert!(!html.contains("script"));
/// assert!(!html.contains("javascript:"));
/// ```
pub fn render(markdown: &str) -> String {
    let parser = pulldown_cmark::Parser::new_ext(
        markdown,
        pulldown_cmark::Options::ENABLE_TABLES | pulldown_cmark::Options::ENABLE_STRIKETHROUGH,
    );
    let mut html = String::with_capacity(markdown.len() * 3 / 2);
    pulldown_cmark::html::push_html(&mut html, parser);
    ammonia::Builder::default()
        .link_rel(Some("noopener noreferrer nofollow"))
        .clean(&html)
        .to_string()
}
