//! The browser side of the live event stream (`/api/v1/events`, Server-Sent Events): an
//! `EventSource` listening to named events. Hydrate only; closed when dropped.

use wasm_bindgen::closure::Closure;
use wasm_bindgen::{JsCast, JsValue};

/// An open stream; dropping it closes the connection and frees the listener.
pub struct EventStream {
    source: web_sys::EventSource,
    _listener: Closure<dyn FnMut(web_sys::MessageEvent)>,
}

impl Drop for EventStream {
    fn drop(&mut self) {
        self.source.close();
    }
}

/// Opens `url` and calls `on_data` with the `data` of every message whose `event:` is one of
/// `event_types` (the server names every message by its event type).
pub fn open(
    url: &str,
    event_types: &[&str],
    mut on_data: impl FnMut(String) + 'static,
) -> Result<EventStream, JsValue> {
    let source = web_sys::EventSource::new(url)?;
    let listener =
        Closure::<dyn FnMut(web_sys::MessageEvent)>::new(move |message: web_sys::MessageEvent| {
            if let Some(data) = message.data().as_string() {
                on_data(data);
            }
        });
    for event_type in event_types {
        source.add_event_listener_with_callback(event_type, listener.as_ref().unchecked_ref())?;
    }
    // Unnamed messages too, should the server ever send them.
    source.set_onmessage(Some(listener.as_ref().unchecked_ref()));
    Ok(EventStream {
        source,
        _listener: listener,
    })
}
