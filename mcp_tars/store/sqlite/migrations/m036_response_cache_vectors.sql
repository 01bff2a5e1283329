-- The semantic cache's question vectors (float16, mcp_tars/cache/embedding.py),
-- and the (context, id) range the in-process vector index reads new entries
-- from (mcp_tars/cache/index.py). semantic_key, term_keys and the term
-- postings are no longer written; rows from before keep theirs until they go.
ALTER TABLE response_cache ADD COLUMN query_vector BLOB;
CREATE INDEX response_cache_context_vectors ON response_cache(context_key, id) WHERE query_vector IS NOT NULL;
