"""Payments and their channels: the bank over HTTP (batches out, signed callbacks in) and the post office's files."""
