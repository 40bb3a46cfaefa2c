"""Build-time generators of the documentation site's reference pages (see mkdocs.yml `hooks:`)."""
