//! `cargo xtask`: the project's automation, in Rust, behind one command (the cargo-xtask pattern).
//!
//! # Commands
//! - `build [--features F]`: the release host at `target/release/plughost` and every plugin of
//!   `plugins/` at `target/plugins/<name>.wasm`.
//! - `run [-- ARGS]`: `build`, then `plughost serve --config plughost.toml ARGS`.
//! - `test [ARGS]`: `build`, the test fixtures of `tests/plugins/` at `target/test-plugins/`, the
//!   PyPI tools of `tests/requirements.txt` in `target/py`, Chromium and ChromeDriver (installed
//!   with apt-get when missing), then
//!   `cargo test --release -p plughost -p plughost-wire -p plughost-tests -p sdk ARGS`, then
//!   `fuzz` for `PLUGHOST_FUZZ_SECONDS` (default 60, 0 skips it) per target.
//! - `fuzz [--seconds N] [TARGET...]`: each cargo-fuzz target of `fuzz/` (all by default) for N
//!   seconds (default 60), seeded with its checked-in corpus; fails on the first crash.
//! - `bench [ARGS]`: `build --features bench-native`, the fixtures, the `bench` and `baseline`
//!   binaries of `plughost-tests`, then `bench` with ARGS (`--quick` for a short run, `--report`
//!   to write `target/bench-report.md`).
//!
//! Paths under `target/` are a contract with scripts outside the repo: they are always relative to
//! the workspace root, even when `CARGO_TARGET_DIR` points elsewhere (then the outputs are copied
//! back). Every copy goes through a temp file and a rename, so that a plugins-folder watcher never
//! sees half a file and a running binary is never overwritten in place.

use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use serde_json::Value;

/// The wasm target every plugin is built for.
const WASM_TARGET: &str = "wasm32-wasip2";

/// The cargo profile of plugins (small and quick to compile; see the root `Cargo.toml`).
const PLUGIN_PROFILE: &str = "plugin";

/// The cargo-fuzz that `fuzz` installs when there is none.
const CARGO_FUZZ_VERSION: &str = "0.13.1";

/// How long `fuzz` runs each target unless told otherwise; `test` too, unless
/// `PLUGHOST_FUZZ_SECONDS` says otherwise.
const FUZZ_SECONDS: u64 = 60;

const USAGE: &str = "\
usage: cargo xtask <command>

commands:
  build [--features F]   build the release host and every plugin into target/
  run [-- ARGS]          build, then `plughost serve --config plughost.toml ARGS`
  test [ARGS]            build the host, plugins and test fixtures, then
                         `cargo test --release -p plughost -p plughost-wire -p plughost-tests ARGS`,
                         then `fuzz` for PLUGHOST_FUZZ_SECONDS (default 60, 0 skips) per target
  fuzz [--seconds N] [TARGET...]
                         run each fuzz target of fuzz/ (all by default) for N seconds (default 60)
  bench [ARGS]           build with the bench-native feature, then run the bench
                         (ARGS: --quick, --report to write target/bench-report.md)";

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (command, rest) = args.split_first().map_or(("help", &[][..]), |(c, r)| (c.as_str(), r));
    match command {
        "build" => {
            let features = match rest {
                [] => None,
                [flag, features] if flag == "--features" => Some(features.as_str()),
                _ => bail!("usage: cargo xtask build [--features F]"),
            };
            Workspace::load()?.build(features)
        }
        "run" => {
            let workspace = Workspace::load()?;
            workspace.build(None)?;
            workspace.serve(rest.strip_prefix(&["--".to_owned()]).unwrap_or(rest))
        }
        "test" => {
            let workspace = Workspace::load()?;
            workspace.build(None)?;
            workspace.build_fixtures()?;
            workspace.python_tools()?;
            ensure_browser()?;
            let mut test = workspace.cargo();
            test.args([
                "test",
                "--release",
                "-p",
                "plughost",
                "-p",
                "plughost-wire",
                "-p",
                "plughost-tests",
                "-p",
                "sdk",
            ])
            .args(rest);
            run(&mut test)?;
            let seconds = match std::env::var("PLUGHOST_FUZZ_SECONDS") {
                Ok(seconds) => seconds.parse().context("PLUGHOST_FUZZ_SECONDS is a number of seconds")?,
                Err(_) => FUZZ_SECONDS,
            };
            if seconds == 0 {
                println!("PLUGHOST_FUZZ_SECONDS=0: not fuzzing");
                return Ok(());
            }
            workspace.fuzz(seconds, &[])
        }
        "fuzz" => {
            let (seconds, targets) = match rest {
                [flag, seconds, targets @ ..] if flag == "--seconds" => {
                    (seconds.parse().context("--seconds takes a number")?, targets)
                }
                targets => (FUZZ_SECONDS, targets),
            };
            Workspace::load()?.fuzz(seconds, targets)
        }
        "bench" => {
            let workspace = Workspace::load()?;
            workspace.build(Some("bench-native"))?;
            workspace.build_fixtures()?;
            // Built in one step into one folder: the bench starts `baseline` from next to itself.
            let mut build = workspace.cargo();
            build.args(["build", "--release", "-p", "plughost-tests", "--bin", "bench", "--bin", "baseline"]);
            run(&mut build)?;
            let mut bench = Command::new(workspace.target_dir.join("release").join("bench"));
            run(bench.current_dir(&workspace.root).args(rest))
        }
        "help" | "-h" | "--help" => {
            println!("{USAGE}");
            Ok(())
        }
        other => bail!("unknown command {other:?}\n{USAGE}"),
    }
}

