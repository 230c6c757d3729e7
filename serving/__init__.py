"""gRPC serving (KServe v2 / Triton protocol), dynamic batcher, client, load generator."""
