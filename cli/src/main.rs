//! The `orca` binary: parses arguments and hands over to the library.

fn main() -> std::process::ExitCode {
    orca::main_entry()
}
