"""The Mirada worker: claims queued runs from the database and executes them."""
