fn main() {
    std::process::exit(converge::cli::main());
}
