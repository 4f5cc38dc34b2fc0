"""Records in, summaries out: reading, batching, the engine, outputs and the job around them."""