/// The workspace as `cargo metadata` describes it.
struct Workspace {
    /// The folder of the root `Cargo.toml`.
    root: PathBuf,
    /// Where cargo writes its outputs: `root/target` unless `CARGO_TARGET_DIR` says otherwise.
    target_dir: PathBuf,
    /// Every workspace member.
    packages: Vec<Package>,
}

/// One workspace member.
struct Package {
    name: String,
    /// The folder of its `Cargo.toml`.
    dir: PathBuf,
    /// The name of its `cdylib` target (the wasm file stem), if it has one.
    cdylib: Option<String>,
}

impl Workspace {
    fn load() -> Result<Self> {
        let output = Command::new(cargo_program())
            .args(["metadata", "--format-version", "1", "--no-deps"])
            .output()
            .context("running cargo metadata")?;
        if !output.status.success() {
            bail!("cargo metadata failed:\n{}", String::from_utf8_lossy(&output.stderr));
        }
        let metadata: Value = serde_json::from_slice(&output.stdout).context("parsing cargo metadata")?;
        let text = |value: &Value| value.as_str().map(str::to_owned);
        let root = text(&metadata["workspace_root"]).context("no workspace_root")?;
        let target_dir = text(&metadata["target_directory"]).context("no target_directory")?;
        let mut packages = Vec::new();
        for package in metadata["packages"].as_array().context("no packages")? {
            let manifest = text(&package["manifest_path"]).context("no manifest_path")?;
            let cdylib = package["targets"].as_array().into_iter().flatten().find(|target| {
                target["crate_types"]
                    .as_array()
                    .is_some_and(|types| types.iter().any(|kind| kind == "cdylib"))
            });
            packages.push(Package {
                name: text(&package["name"]).context("package without a name")?,
                dir: PathBuf::from(manifest).parent().context("manifest_path")?.to_owned(),
                cdylib: cdylib.and_then(|target| text(&target["name"])),
            });
        }
        Ok(Self { root: root.into(), target_dir: target_dir.into(), packages })
    }

    /// A `cargo` command run from the workspace root.
    fn cargo(&self) -> Command {
        let mut command = Command::new(cargo_program());
        command.current_dir(&self.root);
        command
    }

    /// `target/` of the workspace root, where the contract puts every output.
    fn out_dir(&self) -> PathBuf {
        self.root.join("target")
    }

    /// Builds the release host and every plugin of `plugins/`.
    fn build(&self, features: Option<&str>) -> Result<()> {
        ensure_wasm_target()?;
        let mut host = self.cargo();
        host.args(["build", "--release", "-p", "plughost"]);
        if let Some(features) = features {
            host.args(["--features", features]);
        }
        run(&mut host)?;
        let binary = self.target_dir.join("release").join("plughost");
        let installed = self.out_dir().join("release").join("plughost");
        if !same_file(&binary, &installed) {
            install(&binary, &installed)?;
        }
        println!("built {}", self.relative(&installed));

        let plugins = self.cdylibs_under("plugins");
        self.build_wasm(&plugins, &[])?;
        for package in &plugins {
            self.install_wasm(package, &self.out_dir().join("plugins"), &package.name)?;
        }
        Ok(())
    }

