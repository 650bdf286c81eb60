//! The `tollgate` binary: everything it does is in the library's [`tollgate::cli`].

fn main() -> std::process::ExitCode {
    tollgate::cli::main()
}
