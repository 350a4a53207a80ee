-- Issue 19: a switch freezes the live generation in every engine, not only in the one that
-- switches. While switch_until lies in the future, a live runner's batch (whose generation
-- fence reads this row) is discarded as a transient wait instead of committing, so the new
-- generation can reach exactly the live offsets and the switch never goes behind them. The
-- switch clears it; an engine that dies while switching leaves it to expire.
ALTER TABLE ultracore_generations ADD COLUMN IF NOT EXISTS switch_until timestamptz;
