//! A notes page over netabase_store's IndexedDB backend: add notes with a tag, list
//! them, filter by tag (a secondary-key query), delete them. The notes live in the
//! browser's IndexedDB, so they survive a reload.
//!
//! Build and serve it with `scripts/build-web-notes.sh` (see the README).
#![cfg(target_arch = "wasm32")]

use std::rc::Rc;

use netabase_store::backend::indexeddb::IndexedDbBackend;
use netabase_store::nonblocking::AsyncStore;
use netabase_store::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use web_sys::{Document, Event, HtmlElement, HtmlInputElement};

/// The page's models.
#[netabase_definition_module(NotesDefinition, NotesKeys)]
pub mod model {
    use netabase_store::prelude::*;
    use serde::{Deserialize, Serialize};

    /// One note.
    #[derive(NetabaseModel, Serialize, Deserialize, Clone, Debug, PartialEq)]
    #[netabase(NotesDefinition)]
    pub struct Note {
        /// Increasing: the largest key plus one.
        #[primary_key]
        pub id: u64,
        /// What the note says.
        pub text: String,
        /// Its tag, indexed for the filter.
        #[secondary_key]
        pub tag: String,
    }
}
use model::*;

type Store = AsyncStore<NotesDefinition, IndexedDbBackend>;

/// The page: its store and document.
struct App {
    store: Store,
    document: Document,
}

fn text_of(e: impl std::fmt::Display) -> String {
    e.to_string()
}

impl App {
    fn input(&self, id: &str) -> Option<HtmlInputElement> {
        self.document
            .get_element_by_id(id)
            .and_then(|e| e.dyn_into::<HtmlInputElement>().ok())
    }

    fn show_status(&self, message: &str) {
        if let Some(status) = self.document.get_element_by_id("status") {
            status.set_text_content(Some(message));
        }
    }

    /// Lists the notes: all of them, or those whose tag is the filter's.
    async fn render(&self) -> Result<(), String> {
        let notes = self.store.open_tree::<Note>();
        let filter = self.input("filter").map(|i| i.value()).unwrap_or_default();
        let shown: Vec<Note> = if filter.trim().is_empty() {
            notes
                .iter_rev()
                .await
                .map_err(text_of)?
                .into_iter()
                .map(|(_, n)| n)
                .collect()
        } else {
            notes
                .get_by_secondary_key(NoteTagSecondaryKey(filter.trim().to_owned()))
                .await
                .map_err(text_of)?
        };
        let list = self
            .document
            .get_element_by_id("notes")
            .ok_or("the page has no #notes")?;
        list.set_inner_html("");
        for note in &shown {
            let item = self
                .document
                .create_element("li")
                .map_err(|e| format!("{e:?}"))?;
            item.set_class_name("note");
            item.set_attribute("data-id", &note.id.to_string())
                .map_err(|e| format!("{e:?}"))?;
            let text = self
                .document
                .create_element("span")
                .map_err(|e| format!("{e:?}"))?;
            text.set_class_name("text");
            text.set_text_content(Some(&note.text));
            let tag = self
                .document
                .create_element("span")
                .map_err(|e| format!("{e:?}"))?;
            tag.set_class_name("tag");
            tag.set_text_content(Some(&note.tag));
            let delete = self
                .document
                .create_element("button")
                .map_err(|e| format!("{e:?}"))?;
            delete.set_class_name("delete");
            delete
                .set_attribute("data-id", &note.id.to_string())
                .map_err(|e| format!("{e:?}"))?;
            delete.set_text_content(Some("delete"));
            for child in [&text, &tag, &delete] {
                item.append_child(child).map_err(|e| format!("{e:?}"))?;
            }
            list.append_child(&item).map_err(|e| format!("{e:?}"))?;
        }
        let total = notes.len().await.map_err(text_of)?;
        self.show_status(&format!("{} shown, {total} stored", shown.len()));
        Ok(())
    }

    async fn add(&self) -> Result<(), String> {
        let (Some(text), Some(tag)) = (self.input("text"), self.input("tag")) else {
            return Err("the page has no #text or #tag".into());
        };
        if text.value().trim().is_empty() {
            return Ok(());
        }
        let notes = self.store.open_tree::<Note>();
        let next = notes
            .iter_rev()
            .await
            .map_err(text_of)?
            .first()
            .map_or(1, |(k, _)| k.0 + 1);
        notes
            .put(Note {
                id: next,
                text: text.value().trim().to_owned(),
                tag: tag.value().trim().to_owned(),
            })
            .await
            .map_err(text_of)?;
        text.set_value("");
        self.render().await
    }

    async fn delete(&self, id: u64) -> Result<(), String> {
        self.store
            .open_tree::<Note>()
            .remove(id)
            .await
            .map_err(text_of)?;
        self.render().await
    }
}

/// Runs `f` on `app` for every `event` on the element `id`.
fn on<F, Fut>(app: &Rc<App>, id: &str, event: &str, f: F) -> Result<(), JsValue>
where
    F: Fn(Rc<App>, Event) -> Fut + 'static,
    Fut: std::future::Future<Output = Result<(), String>> + 'static,
{
    let Some(target) = app.document.get_element_by_id(id) else {
        return Err(JsValue::from_str(&format!("the page has no #{id}")));
    };
    let app = Rc::clone(app);
    let handler = Closure::<dyn Fn(Event)>::new(move |e: Event| {
        let app = Rc::clone(&app);
        let run = f(Rc::clone(&app), e);
        wasm_bindgen_futures::spawn_local(async move {
            if let Err(message) = run.await {
                app.show_status(&format!("error: {message}"));
            }
        });
    });
    target.add_event_listener_with_callback(event, handler.as_ref().unchecked_ref())?;
    // The page keeps its handlers for its whole life.
    handler.forget();
    Ok(())
}

/// Opens the store and wires the page.
#[wasm_bindgen(start)]
pub fn start() {
    wasm_bindgen_futures::spawn_local(async {
        if let Err(e) = run().await {
            web_sys::console::error_1(&e);
        }
    });
}

async fn run() -> Result<(), JsValue> {
    let document = web_sys::window()
        .and_then(|w| w.document())
        .ok_or("no document")?;
    let backend = IndexedDbBackend::open("web-notes")
        .await
        .map_err(|e| JsValue::from_str(&e.to_string()))?;
    let store = AsyncStore::open(backend)
        .await
        .map_err(|e| JsValue::from_str(&e.to_string()))?;
    let app = Rc::new(App { store, document });
    on(
        &app,
        "add",
        "click",
        |app, _| async move { app.add().await },
    )?;
    on(&app, "apply-filter", "click", |app, _| async move {
        app.render().await
    })?;
    on(&app, "show-all", "click", |app, _| async move {
        if let Some(filter) = app.input("filter") {
            filter.set_value("");
        }
        app.render().await
    })?;
    on(&app, "notes", "click", |app, e: Event| async move {
        let id = e
            .target()
            .and_then(|t| t.dyn_into::<HtmlElement>().ok())
            .filter(|t| t.class_name() == "delete")
            .and_then(|t| t.get_attribute("data-id"))
            .and_then(|id| id.parse::<u64>().ok());
        match id {
            Some(id) => app.delete(id).await,
            None => Ok(()),
        }
    })?;
    app.render().await.map_err(|e| JsValue::from_str(&e))?;
    if let Some(body) = app.document.body() {
        body.set_attribute("data-ready", "true")?;
    }
    Ok(())
}
