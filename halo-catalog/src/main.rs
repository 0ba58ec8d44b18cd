//! The `halo-catalog` command-line tool; everything lives in `halo_catalog::cli`.

fn main() -> std::process::ExitCode {
    halo_catalog::cli::main()
}
