//! `plughost plugin check FILE`: one line per check, exit 0 / 1 / 2.

use std::path::Path;
use std::process::Command;

use plughost_tests::plugin_file;
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
    assert!(listed.is_some_and(|line| line.ends_with("reads")), "{}", checked.stdout);
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
