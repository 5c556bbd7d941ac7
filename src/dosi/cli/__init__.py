"""The `dosi` command line: run the hub (`dosi up`) or a seeded demo (`dosi demo`)."""
