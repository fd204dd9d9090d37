fn main() {
    eprintln!("moorlet: not built yet");
    std::process::exit(1);
}
