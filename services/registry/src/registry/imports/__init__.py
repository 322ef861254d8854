"""Bulk import of persons from an office's CSV file: stored on upload, processed by a
background worker in chunks (one transaction each), upserted on the NIK, with a per-row
error report."""