    /// Builds the test-only plugins of `tests/plugins/` into `target/test-plugins/`. `echo` is
    /// built twice, with `PLUGHOST_ECHO_VERSION` 1 (`echo.wasm`) and 2 (`echo-v2.wasm`), so that
    /// the tests can swap two versions of one plugin.
    fn build_fixtures(&self) -> Result<()> {
        let fixtures = self.cdylibs_under("tests/plugins");
        if fixtures.is_empty() {
            println!("no fixture plugins under tests/plugins/");
            return Ok(());
        }
        let out = self.out_dir().join("test-plugins");
        self.build_wasm(&fixtures, &[("PLUGHOST_ECHO_VERSION", "1")])?;
        for package in &fixtures {
            self.install_wasm(package, &out, &package.name)?;
        }
        if let Some(echo) = fixtures.iter().find(|package| package.name == "echo") {
            self.build_wasm(&[echo], &[("PLUGHOST_ECHO_VERSION", "2")])?;
            self.install_wasm(echo, &out, "echo-v2")?;
        }
        Ok(())
    }

    /// The PyPI tools of `tests/requirements.txt` in the virtual environment `target/py`,
    /// installed again only when that file changes.
    fn python_tools(&self) -> Result<()> {
        let requirements = self.root.join("tests").join("requirements.txt");
        let wanted = fs::read_to_string(&requirements).context("reading tests/requirements.txt")?;
        let venv = self.out_dir().join("py");
        let installed = venv.join("requirements.installed");
        if fs::read_to_string(&installed).is_ok_and(|done| done == wanted) {
            return Ok(());
        }
        run(Command::new("python3").args(["-m", "venv"]).arg(&venv))
            .context("python3 with the venv module is needed for the test tools")?;
        run(Command::new(venv.join("bin").join("pip"))
            .args(["install", "--quiet", "--disable-pip-version-check", "-r"])
            .arg(&requirements))?;
        fs::write(&installed, wanted)?;
        println!("installed the test tools of tests/requirements.txt into {}", self.relative(&venv));
        Ok(())
    }

    /// The members with a `cdylib` target whose folder is under `folder` (relative to the root).
    fn cdylibs_under(&self, folder: &str) -> Vec<&Package> {
        let folder = self.root.join(folder);
        let mut found: Vec<&Package> = self
            .packages
            .iter()
            .filter(|package| package.cdylib.is_some() && package.dir.starts_with(&folder))
            .collect();
        found.sort_by(|a, b| a.name.cmp(&b.name));
        found
    }

    /// One `cargo build` for all `packages`, so that shared crates compile once.
    fn build_wasm(&self, packages: &[&Package], env: &[(&str, &str)]) -> Result<()> {
        if packages.is_empty() {
            return Ok(());
        }
        let mut build = self.cargo();
        build.args(["build", "--profile", PLUGIN_PROFILE, "--target", WASM_TARGET]);
        for package in packages {
            build.args(["-p", &package.name]);
        }
        build.envs(env.iter().copied());
        run(&mut build)
    }

    /// Copies the wasm of `package` to `folder/<stem>.wasm`.
    fn install_wasm(&self, package: &Package, folder: &Path, stem: &str) -> Result<()> {
        let lib = package.cdylib.as_deref().unwrap_or(&package.name);
        let built = self.target_dir.join(WASM_TARGET).join(PLUGIN_PROFILE).join(format!("{lib}.wasm"));
        let installed = folder.join(format!("{stem}.wasm"));
        install(&built, &installed)?;
        let size = fs::metadata(&installed)?.len();
        println!("built {} ({} KiB)", self.relative(&installed), size.div_ceil(1024));
        Ok(())
    }

