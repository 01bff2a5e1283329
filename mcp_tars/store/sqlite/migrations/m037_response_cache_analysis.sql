-- The analysis of a cached question (JSON, mcp_tars/cache/analysis.py), written
-- when its answer is stored: a lookup reads its candidates' analyses instead of
-- analysing them again. Rows from before have none and are analysed on use.
ALTER TABLE response_cache ADD COLUMN query_analysis TEXT;
