//! `ejabberd-server`: ejabberd's server, statistics and module commands (tags `server`,
//! `statistics`, `erlang`) in the `api` dialect: `status`, `stats`, `stats_host`,
//! `registered_vhosts` and `restart_module`. Statistics are computed when asked, never kept as
//! counters, so they cannot drift as ejabberd's `registeredusers` does; a statistic Plughost
//! cannot answer truthfully is a 400 rather than a guess.

#![cfg_attr(target_arch = "wasm32", no_std)]

extern crate alloc;

wit_bindgen::generate!({
    inline: "
        package plughost:ejabberd-server;
        world ejabberd-server {
            include plughost:admin/plugin@0.1.0;
            import plughost:admin/accounts@0.1.0;
            import plughost:admin/sessions@0.1.0;
            import plughost:admin/modules@0.1.0;
            import plughost:admin/status@0.1.0;
            import plughost:admin/log@0.1.0;
        }
    ",
    path: "../../wit",
    with: { "plughost:admin/types@0.1.0": sdk::types },
    // The imported interfaces are this plugin's own; only `types` is shared with the sdk.
    generate_all,
});

use alloc::format;
use plughost::admin::log::{Level, log};
use plughost::admin::{accounts, modules, sessions, status};
use sdk::ejabberd::{self, Arg, Args, Command, HOST, Success};
use sdk::types::{Error, Request, Response};
use sdk::{Answer, Reply};

/// The result of `stats` and `stats_host`.
const STAT: &str = sdk::api_integer_schema!("stat");

const COMMANDS: &[Command] = &[
    Command {
        name: "status",
        summary: "Show the server's status",
        description: "Whether the server is started, and its version.",
        args: &[],
        mutates: false,
        result: Success::new(
            "`\"The node 'plughost@<first domain>' is started. Status: started\\nplughost VERSION is running \
             in that node\"`: ejabberd's two lines with a line break between them, where ejabberd glues \
             them together.",
            ejabberd::TEXT,
        ),
        errors: &[],
        handler: server_status,
    },
    Command {
        name: "stats",
        summary: "Show a statistic of the server",
        description: "One statistic, computed when asked (ejabberd's `registeredusers` is a counter that \
                      drifts). ejabberd's `processes`, an Erlang VM figure, has no equivalent and is \
                      refused like an unknown name.",
        args: &[Arg::string(
            "name",
            "`registeredusers` (accounts), `onlineusers` (sessions, i.e. bound resources), \
             `onlineusersnode` (the same: Plughost is one node) or `uptimeseconds`.",
        )],
        mutates: false,
        result: Success::new("`{\"stat\": n}`.", STAT),
        errors: &[
            Answer::new(
                400,
                "`\"Arg name must be one of registeredusers, onlineusers, onlineusersnode, uptimeseconds\"` \
                 (ejabberd crashes with a 500).",
                ejabberd::TEXT,
            ),
            ejabberd::UNAVAILABLE,
        ],
        handler: stats,
    },
    Command {
        name: "stats_host",
        summary: "Show a statistic of a domain",
        description: "One statistic of the domain `host`, computed when asked.",
        args: &[
            Arg::string(
                "name",
                "`registeredusers` (accounts) or `onlineusers` (sessions, i.e. bound resources).",
            ),
            HOST,
        ],
        mutates: false,
        result: Success::new("`{\"stat\": n}`.", STAT),
        errors: &[
            Answer::new(400, "`\"Arg name must be one of registeredusers, onlineusers\"`.", ejabberd::TEXT),
            ejabberd::UNKNOWN_HOST,
            ejabberd::UNAVAILABLE,
        ],
        handler: stats_host,
    },
    Command {
        name: "registered_vhosts",
        summary: "List the served domains",
        description: "Every domain this server serves.",
        args: &[],
        mutates: false,
        result: Success::new("The domains, in configuration order.", ejabberd::STRINGS),
        errors: &[],
        handler: registered_vhosts,
    },
    Command {
        name: "restart_module",
        summary: "Reload a plugin",
        description: "Reloads the Plughost plugin `module` from the plugins folder, or loads it when it is \
                      not loaded, where ejabberd restarts one of its modules. Plugins are server-wide, \
                      so `host` only has to be a served domain.",
        args: &[
            HOST,
            Arg::string(
                "module",
                "The plugin's name: its file stem in the plugins folder (`ejabberd-roster`).",
            ),
        ],
        mutates: true,
        result: Success::new(
            "`{\"res\":0}` when the plugin serves afterwards; `{\"res\":1}` when there is no such plugin \
             file or the name is no plugin name.",
            sdk::api_integer_schema!("res"),
        ),
        errors: &[
            ejabberd::UNKNOWN_HOST,
            Answer::new(
                500,
                "The plugin failed to load (compile, grant, manifest or route conflict); the text is the \
                 host's reason. The previous version, if any, keeps serving.",
                ejabberd::TEXT,
            ),
        ],
        handler: restart_module,
    },
];

