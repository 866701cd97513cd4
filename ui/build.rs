//! Builds the web UI of `ui/app` and writes `$OUT_DIR/assets.rs`, the table of files that
//! `src/lib.rs` embeds. It never breaks `cargo build` unless asked to:
//!
//! 1. `CAIRN_UI_DIST=<dir>`: that directory, a built UI (`index.html`, `assets/`), as it is.
//! 2. Else with `npm` on `PATH`: `npm ci` in `ui/app` when `node_modules` is older than
//!    `package-lock.json`, then `npm run build` into `$OUT_DIR/ui` (`CAIRN_UI_OUT`, read by
//!    `vite.config.ts`). A lock file serialises builds that share `ui/app`.
//! 3. Else, or when that fails: a warning, and a placeholder `index.html` that says what to do
//!    and why; the binary and its API work all the same. `CAIRN_UI_REQUIRED=1` (CI) makes this
//!    a build error instead.
//!
//! Each file is then gzipped at the best level (kept where it is smaller) and hashed for its
//! ETag, so that serving a file costs no CPU.

use std::env;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::SystemTime;

use flate2::write::GzEncoder;
use flate2::Compression;

#[path = "src/content_type.rs"]
mod content_type;
#[path = "src/placeholder.rs"]
mod placeholder;

/// A directory holding a built UI, used instead of building one.
const DIST: &str = "CAIRN_UI_DIST";
/// `1`: a UI that cannot be built fails the build instead of becoming a placeholder.
const REQUIRED: &str = "CAIRN_UI_REQUIRED";
/// Where `vite.config.ts` writes the build.
const OUT: &str = "CAIRN_UI_OUT";

/// The inputs of `npm run build` below `ui/app`; a change to any rebuilds the UI.
const INPUTS: &[&str] = &[
    "src",
    "public",
    "index.html",
    "package.json",
    "package-lock.json",
    "vite.config.ts",
    "tsconfig.json",
];

/// How many lines of a failed command's output the warning and the placeholder show.
const OUTPUT_LINES: usize = 40;

fn main() -> ExitCode {
    println!("cargo:rerun-if-env-changed={DIST}");
    println!("cargo:rerun-if-env-changed={REQUIRED}");
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let crate_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let (dist, placeholder) = match built_ui(&crate_dir, &out) {
        Ok(dist) => (dist, false),
        Err(reason) => {
            if env::var(REQUIRED).is_ok_and(|v| v == "1" || v == "true") {
                eprintln!("error: the web UI could not be built ({REQUIRED}=1):\n{reason}");
                return ExitCode::FAILURE;
            }
            let mut lines = reason.lines();
            println!(
                "cargo:warning=the web UI was not built, the binary serves a placeholder page \
                 instead (install Node 20.19+ and npm, then `cargo build` again; see ui/README.md): {}",
                lines.next().unwrap_or_default()
            );
            for line in lines.take(15) {
                println!("cargo:warning=  {line}");
            }
            (write_placeholder(&out.join("ui"), &reason), true)
        }
    };
    let table = embed(&dist, &out.join("gz"), placeholder);
    fs::write(out.join("assets.rs"), table).expect("write assets.rs");
    ExitCode::SUCCESS
}

