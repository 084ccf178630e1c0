-- What a slot search reads of the bookings (`booked_between`), from the index alone
-- (an index-only scan where the visibility map allows): one index range per search
-- instead of a heap fetch per booking.
CREATE INDEX appointments_busy ON appointments (site_id, status, starts_at)
    INCLUDE (id, ends_at, room_id, radiologist_id, chair_id, chair_starts_at, chair_ends_at);
