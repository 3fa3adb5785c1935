fn main() -> std::process::ExitCode {
    splatforge::cli::main()
}
