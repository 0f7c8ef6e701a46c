"""Where studies come from: a folder, a PACS over DICOMweb, and the staging area between them and ingest."""
