-- When a budget service last started publishing an alert, committed before
-- it produces: an unpublished alert with an attempt may already be on the
-- topic (the publisher died between the broker's acknowledgement and its
-- commit), so the next publisher looks there first. An attempt younger than
-- the publish timeout is a lease: nobody else touches the alert meanwhile.
ALTER TABLE budget_alerts ADD COLUMN IF NOT EXISTS attempted_at TIMESTAMPTZ;
