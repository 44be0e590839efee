"""Pure business rules of bidhub: facts in, results out; no Flask, no database, no clock."""
