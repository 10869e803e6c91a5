//! The `ume` command: a thin shell over [`ume::cli`].

fn main() -> std::process::ExitCode {
    // Burn builds a resumed optimiser state on its default device, which
    // is wgpu whenever that backend is compiled in: `ume train --resume` on
    // the CPU then started a GPU context for nothing (on a headless
    // machine, with Vulkan's errors printed). Every UME model names its
    // device explicitly, so Burn's default is made the CPU backend unless
    // the user chose one; the state moves to the training device on the
    // first step either way.
    if std::env::var_os("BURN_DEVICE").is_none() {
        // SAFETY: the first statement of `main`; no other thread exists
        // yet that could read the environment concurrently.
        #[allow(unsafe_code)]
        unsafe {
            std::env::set_var("BURN_DEVICE", "flex");
        }
    }
    ume::cli::main()
}
