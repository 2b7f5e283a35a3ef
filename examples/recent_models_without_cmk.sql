-- Models created in the last 30 days that use the Bedrock-owned key: the newest gaps,
-- worth a word with their owners before they are deployed.
-- Timestamps are stored as ISO-8601 UTC text (2026-11-28T12:00:00Z); iso_time() answers in
-- that same format, so the comparison orders by time (datetime('now', '-30 days') would
-- write a space for the T and misorder times within the boundary day).
SELECT m.account_id,
       m.region,
       m.model_name,
       m.kind,
       m.creation_time,
       round(days_ago(m.creation_time), 1) AS days_old
FROM bedrock_model m
WHERE m.key_reference IS NULL
  AND m.creation_time > iso_time('now', '-30 days')
ORDER BY m.creation_time DESC;
