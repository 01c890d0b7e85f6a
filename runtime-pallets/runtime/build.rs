//! Builds the wasm runtime.
fn main() {
    // The wasm runtime is built only for the native (std) build; the wasm build itself runs this
    // script without `std` and must not recurse.
    #[cfg(feature = "std")]
    substrate_wasm_builder::WasmBuilder::build_using_defaults();
}
