"""wirestream's I/O: the Kafka source and the lake sink."""
