"""crashkit report: bug-report bundles (model, templates, redaction, tar.gz)."""
