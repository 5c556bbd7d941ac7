"""The temporal API (clause 5.6/5.7): history of entities, queries and aggregations."""
