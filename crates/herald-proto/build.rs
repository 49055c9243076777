//! Compiles `proto/herald/v1/*.proto` with protox (pure Rust: no protoc needed).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let files = [
        "event.proto",
        "delivery.proto",
        "state.proto",
        "replay.proto",
    ]
    .map(|name| root.join("herald/v1").join(name));
    for file in &files {
        println!("cargo:rerun-if-changed={}", file.display());
    }
    let descriptors = protox::compile(&files, [&root])?;
    prost_build::Config::new()
        // A payload is fanned out to every subscribed endpoint: as `Bytes` each delivery
        // shares the one decoded copy instead of copying it (twice, before session 15).
        .bytes([".herald.v1.EventEnvelope.payload"])
        .compile_fds(descriptors)?;
    Ok(())
}
