-- A record that gives a particulate steroid for a transforaminal injection is signed
-- only with the radiologist's acknowledgement (FDA Drug Safety Communication, 2014:
-- rare but serious neurologic injury after epidural corticosteroid injections;
-- particulate steroids are implicated in transforaminal ones). 1: acknowledged when
-- signed; 0 otherwise, and for every record signed before this column.
ALTER TABLE procedure_records ADD COLUMN particulate_acknowledged INTEGER NOT NULL DEFAULT 0
    CHECK (particulate_acknowledged IN (0, 1));