const ACCOUNTS: ejabberd::Accounts = sdk::api_accounts!();

/// The 400 for a statistic `stats` cannot answer (ejabberd's `processes`, an Erlang VM figure,
/// among them).
fn unknown_statistic(known: &str) -> Response {
    ejabberd::thrown(400, format!("Arg name must be one of {known}"))
}

/// The number of sessions (bound resources), of one domain or of all: ejabberd's
/// `onlineusers` counts sessions, not accounts.
fn online(domain: Option<&str>) -> u64 {
    let connected = sessions::connected();
    connected.iter().filter(|(jid, _)| domain.is_none_or(|domain| sdk::domainpart(jid) == domain)).count()
        as u64
}

fn registered(domain: Option<&str>) -> Result<u64, Response> {
    accounts::count(domain).map_err(|error| ejabberd::host_error(&error))
}

/// `status`: `restuple`, ejabberd's two lines (which 23.01 glues together) with a line break.
fn server_status(_: &Request, _: &Args) -> Reply {
    Ok(ejabberd::restuple(format!(
        "The node '{}' is started. Status: started\n{} is running in that node",
        ACCOUNTS.node(),
        status::version()
    )))
}

/// `stats`: `{"stat": n}` for `registeredusers`, `onlineusers`, `onlineusersnode` (Plughost is
/// one node) and `uptimeseconds`.
fn stats(_: &Request, args: &Args) -> Reply {
    let stat = match args.str("name") {
        "registeredusers" => registered(None)?,
        "onlineusers" | "onlineusersnode" => online(None),
        "uptimeseconds" => status::uptime_seconds(),
        _ => return Err(unknown_statistic("registeredusers, onlineusers, onlineusersnode, uptimeseconds")),
    };
    Ok(ejabberd::integer("stat", stat))
}

/// `stats_host`: `{"stat": n}` for `registeredusers` and `onlineusers` of one served domain.
fn stats_host(_: &Request, args: &Args) -> Reply {
    let domain = ACCOUNTS.host(args)?;
    let stat = match args.str("name") {
        "registeredusers" => registered(Some(&domain))?,
        "onlineusers" => online(Some(&domain)),
        _ => return Err(unknown_statistic("registeredusers, onlineusers")),
    };
    Ok(ejabberd::integer("stat", stat))
}

/// `registered_vhosts`: the served domains, in configuration order.
fn registered_vhosts(_: &Request, _: &Args) -> Reply {
    Ok(ejabberd::json(accounts::domains()))
}

/// `restart_module`: reloads the plugin `module` from the plugins folder (loads it when it is
/// not loaded). `{"res":0}` when it serves afterwards, `{"res":1}` when there is no such plugin.
/// Plugins are server-wide, so `host` only has to be a served domain.
fn restart_module(request: &Request, args: &Args) -> Reply {
    ACCOUNTS.host(args)?;
    let module = args.str("module");
    let res: u64 = match modules::load(module) {
        Ok(_) => 0,
        Err(Error::NotFound(_) | Error::Invalid(_)) => 1,
        Err(error) => return Err(ejabberd::host_error(&error)),
    };
    if res == 0 {
        log(Level::Info, &format!("{} restarted the plugin {module}", request.caller.jid));
    }
    Ok(ejabberd::integer("res", res))
}

sdk::plugin!(
    api,
    "ejabberd-server",
    "ejabberd's server commands: status, statistics, virtual hosts, restarting a module.",
    COMMANDS
);
