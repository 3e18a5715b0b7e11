fn main() {
    // Before any thread starts: HDF5 reads it when it opens a file.
    fakopp::h5io::disable_file_locking();
    std::process::exit(fakopp::cli::main());
}
