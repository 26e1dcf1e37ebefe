//! The `gtmd` binary: everything lives in the library; see `gtmd --help`.

fn main() -> std::process::ExitCode {
    gtmd::cli::main()
}
