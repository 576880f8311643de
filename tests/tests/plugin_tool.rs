//! The plugin tools: `plughost plugin check FILE` (one line per check, exit 0 / 1 / 2) and
//! `plughost plugin new NAME`, whose crate builds and serves its example route.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use plughost_tests::{TestHost, json, plugin_file, wait_for, workspace_root};
use rand::RngCore;

/// What `plugin check` did: its exit status and its report.
struct Checked {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Checked {
    /// The report line of check `what` (`imports`, ...) and the lines that continue it.
    fn step(&self, what: &str) -> String {
        let mut lines = self.stdout.lines().skip_while(|line| !line.starts_with(&format!("{what} ")));
        let first = lines.next().unwrap_or_else(|| panic!("no `{what}` line: {}", self.stdout));
        let rest = lines.take_while(|line| line.starts_with(' '));
        std::iter::once(first).chain(rest).collect::<Vec<_>>().join("\n")
    }

    /// Asserts that check `what` has `mark` (`ok`, `FAIL`, `skipped`); returns its lines.
    fn assert_step(&self, what: &str, mark: &str) -> String {
        let step = self.step(what);
        let found = step.split_whitespace().nth(1);
        assert_eq!(found, Some(mark), "`{what}` is not {mark}: {}", self.stdout);
        step
    }
}

/// Runs `plughost plugin check FILE ARGS` with no configuration from the environment.
fn check(file: &Path, args: &[&str]) -> Checked {
    let output = Command::new(plughost_tests::binary())
        .args(["plugin", "check"])
        .arg(file)
        .args(args)
        .env_remove("PLUGHOST_CONFIG")
        .env_remove("PLUGHOST_PLUGINS_DIR")
        .env_remove("PLUGHOST_DATA_DIR")
        .output()
        .expect("running plughost");
    Checked {
        code: output.status.code().expect("an exit status"),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// A plugins folder with copies of the built plugins `names`.
fn plugins_dir(names: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("a temp dir");
    for name in names {
        std::fs::copy(plugin_file(name), dir.path().join(format!("{name}.wasm"))).expect("copying a plugin");
    }
    dir
}

fn path_str(dir: &tempfile::TempDir) -> &str {
    dir.path().to_str().expect("a UTF-8 temp path")
}

#[test]
fn check_passes_a_bundled_plugin() {
    // The folder holds an older `user` too: the file checked would replace it, so it is left out.
    let folder = plugins_dir(&["ping", "module", "user", "roster"]);
    let checked = check(&plugin_file("user"), &["--plugins-dir", path_str(&folder)]);
    assert_eq!(checked.code, 0, "{}{}", checked.stdout, checked.stderr);
    assert!(checked.assert_step("component", "ok").contains("wasm component"));
    assert!(checked.assert_step("world", "ok").contains("exports plughost:admin/handler@0.1.0"));
    let imports = checked.assert_step("imports", "ok");
    assert!(imports.contains("plughost:admin/accounts@0.1.0"), "{imports}");
    assert!(imports.contains("(grants: accounts, sessions, roster, log)"), "{imports}");
    assert!(checked.assert_step("manifest", "ok").contains("`user` 0.1.0, admin_rest dialect"));
    checked.assert_step("routes", "ok");
    assert!(checked.assert_step("conflicts", "ok").contains("3 other plugins"), "{}", checked.stdout);
    let listed = checked.stdout.lines().find(|line| line.trim_start().starts_with("GET    /users/count"));
    assert!(listed.is_some_and(|line| line.contains(" reads ")), "{}", checked.stdout);
    assert!(checked.stdout.contains("result: ok"), "{}", checked.stdout);
}

#[test]
fn check_lists_every_ungranted_import() {
    // greedy imports accounts and modules, and gets `log` only, as any plugin not granted more.
    let checked = check(&plugin_file("greedy"), &[]);
    assert_eq!(checked.code, 1, "{}{}", checked.stdout, checked.stderr);
    let imports = checked.assert_step("imports", "FAIL");
    for interface in ["plughost:admin/accounts", "plughost:admin/modules"] {
        assert!(imports.contains(interface), "{interface} is not named: {imports}");
    }
    assert!(imports.contains("add it to [plugin.greedy] grants"), "{imports}");
    assert!(checked.assert_step("manifest", "skipped").contains("the imports failed"));
    assert!(checked.stdout.contains("result: 1 check failed"), "{}", checked.stdout);

    // The grants come from the configuration: one that takes two of `user`'s away.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(&config, "[plugin.user]\ngrants = [\"accounts\", \"log\"]\n").unwrap();
    let checked = check(&plugin_file("user"), &["--config", config.to_str().unwrap()]);
    assert_eq!(checked.code, 1, "{}{}", checked.stdout, checked.stderr);
    let imports = checked.assert_step("imports", "FAIL");
    assert_eq!(imports.lines().count(), 2, "sessions and roster: {imports}");
    assert!(imports.contains("plughost:admin/sessions") && imports.contains("plughost:admin/roster"));
    assert!(!dir.path().join("data").exists(), "plugin check wrote to data_dir");
}

#[test]
fn check_finds_a_route_conflict() {
    let folder = plugins_dir(&["ping", "module"]);
    let checked = check(&plugin_file("conflict"), &["--plugins-dir", path_str(&folder)]);
    assert_eq!(checked.code, 1, "{}{}", checked.stdout, checked.stderr);
    checked.assert_step("manifest", "ok");
    checked.assert_step("routes", "ok");
    let conflicts = checked.assert_step("conflicts", "FAIL");
    assert!(conflicts.contains("route GET /ping is already served by plugin `ping`"), "{conflicts}");
}

#[test]
fn check_says_what_is_not_a_component() {
    let dir = tempfile::tempdir().unwrap();
    let core = dir.path().join("core.wasm");
    std::fs::write(&core, b"\0asm\x01\0\0\0").unwrap();
    let checked = check(&core, &[]);
    assert_eq!(checked.code, 1, "{}{}", checked.stdout, checked.stderr);
    let component = checked.assert_step("component", "FAIL");
    assert!(component.contains("core wasm module") && component.contains("wasm32-wasip2"), "{component}");
    assert!(checked.assert_step("world", "skipped").contains("not a component"));

    let random = dir.path().join("random.wasm");
    let mut bytes = [0u8; 256];
    rand::rng().fill_bytes(&mut bytes);
    std::fs::write(&random, bytes).unwrap();
    let checked = check(&random, &[]);
    assert_eq!(checked.code, 1, "{}{}", checked.stdout, checked.stderr);
    assert!(checked.assert_step("component", "FAIL").contains("not WebAssembly"), "{}", checked.stdout);

    let missing = check(&dir.path().join("missing.wasm"), &[]);
    assert_eq!(missing.code, 2, "{}{}", missing.stdout, missing.stderr);
    assert!(missing.stderr.contains("cannot read"), "{}", missing.stderr);
}

/// Copies the folder `from` to `to`, recursively.
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap_or_else(|e| panic!("creating {}: {e}", to.display()));
    for entry in std::fs::read_dir(from).unwrap_or_else(|e| panic!("reading {}: {e}", from.display())) {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// A workspace with what a plugin crate needs from the checkout (`wit/`, the sdk, the lock file,
/// the root `Cargo.toml` with `plugins/*` as its only members), so that building a generated
/// crate neither touches the checkout nor compiles the host.
fn scratch_workspace() -> tempfile::TempDir {
    let root = workspace_root();
    let scratch = tempfile::Builder::new().prefix("plughost-new-").tempdir().unwrap();
    copy_tree(&root.join("wit"), &scratch.path().join("wit"));
    copy_tree(&root.join("plugins/sdk"), &scratch.path().join("plugins/sdk"));
    std::fs::copy(root.join("Cargo.lock"), scratch.path().join("Cargo.lock")).unwrap();
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
    let mut members = 0;
    let reduced: Vec<&str> = manifest
        .lines()
        .filter(|line| !line.starts_with("default-members"))
        .map(|line| {
            if line.starts_with("members") {
                members += 1;
                r#"members = ["plugins/*"]"#
            } else {
                line
            }
        })
        .collect();
    assert_eq!(members, 1, "the root Cargo.toml has one `members = [...]` line");
    std::fs::write(scratch.path().join("Cargo.toml"), reduced.join("\n")).unwrap();
    scratch
}

/// Runs `plughost plugin new NAME --dir DIR`.
fn new_plugin(name: &str, dir: &Path) -> std::process::Output {
    let mut command = Command::new(plughost_tests::binary());
    command.args(["plugin", "new", name, "--dir"]).arg(dir).output().expect("running plughost")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_plugin_builds_and_serves() {
    let name = "scaffolded";
    let scratch = scratch_workspace();
    let dir = scratch.path().join("plugins").join(name);
    let output = new_plugin(name, &dir);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{output:?}");
    assert!(stdout.contains(&format!("builds it into target/plugins/{name}.wasm")), "{stdout}");
    let again = new_plugin(name, &dir);
    assert!(!again.status.success() && String::from_utf8_lossy(&again.stderr).contains("exists already"));
    let invalid = new_plugin("Shouting", &scratch.path().join("plugins/Shouting"));
    assert!(
        !invalid.status.success()
            && String::from_utf8_lossy(&invalid.stderr).contains("not a valid plugin name")
    );

    // The build the xtask would run for it, in a target folder kept between runs.
    let target = workspace_root().join("target/plugin-new-test");
    let built = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned()))
        .args(["build", "--profile", "plugin", "--target", "wasm32-wasip2", "-p", name])
        .current_dir(scratch.path())
        .env("CARGO_TARGET_DIR", &target)
        .output()
        .expect("running cargo");
    assert!(built.status.success(), "{}", String::from_utf8_lossy(&built.stderr));
    let wasm = target.join(format!("wasm32-wasip2/plugin/{name}.wasm"));

    let host = TestHost::start().await;
    let checked = check(&wasm, &["--name", name, "--plugins-dir", host.plugins_dir().to_str().unwrap()]);
    assert_eq!(checked.code, 0, "{}{}", checked.stdout, checked.stderr);
    assert!(checked.assert_step("imports", "ok").contains("plughost:admin/log@0.1.0"), "{}", checked.stdout);
    let listed =
        checked.stdout.lines().find(|line| line.trim_start().starts_with("GET    /scaffolded/hello"));
    assert!(listed.is_some_and(|line| line.ends_with("reads    Say hello")), "{}", checked.stdout);

    host.write_plugin(name, &std::fs::read(&wasm).unwrap());
    let route = format!("/{name}/hello");
    wait_for("the new plugin to serve", Duration::from_secs(10), || async {
        host.get(&route).await.0 == 200
    })
    .await;
    assert_eq!(host.get(&route).await, (200, json!({"result": format!("Hello from {name}")})));
}
