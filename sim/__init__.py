"""cocotb benches and the runner glue (installed as the package hwgen_sim)."""
