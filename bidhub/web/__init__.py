"""HTTP: blueprints that parse requests, call one use case and render the answer."""
