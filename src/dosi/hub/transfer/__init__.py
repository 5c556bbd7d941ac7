"""Export and import of a hub's contents as NDJSON (`dosi export` / `dosi import`)."""
