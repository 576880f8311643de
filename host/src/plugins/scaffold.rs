//! `plughost plugin new`: writes a new plugin crate from the template in `host/templates/plugin/`
//! (compiled into the binary), inside a Plughost checkout, so that the crate finds the sdk and the
//! WIT contract by relative path and is a workspace member through the `plugins/*` glob. It
//! touches nothing outside the new folder.

use std::path::{Component, Path, PathBuf};

use super::{ModuleError, validate_name};

const CARGO_TOML: &str = include_str!("../../templates/plugin/Cargo.toml.in");
const LIB_RS: &str = include_str!("../../templates/plugin/lib.rs.in");

/// Why no crate was written.
#[derive(Debug, thiserror::Error)]
pub enum ScaffoldError {
    #[error(transparent)]
    InvalidName(#[from] ModuleError),
    #[error("`{0}` starts with a digit, which a Rust crate name cannot")]
    LeadingDigit(String),
    #[error("{0} exists already")]
    Exists(PathBuf),
    #[error("cannot find the folder {0}")]
    NoParent(PathBuf),
    #[error(
        "{0} is not inside a Plughost checkout (a folder with wit/ and plugins/sdk/); run this in one, or pass --dir"
    )]
    NoCheckout(PathBuf),
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
}

/// A crate written by [`write`].
#[derive(Debug)]
pub struct Scaffold {
    /// The crate's folder.
    pub dir: PathBuf,
    /// The checkout it belongs to.
    pub checkout: PathBuf,
    /// Whether `dir` is `<checkout>/plugins/<name>`: a workspace member that `cargo xtask build`
    /// builds into `target/plugins/<name>.wasm`.
    pub in_plugins: bool,
}

/// Writes the crate of plugin `name` into `dir`, by default `plugins/<name>` of the checkout
/// that holds `cwd`.
pub fn write(name: &str, dir: Option<&Path>, cwd: &Path) -> Result<Scaffold, ScaffoldError> {
    validate_name(name)?;
    if name.starts_with(|c: char| c.is_ascii_digit()) {
        return Err(ScaffoldError::LeadingDigit(name.to_owned()));
    }
    let (dir, checkout) = match dir {
        Some(dir) => {
            let dir = cwd.join(dir);
            let parent = dir.parent().ok_or_else(|| ScaffoldError::NoParent(dir.clone()))?;
            let parent = parent.canonicalize().map_err(|_| ScaffoldError::NoParent(parent.to_owned()))?;
            let dir = parent.join(dir.file_name().ok_or_else(|| ScaffoldError::NoParent(dir.clone()))?);
            let checkout = checkout_of(&parent).ok_or_else(|| ScaffoldError::NoCheckout(dir.clone()))?;
            (dir, checkout)
        }
        None => {
            let cwd = cwd.canonicalize().map_err(|_| ScaffoldError::NoParent(cwd.to_owned()))?;
            let checkout = checkout_of(&cwd).ok_or(ScaffoldError::NoCheckout(cwd))?;
            (checkout.join("plugins").join(name), checkout)
        }
    };
    if dir.exists() {
        return Err(ScaffoldError::Exists(dir));
    }
    // Every component below the checkout is a plain folder name: `dir` was built from a
    // canonical parent, so `..` cannot occur.
    let depth = dir.strip_prefix(&checkout).map_or(0, |below| {
        below.components().filter(|component| matches!(component, Component::Normal(_))).count()
    });
    let up = vec![".."; depth].join("/");
    let fill = |template: &str| template.replace("{{name}}", name).replace("{{checkout}}", &up);
    write_file(&dir.join("Cargo.toml"), &fill(CARGO_TOML))?;
    write_file(&dir.join("src").join("lib.rs"), &fill(LIB_RS))?;
    let in_plugins = dir == checkout.join("plugins").join(name);
    Ok(Scaffold { dir, checkout, in_plugins })
}

/// The nearest folder from `start` upwards that holds `wit/` and `plugins/sdk/`.
fn checkout_of(start: &Path) -> Option<PathBuf> {
    start
        .ancestors()
        .find(|folder| folder.join("wit").is_dir() && folder.join("plugins/sdk/Cargo.toml").is_file())
        .map(Path::to_path_buf)
}

fn write_file(path: &Path, contents: &str) -> Result<(), ScaffoldError> {
    let written =
        path.parent().map_or(Ok(()), std::fs::create_dir_all).and_then(|()| std::fs::write(path, contents));
    written.map_err(|source| ScaffoldError::Write { path: path.to_owned(), source })
}
