"""Reliability tests: the bad-input catalogue, fuzzing of the readers and windowing, and security checks.

``catalogue.py`` holds the data (one entry per malformed input); ``make_doc.py`` turns it into the
table in docs/reliability.md.
"""
