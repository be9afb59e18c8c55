//! Compiles `orca/v1/*.proto` in pure Rust (protox): no system `protoc` needed.
use prost::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "orca/v1/worker.proto",
        "orca/v1/master.proto",
        "orca/v1/api.proto",
    ];
    for f in files {
        println!("cargo:rerun-if-changed={f}");
    }
    let fds = protox::compile(files, ["."])?;
    tonic_prost_build::configure().compile_fds(fds)?;
    // The public API's descriptors alone, for gRPC server reflection (the
    // internal master/worker services are not advertised).
    let api = protox::compile(["orca/v1/api.proto"], ["."])?;
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out.join("orca_api_descriptor.bin"), api.encode_to_vec())?;
    Ok(())
}
