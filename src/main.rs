//! The `tollgate` binary: command-line parsing and start-up. See the library for the parts.

fn main() {
    eprintln!("tollgate: not implemented yet");
    std::process::exit(1);
}