    /// Replaces this process with `plughost serve --config plughost.toml ARGS`.
    fn serve(&self, args: &[String]) -> Result<()> {
        let mut serve = Command::new(self.out_dir().join("release").join("plughost"));
        serve.current_dir(&self.root).args(["serve", "--config", "plughost.toml"]).args(args);
        println!("starting: {}", describe(&serve));
        #[cfg(unix)]
        {
            use std::os::unix::process::CommandExt;
            Err(serve.exec()).context("starting target/release/plughost")
        }
        #[cfg(not(unix))]
        run(&mut serve)
    }

    /// Builds every fuzz target of `fuzz/` in one `cargo fuzz build`, then runs each of `targets`
    /// (all when empty) for `seconds`. The checked-in corpus only seeds the run: what the fuzzer
    /// finds goes to a scratch folder, so the tree stays clean. The build goes to `fuzz/` under the
    /// target folder, which outlives the clone like the main build (the sanitizer build is long).
    fn fuzz(&self, seconds: u64, targets: &[String]) -> Result<()> {
        let fuzz_dir = self.root.join("fuzz");
        let known = fuzz_targets(&fuzz_dir)?;
        let targets: Vec<&String> =
            if targets.is_empty() { known.iter().collect() } else { targets.iter().collect() };
        if let Some(unknown) = targets.iter().find(|target| !known.contains(target)) {
            bail!("no fuzz target {unknown:?}; there are {known:?}");
        }
        ensure_cargo_fuzz()?;
        let build_dir = self.target_dir.join("fuzz");
        let started = std::time::Instant::now();
        run(self.cargo_fuzz(&build_dir).args(["build", "--debug-assertions"]))?;
        println!("built the fuzz targets in {:.0?}", started.elapsed());
        for target in targets {
            let seeds = fuzz_dir.join("corpus").join(target);
            let found = self.target_dir.join("fuzz-corpus").join(target);
            if found.exists() {
                fs::remove_dir_all(&found).with_context(|| format!("emptying {}", found.display()))?;
            }
            fs::create_dir_all(&found).with_context(|| format!("creating {}", found.display()))?;
            let started = std::time::SystemTime::now();
            let mut fuzz = self.cargo_fuzz(&build_dir);
            fuzz.args(["run", "--debug-assertions", target.as_str()]).arg(&found).arg(&seeds).args([
                "--",
                &format!("-max_total_time={seconds}"),
                "-timeout=10",
                "-print_final_stats=1",
            ]);
            if let Err(error) = run(&mut fuzz) {
                let artifacts = fuzz_dir.join("artifacts").join(target);
                for artifact in newer_files(&artifacts, started) {
                    let artifact = self.relative(&artifact);
                    println!("fuzz target {target} failed on {artifact}");
                    println!(
                        "reproduce: RUSTC_BOOTSTRAP=1 cargo fuzz run --debug-assertions {target} {artifact}"
                    );
                }
                return Err(error);
            }
            fs::remove_dir_all(&found).with_context(|| format!("removing {}", found.display()))?;
        }
        Ok(())
    }

    /// `cargo fuzz` from the workspace root, building into `build_dir`; the stable toolchain
    /// accepts the sanitizer flags cargo-fuzz passes with `RUSTC_BOOTSTRAP=1`.
    fn cargo_fuzz(&self, build_dir: &Path) -> Command {
        let mut command = self.cargo();
        command.arg("fuzz").env("RUSTC_BOOTSTRAP", "1").env("CARGO_TARGET_DIR", build_dir);
        command
    }

    fn relative<'a>(&self, path: &'a Path) -> std::path::Display<'a> {
        path.strip_prefix(&self.root).unwrap_or(path).display()
    }
}

/// Adds the wasm target with rustup when it is not installed yet.
fn ensure_wasm_target() -> Result<()> {
    let Ok(installed) = Command::new("rustup").args(["target", "list", "--installed"]).output() else {
        println!("rustup not found; assuming the {WASM_TARGET} target is installed");
        return Ok(());
    };
    if String::from_utf8_lossy(&installed.stdout).lines().any(|line| line.trim() == WASM_TARGET) {
        return Ok(());
    }
    run(Command::new("rustup").args(["target", "add", WASM_TARGET]))
}

/// Where Debian's Chromium and ChromeDriver are, which the console tests drive.
const BROWSER_FILES: [&str; 2] = ["/usr/bin/chromium", "/usr/bin/chromedriver"];

