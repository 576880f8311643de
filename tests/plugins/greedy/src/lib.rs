//! `greedy`: a test fixture, never shipped. It imports `accounts` and `modules` (and `log`) and
//! uses them on `GET /fixture/greedy`. Tests grant it only `log`, so the host must refuse to load
//! it and name the interfaces it was not granted.

wit_bindgen::generate!({
    inline: "
        package plughost:greedy;
        world greedy {
            include plughost:admin/plugin@0.1.0;
            import plughost:admin/accounts@0.1.0;
            import plughost:admin/modules@0.1.0;
            import plughost:admin/log@0.1.0;
        }
    ",
    path: "../../../wit",
    with: { "plughost:admin/types@0.1.0": sdk::types },
    // The imported interfaces are this plugin's own; only `types` is shared with the sdk.
    generate_all,
});

use plughost::admin::log::{Level, log};
use plughost::admin::{accounts, modules};
use sdk::types::{Method, Request};
use sdk::{Answer, Doc, Endpoint, Reply};
use serde_json::json;

const ENDPOINTS: &[Endpoint] = &[Endpoint {
    method: Method::Get,
    path: "/fixture/greedy",
    handler: greedy,
    mutates: false,
    public: false,
    doc: GREEDY,
}];

const GREEDY: Doc = Doc {
    summary: "Use ungranted interfaces (test fixture)",
    description: "Served only if the host grants more than `log`, which tests never do.",
    params: &[],
    body: None,
    answers: &[Answer::new(
        200,
        "The served domains and the number of loaded plugins",
        r#"{"type":"object","properties":{"result":{"type":"object"}},"required":["result"]}"#,
    )],
};

// Calling every import keeps them all in the component: an unused import could be dropped by the
// linker, and then the grant check would have nothing to refuse.
fn greedy(_request: &Request) -> Reply {
    log(Level::Warn, "the greedy fixture ran: the host granted it more than log");
    Ok(sdk::reply(200, json!({ "domains": accounts::domains(), "modules": modules::list().len() })))
}

sdk::plugin!("greedy", "Test fixture: imports accounts and modules, which tests do not grant it.", ENDPOINTS);
