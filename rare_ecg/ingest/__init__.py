"""Ingestion: archive records into the lake's tables (rows.py is pure; pipeline.py runs it on Ray Data)."""