/// The Debian packages of [`BROWSER_FILES`].
const BROWSER_PACKAGES: [&str; 2] = ["chromium", "chromium-driver"];

/// Installs Chromium and ChromeDriver with apt-get when either is missing and this runs as root;
/// otherwise fails naming the packages, rather than letting every console test fail.
fn ensure_browser() -> Result<()> {
    if BROWSER_FILES.iter().all(|file| Path::new(file).exists()) {
        return Ok(());
    }
    let root = Command::new("id").arg("-u").output().is_ok_and(|id| id.stdout.trim_ascii() == b"0");
    let packages = BROWSER_PACKAGES.join(" ");
    if !root {
        bail!("the console tests need Chromium and ChromeDriver: run `apt-get install {packages}` as root");
    }
    run(Command::new("apt-get").arg("update"))?;
    run(Command::new("apt-get")
        .args(["install", "-y", "--no-install-recommends"])
        .args(BROWSER_PACKAGES)
        .env("DEBIAN_FRONTEND", "noninteractive"))
    .with_context(|| format!("installing {packages} for the console tests"))
}

/// Installs cargo-fuzz (a pinned version) when `cargo fuzz` is not there.
fn ensure_cargo_fuzz() -> Result<()> {
    let present = Command::new(cargo_program())
        .args(["fuzz", "--version"])
        .output()
        .is_ok_and(|output| output.status.success());
    if present {
        return Ok(());
    }
    run(Command::new(cargo_program()).args([
        "install",
        "cargo-fuzz",
        "--locked",
        "--version",
        CARGO_FUZZ_VERSION,
    ]))
}

/// The targets of the cargo-fuzz crate at `fuzz_dir`: the stems of `fuzz_targets/*.rs`, sorted.
fn fuzz_targets(fuzz_dir: &Path) -> Result<Vec<String>> {
    let folder = fuzz_dir.join("fuzz_targets");
    let mut targets = Vec::new();
    for entry in fs::read_dir(&folder).with_context(|| format!("reading {}", folder.display()))? {
        let path = entry?.path();
        if path.extension() == Some(OsStr::new("rs"))
            && let Some(stem) = path.file_stem().and_then(OsStr::to_str)
        {
            targets.push(stem.to_owned());
        }
    }
    targets.sort();
    Ok(targets)
}

/// The files of `folder` modified since `since` (none when the folder does not exist).
fn newer_files(folder: &Path, since: std::time::SystemTime) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(folder) else { return Vec::new() };
    entries
        .filter_map(|entry| Some(entry.ok()?.path()))
        .filter(|path| fs::metadata(path).and_then(|meta| meta.modified()).is_ok_and(|time| time >= since))
        .collect()
}

/// Copies `from` to `to` through a temp file in the destination folder and a rename.
fn install(from: &Path, to: &Path) -> Result<()> {
    let folder = to.parent().context("destination without a folder")?;
    fs::create_dir_all(folder).with_context(|| format!("creating {}", folder.display()))?;
    let name = to.file_name().and_then(OsStr::to_str).context("destination without a name")?;
    let temp = folder.join(format!(".{name}.{}.tmp", std::process::id()));
    fs::copy(from, &temp).with_context(|| format!("copying {}", from.display()))?;
    fs::rename(&temp, to).with_context(|| format!("renaming to {}", to.display()))?;
    Ok(())
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// Runs `command`, echoing it first, and fails unless it exits with 0.
fn run(command: &mut Command) -> Result<()> {
    println!("$ {}", describe(command));
    let status = command.status().with_context(|| format!("starting {}", describe(command)))?;
    if !status.success() {
        bail!("`{}` failed: {status}", describe(command));
    }
    Ok(())
}

fn describe(command: &Command) -> String {
    let mut words = vec![command.get_program().to_string_lossy().into_owned()];
    words.extend(command.get_args().map(|arg| arg.to_string_lossy().into_owned()));
    let env: Vec<String> = command
        .get_envs()
        .filter_map(|(key, value)| Some(format!("{}={}", key.to_str()?, value?.to_str()?)))
        .collect();
    if env.is_empty() { words.join(" ") } else { format!("{} {}", env.join(" "), words.join(" ")) }
}

/// The cargo that runs this xtask, so that the same toolchain builds everything.
fn cargo_program() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned())
}
