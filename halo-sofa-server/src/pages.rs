//! The HTML pages the SoFA shows a person: the development sign-in form, the federated sign-in's
//! messages and the authorize endpoint's errors (REQ AS-03, IDP-04, IDP-07).
//!
//! Every page is a `maud` template: each interpolated value (a client's parameters echoed into
//! hidden fields, an error's text) is escaped by the template engine, so no page builds HTML by
//! hand. The handlers keep the status codes and headers; this module only renders bodies.

use axum::response::Html;
use maud::{DOCTYPE, Markup, html};

/// A whole page: the doctype, a title, and `body` under it.
fn document(title: &str, body: Markup) -> Html<String> {
    Html(
        html! {
            (DOCTYPE)
            html {
                head { title { (title) } }
                body { (body) }
            }
        }
        .into_string(),
    )
}

/// The authorize endpoint's error shown to the user instead of a redirect (REQ AS-03).
pub(crate) fn authorization_error(message: &str) -> Html<String> {
    document(
        "Authorization error",
        html! {
            h1 { "This app cannot be authorized" }
            p { (message) }
        },
    )
}

/// What a signed-in user sees for a launch that another clinician opened (REQ IDP-04).
pub(crate) fn not_your_launch() -> Html<String> {
    document(
        "Not your launch",
        html! {
            h1 { "This app was opened for another clinician" }
            p {
                "You are signed in as someone other than the clinician who opened this app in \
                 the EMR. Open the app again from your own EMR session."
            }
        },
    )
}

/// The development sign-in form (REQ IDP-07): posts back to `action` with the authorize
/// request's own parameters in hidden fields, and `alert` (why the last attempt failed) above.
pub(crate) fn dev_login<'a>(
    action: &str,
    hidden: impl Iterator<Item = (&'a str, &'a str)>,
    alert: Option<&str>,
) -> Html<String> {
    document(
        "Sign in",
        html! {
            h1 { "Sign in (development)" }
            @if let Some(alert) = alert {
                p role="alert" { (alert) }
            }
            form method="post" action=(action) {
                @for (name, value) in hidden {
                    input type="hidden" name=(name) value=(value);
                }
                label { "User " input name="username"; }
                label { "Password " input name="password" type="password"; }
                button { "Sign in" }
            }
        },
    )
}

/// A message of the federated sign-in (an expired or malformed answer from the provider).
pub(crate) fn sign_in_message(message: &str) -> Html<String> {
    document(
        "Sign-in",
        html! {
            h1 { "Sign-in" }
            p { (message) }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOSTILE: &str = "<script>alert(\"x\")</script> & 'quoted' \"name\"";
    const ESCAPED: &str =
        "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; 'quoted' &quot;name&quot;";

    /// No raw markup of `HOSTILE` survives, and its escaped form is there.
    fn assert_escaped(page: &str) {
        assert!(!page.contains("<script"), "{page}");
        assert!(!page.contains("\"name\""), "{page}");
        assert!(page.contains(ESCAPED), "{page}");
    }

    #[test]
    fn an_authorization_error_escapes_its_message() {
        let Html(page) = authorization_error(HOSTILE);
        assert_escaped(&page);
        assert!(page.contains("<h1>This app cannot be authorized</h1>"));
    }

    #[test]
    fn the_sign_in_message_escapes_its_text() {
        let Html(page) = sign_in_message(HOSTILE);
        assert_escaped(&page);
        assert!(page.contains("<title>Sign-in</title>"));
    }

    #[test]
    fn the_development_login_escapes_action_fields_and_alert() {
        let action = format!("https://sofa.example/auth/authorize?x={HOSTILE}");
        let Html(page) = dev_login(
            &action,
            [("client_id", HOSTILE), (HOSTILE, "v")].into_iter(),
            Some(HOSTILE),
        );
        assert_escaped(&page);
        // The action, a hidden name, a hidden value and the alert: each escaped in place.
        assert!(page.contains(&format!(
            "action=\"https://sofa.example/auth/authorize?x={ESCAPED}\""
        )));
        assert!(page.contains(&format!("name=\"client_id\" value=\"{ESCAPED}\"")));
        assert!(page.contains(&format!("name=\"{ESCAPED}\" value=\"v\"")));
        assert!(page.contains(&format!("<p role=\"alert\">{ESCAPED}</p>")));
        assert!(page.contains("<input name=\"password\" type=\"password\">"));
    }
}
