//! The `ume` command: a thin shell over [`ume::cli`].

fn main() -> std::process::ExitCode {
    ume::cli::main()
}
