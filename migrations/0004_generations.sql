-- Generations (issue 6): zero-downtime rebuilds.
--
-- A projection's read model exists in numbered generations. The live one is always in the
-- projection's own schema (e.g. `customers`), which is what queries name. `ultracore-ctl rebuild`
-- builds generation N+1 beside it in `<schema>__g<N+1>` from the beginning of the log, with its
-- own offsets and processed_events rows; when it has caught up, one transaction renames
-- `<schema>` to `<schema>__g<N>` and `<schema>__g<N+1>` to `<schema>`, and records the switch
-- here. Generation N is kept for `rollback` until `drop`.
--
-- Offsets, processed_events, dead letters and parked events of a generation are stored under its
-- key: the projection's name for generation 1 (so nothing changes for a never-rebuilt
-- projection), `<name>@g<N>` for later ones.
CREATE TABLE IF NOT EXISTS ultracore_generations (
    projection          text        PRIMARY KEY,
    live_generation     integer     NOT NULL DEFAULT 1,
    previous_generation integer,      -- what `rollback` returns to; kept until `drop`
    building_generation integer,      -- a rebuild in progress
    rebuild_started_at  timestamptz,
    switched_at         timestamptz,
    updated_at          timestamptz NOT NULL DEFAULT now()
);

CREATE OR REPLACE FUNCTION ultracore_generation_key(projection text, generation integer)
RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN generation IS NULL OR generation <= 1 THEN projection
                ELSE projection || '@g' || generation END
$$;

-- The key the live generation of a projection stores its offsets and processed_events under.
CREATE OR REPLACE FUNCTION ultracore_live_key(projection text)
RETURNS text LANGUAGE sql STABLE AS $$
    SELECT ultracore_generation_key(projection,
        (SELECT g.live_generation FROM ultracore_generations g WHERE g.projection = $1))
$$;
