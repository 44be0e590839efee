"""Use cases: the only write path. Each runs in one `unit_of_work` (bidhub.db): it commits once,
rolls back on any error, and joins the unit of a use case that calls it."""
