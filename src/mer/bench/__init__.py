"""Benchmarks that print figures and write a record (mer.records): `mer bench-train`, `bench-protocol`,
`bench-preprocess` and `bench-predict`."""
