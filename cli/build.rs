// Records the git commit moor was built from, for `moor --version`.
fn main() {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let commit = git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=MOOR_COMMIT={commit}");
    // Rerun when HEAD or a branch moves. git names the files: in a worktree HEAD lives in the
    // main repository's git directory, and a path that does not exist would rerun this script
    // (and rebuild the binary) on every build.
    for file in ["HEAD", "refs/heads", "packed-refs"] {
        if let Some(path) = git(&["rev-parse", "--git-path", file]).filter(|p| std::path::Path::new(p).exists()) {
            println!("cargo:rerun-if-changed={path}");
        }
    }
}
