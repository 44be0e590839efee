"""Use cases: the only write path. Each loads rows, asks the domain, writes, commits once."""
