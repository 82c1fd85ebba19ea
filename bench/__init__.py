"""Benchmarks for Netherfield: a XEP-0114 load driver, the components it drives, a runner."""
