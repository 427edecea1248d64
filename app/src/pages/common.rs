//! Small pieces every page uses: formatting, status cells, error boxes, field errors.

use chrono::{DateTime, Utc};
use leptos::prelude::*;
use leptos_router::hooks::use_query_map;

use crate::api::FieldError;

/// The signed-in user, loaded once for the whole app (see [`crate::App`]).
#[derive(Clone, Copy)]
pub struct UserResource(pub Resource<Result<Option<domain::CurrentUser>, ServerFnError>>);

impl UserResource {
    pub fn user(&self) -> Option<domain::CurrentUser> {
        self.0.get().and_then(Result::ok).flatten()
    }
}

/// The hidden CSRF field every form that changes something carries (the server refuses a
/// browser's mutation without it).
#[component]
pub fn CsrfField() -> impl IntoView {
    let user = expect_context::<UserResource>();
    view! {
        <Suspense fallback=|| ()>
            {move || {
                let token = user.user().and_then(|u| u.csrf).unwrap_or_default();
                view! { <input type="hidden" name="csrf_token" value=token /> }
            }}
        </Suspense>
    }
}

pub fn fmt_time(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%S").to_string()
}

pub fn fmt_opt_time(at: Option<DateTime<Utc>>) -> String {
    at.map(fmt_time).unwrap_or_else(|| "-".into())
}

pub fn fmt_cost(micro_usd: u64) -> String {
    format!("{:.4}", micro_usd as f64 / 1_000_000.0)
}

pub fn fmt_duration(ms: u64) -> String {
    let secs = ms / 1000;
    match secs {
        0..60 => format!("{}.{:01}s", secs, (ms % 1000) / 100),
        60..3600 => format!("{}m{:02}s", secs / 60, secs % 60),
        _ => format!("{}h{:02}m", secs / 3600, (secs % 3600) / 60),
    }
}

/// Whether a status name is one of the failures (the only thing shown in the alert colour).
pub fn is_failure(status: &str) -> bool {
    status
        .parse::<domain::SessionStatus>()
        .is_ok_and(domain::SessionStatus::is_failure)
}

/// A status as a table cell: failures in the alert colour, bold.
#[component]
pub fn StatusCell(#[prop(into)] status: String) -> impl IntoView {
    let alert = is_failure(&status);
    let data = status.clone();
    view! {
        <td class:text-alert=alert class:font-bold=alert data-status=data>
            {status}
        </td>
    }
}

/// A failed load, in the alert colour.
#[component]
pub fn ErrorBox(#[prop(into)] message: String) -> impl IntoView {
    view! {
        <p data-testid="load-error" class="border-2 border-alert text-alert font-bold p-2">
            "ERROR: "
            {message}
        </p>
    }
}

/// A section heading with a rule under it.
#[component]
pub fn SectionTitle(#[prop(into)] text: String) -> impl IntoView {
    view! { <h2 class="font-bold border-b-2 border-ink mt-6 mb-2">{text}</h2> }
}

/// The field error and typed values a refused form came back with (from the query string).
#[derive(Clone, Debug, Default)]
pub struct Returned {
    pub error: Option<FieldError>,
    values: Vec<(String, String)>,
}

impl Returned {
    pub fn value(&self, key: &str) -> Option<String> {
        self.values
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
    }

    /// The message for `field`, if it is the one that was wrong.
    pub fn error_for(&self, field: &str) -> Option<String> {
        self.error
            .as_ref()
            .filter(|e| e.field == field)
            .map(|e| e.message.clone())
    }
}

/// Reads [`Returned`] from the current URL's query (tracked: call it in a reactive closure).
pub fn returned_form(keys: &[&str]) -> Returned {
    let query = use_query_map();
    let query = query.read();
    let error = match (query.get("error_field"), query.get("error")) {
        (Some(field), Some(message)) => Some(FieldError { field, message }),
        _ => None,
    };
    let values = keys
        .iter()
        .filter_map(|k| query.get(k).map(|v| ((*k).to_owned(), v)))
        .collect();
    Returned { error, values }
}

/// The inline error next to a form field (nothing when the field was fine).
#[component]
pub fn FieldMessage(returned: Returned, field: &'static str) -> impl IntoView {
    returned.error_for(field).map(|message| {
        view! {
            <span
                data-testid="form-error"
                data-field=field
                id=format!("error-{field}")
                class="text-alert font-bold"
            >
                {format!("← {field}: {message}")}
            </span>
        }
    })
}

/// A form error that names no field of the form.
#[component]
pub fn OtherError(returned: Returned, fields: &'static [&'static str]) -> impl IntoView {
    returned
        .error
        .filter(|e| !fields.contains(&e.field.as_str()))
        .map(|e| {
            view! {
                <p data-testid="form-error" data-field=e.field.clone() class="text-alert font-bold">
                    {format!("{}: {}", e.field, e.message)}
                </p>
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_naturally() {
        assert_eq!(fmt_duration(1_500), "1.5s");
        assert_eq!(fmt_duration(125_000), "2m05s");
        assert_eq!(fmt_duration(7_260_000), "2h01m");
        assert_eq!(fmt_cost(1_234_500), "1.2345");
    }
}

/// The `<option>`s of a session-status filter: `all`, then every status; `selected` (default
/// `all`) is marked.
#[component]
pub fn StatusOptions(selected: Option<String>) -> impl IntoView {
    let selected = selected.unwrap_or_else(|| "all".into());
    std::iter::once("all")
        .chain(domain::SessionStatus::ALL.iter().map(|s| s.as_str()))
        .map(|value| {
            let is_selected = value == selected;
            view! {
                <option value=value selected=is_selected>
                    {value}
                </option>
            }
        })
        .collect_view()
}
