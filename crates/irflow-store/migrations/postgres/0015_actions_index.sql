-- A screening's actions are read by screening (with the case's scheduling context,
-- and when a screening is shown): one index range instead of a scan of every
-- action ever recorded.
CREATE INDEX screening_actions_screening ON screening_actions (screening_id, id);
