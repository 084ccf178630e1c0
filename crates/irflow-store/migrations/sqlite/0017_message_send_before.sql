-- A message that is useless or wrong after a moment carries it: a blood-thinner hold
-- reminder ("take your last dose no later than 8:00 AM") past the last-dose deadline,
-- a 1-day reminder ("your procedure is tomorrow") past the end of that day. A worker
-- that claims such a message at or after this instant (after retries or the quiet
-- hours held it back) cancels it instead of sending it. NULL: no such limit.
ALTER TABLE messages ADD COLUMN send_before INTEGER;
