fn main() {
    std::process::exit(fakopp::cli::main());
}