/// The directory of the built UI, or why there is none.
fn built_ui(crate_dir: &Path, out: &Path) -> Result<PathBuf, String> {
    if let Some(dist) = env::var_os(DIST) {
        // Relative to the workspace root, where `cargo` is usually run.
        let dist = crate_dir.join("..").join(dist);
        let dist = fs::canonicalize(&dist).unwrap_or(dist);
        println!("cargo:rerun-if-changed={}", dist.display());
        return with_index(dist, DIST);
    }
    let app = crate_dir.join("app");
    for input in INPUTS {
        let path = app.join(input);
        if path.exists() {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }
    let Some(npm) = on_path("npm") else {
        // Installing Node changes a directory of PATH: then the UI is built.
        println!("cargo:rerun-if-env-changed=PATH");
        for dir in env::split_paths(&env::var_os("PATH").unwrap_or_default()) {
            if dir.is_absolute() && dir.is_dir() {
                println!("cargo:rerun-if-changed={}", dir.display());
            }
        }
        return Err("npm is not on PATH".into());
    };
    let _lock = lock(&app);
    install(&app, &npm)?;
    let dest = out.join("ui");
    remove_dir(&dest);
    let mut build = Command::new(&npm);
    build.args(["run", "build"]).env(OUT, &dest);
    run(&mut build, &app, "npm run build")?;
    with_index(dest, "npm run build")
}

/// `dir` if it holds an `index.html`.
fn with_index(dir: PathBuf, from: &str) -> Result<PathBuf, String> {
    if dir.join("index.html").is_file() {
        Ok(dir)
    } else {
        Err(format!("{from}: no index.html in {}", dir.display()))
    }
}

/// `npm ci` unless `node_modules` was installed after the last change of `package-lock.json`:
/// by this script (its stamp), or by hand (npm's own `node_modules/.package-lock.json`).
fn install(app: &Path, npm: &Path) -> Result<(), String> {
    let modules = app.join("node_modules");
    let stamp = modules.join(".cairn-npm-ci");
    let lock =
        modified(&app.join("package-lock.json")).ok_or("ui/app/package-lock.json is missing")?;
    let fresh = |path: &Path| modified(path).is_some_and(|t| t >= lock);
    if !fresh(&stamp) && !fresh(&modules.join(".package-lock.json")) {
        let mut ci = Command::new(npm);
        ci.args(["ci", "--no-audit", "--no-fund"]);
        run(&mut ci, app, "npm ci --no-audit --no-fund")?;
    }
    if !fresh(&stamp) {
        File::create(&stamp).map_err(|e| format!("{}: {e}", stamp.display()))?;
    }
    Ok(())
}

/// Runs `command` in `dir`; its failure with the end of its output.
fn run(command: &mut Command, dir: &Path, what: &str) -> Result<(), String> {
    // Cargo's `DEBUG` (true or false) would turn on the debug logs of Node tools.
    let output = command
        .current_dir(dir)
        .env_remove("DEBUG")
        .output()
        .map_err(|e| format!("could not run `{what}`: {e}"))?;
    if output.status.success() {
        return Ok(());
    }
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    // Without blank lines and Node's stack frames (`    at …`).
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with("at "))
        .collect();
    let tail = &lines[lines.len().saturating_sub(OUTPUT_LINES)..];
    Err(format!(
        "`{what}` in {} failed ({}):\n{}",
        dir.display(),
        output.status,
        tail.join("\n")
    ))
}

/// An exclusive lock shared by every build of this `ui/app` (whatever its target directory),
/// held until dropped; none if the lock file cannot be opened.
fn lock(app: &Path) -> Option<File> {
    let key = blake3::hash(app.display().to_string().as_bytes()).to_hex();
    let path = env::temp_dir().join(format!("cairn-ui-build-{}.lock", &key[..16]));
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .ok()?;
    file.lock().ok()?;
    Some(file)
}

/// The executable `name` in a directory of `PATH`.
fn on_path(name: &str) -> Option<PathBuf> {
    let names: &[String] = &if cfg!(windows) {
        vec![format!("{name}.cmd"), format!("{name}.exe")]
    } else {
        vec![name.to_owned()]
    };
    env::split_paths(&env::var_os("PATH")?)
        .flat_map(|dir| names.iter().map(move |n| dir.join(n)))
        .find(|p| is_executable(p))
}

#[cfg(unix)]
fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(not(unix))]
fn is_executable(path: &Path) -> bool {
    path.is_file()
}

fn modified(path: &Path) -> Option<SystemTime> {
    fs::metadata(path).and_then(|m| m.modified()).ok()
}

