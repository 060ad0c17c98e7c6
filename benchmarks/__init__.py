"""Reproducible throughput and quality measurements (`make bench`)."""
