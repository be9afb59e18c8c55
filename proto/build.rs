//! Compiles `orca/v1/*.proto` in pure Rust (protox): no system `protoc` needed.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = ["orca/v1/worker.proto", "orca/v1/master.proto"];
    for f in files {
        println!("cargo:rerun-if-changed={f}");
    }
    let fds = protox::compile(files, ["."])?;
    tonic_prost_build::configure().compile_fds(fds)?;
    Ok(())
}