fn remove_dir(dir: &Path) {
    if let Err(e) = fs::remove_dir_all(dir) {
        assert!(
            e.kind() == std::io::ErrorKind::NotFound,
            "remove {}: {e}",
            dir.display()
        );
    }
}

/// Writes the placeholder `index.html` into `dir` (emptied first); returns `dir`.
fn write_placeholder(dir: &Path, reason: &str) -> PathBuf {
    remove_dir(dir);
    fs::create_dir_all(dir).expect("create the placeholder directory");
    fs::write(dir.join("index.html"), placeholder::page(reason)).expect("write the placeholder");
    dir.to_path_buf()
}

/// The Rust source of the table of the files under `dist`, their gzipped copies written under
/// `gz`: `FILES` sorted by path, `INDEX` the position of `index.html`, `PLACEHOLDER`.
fn embed(dist: &Path, gz: &Path, placeholder: bool) -> String {
    remove_dir(gz);
    let mut files = Vec::new();
    walk(dist, dist, &mut files);
    files.sort();
    let mut table = format!(
        "// Written by ui/build.rs from {}.\n\n\
         /// Whether the UI could not be built and `index.html` is the placeholder page.\n\
         pub(crate) const PLACEHOLDER: bool = {placeholder};\n\n\
         /// The position of `index.html` in [`FILES`].\n\
         pub(crate) const INDEX: usize = {};\n\n\
         /// Every file of the UI, sorted by path.\n\
         pub(crate) static FILES: &[Asset] = &[\n",
        dist.display(),
        files
            .iter()
            .position(|(name, _)| name == "index.html")
            .expect("index.html checked before")
    );
    for (name, path) in &files {
        let raw = fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        let hash = blake3::hash(&raw).to_hex();
        let etag = format!("\"{}\"", &hash[..20]);
        let gzip_etag = format!("\"{}-gz\"", &hash[..20]);
        let gzip = gzipped(name, &raw).map(|bytes| {
            let to = gz.join(format!("{name}.gz"));
            fs::create_dir_all(to.parent().expect("a file's directory")).expect("create gz dir");
            fs::write(&to, bytes).unwrap_or_else(|e| panic!("write {}: {e}", to.display()));
            format!("Some(include_bytes!({:?}))", utf8(&to))
        });
        table.push_str(&format!(
            "    Asset {{\n        path: {name:?},\n        content_type: {:?},\n        \
             etag: {etag:?},\n        gzip_etag: {gzip_etag:?},\n        \
             raw: include_bytes!({:?}),\n        gzip: {},\n    }},\n",
            content_type::of(name),
            utf8(path),
            gzip.as_deref().unwrap_or("None"),
        ));
    }
    table.push_str("];\n");
    table
}

/// `raw` gzipped at the best level, if that makes it smaller.
fn gzipped(name: &str, raw: &[u8]) -> Option<Vec<u8>> {
    if !content_type::compressible(name) {
        return None;
    }
    let mut encoder = GzEncoder::new(Vec::new(), Compression::best());
    encoder.write_all(raw).expect("gzip into memory");
    let bytes = encoder.finish().expect("gzip into memory");
    (bytes.len() < raw.len()).then_some(bytes)
}

/// Every file below `dir`: (its path relative to `root` with `/` separators, its path).
fn walk(root: &Path, dir: &Path, files: &mut Vec<(String, PathBuf)>) {
    let entries = fs::read_dir(dir).unwrap_or_else(|e| panic!("read {}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            walk(root, &path, files);
        } else {
            let relative = path.strip_prefix(root).expect("below the root");
            let name = utf8(relative).replace(std::path::MAIN_SEPARATOR, "/");
            files.push((name, path));
        }
    }
}

fn utf8(path: &Path) -> &str {
    path.to_str()
        .unwrap_or_else(|| panic!("not UTF-8: {}", path.display()))
}
