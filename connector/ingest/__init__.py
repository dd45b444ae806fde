"""Ingestion: what Synchronize sends, and how it reaches the ingest target.

- ``idx``: IDOL's IDX document format and the delete-list format.
- ``extract``: documents as text and metadata (PDF, Office, HTML, e-mail), bounded.
- ``archives``: members of zip and tar archives and e-mail attachments as documents
  of their own; ``unpack`` reads them, bounded, in the extraction child.
- ``spool``: batch files in the ingest folder, each complete or absent.
- ``post``: the optional HTTP target that receives each committed batch.

``docs/ingest.md`` describes the formats for whoever consumes the batches.
"""
